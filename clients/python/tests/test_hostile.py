"""Damaged files raise the package's own errors, naming the file, the block and the byte offset."""

from __future__ import annotations

import os
import shutil
import signal
import unittest

from support import (TempDir, feed, open_shards, python_export, sealed_shards, start_daemon, stop_daemon, teach)

from logitd.cache import Cache, CacheError, DatasetNotFound, Shard, ShardError


def flip(path: str, offset: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


class HostileShards(TempDir):
    template: str
    template_dir: str

    @classmethod
    def setUpClass(cls) -> None:
        import tempfile
        cls.template_dir = tempfile.mkdtemp(prefix="logitd-py-hostile-")
        cls.template = os.path.join(cls.template_dir, "c")
        teach(cls.template, "syn", positions=1000, vocab=1000)   # one block per 256-token sequence

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.template_dir, True)

    def setUp(self) -> None:
        super().setUp()
        self.cache = os.path.join(self.tmp, "c")
        shutil.copytree(self.template, self.cache)
        self.shard = sealed_shards(self.cache)[0]
        with Shard.sealed(self.shard) as s:
            self.blocks = s.blocks
            self.header_length = s.header.header_length
        self.assertGreaterEqual(len(self.blocks), 3)

    def read_all(self) -> None:
        for _ in Cache(self.cache).sequences("syn"):
            pass

    def expect(self, *fragments: str) -> ShardError:
        with self.assertRaises(ShardError) as caught:
            self.read_all()
        message = str(caught.exception)
        self.assertIn(self.shard, message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return caught.exception

    def test_flipped_payload_byte_names_the_block_and_offset(self) -> None:
        block = self.blocks[1]
        flip(self.shard, block.offset + 64 + block.stored_bytes // 2)
        error = self.expect("block 1", f"byte offset {block.offset}", "checksum mismatch (stored 0x")
        self.assertEqual((error.block, error.offset), (1, block.offset))

    def test_flipped_header_byte(self) -> None:
        flip(self.shard, 50)  # inside vocabSize
        error = self.expect("header checksum mismatch", "byte offset 40")
        self.assertIsNone(error.block)

    def test_wrong_magic(self) -> None:
        flip(self.shard, 0, 0x20)
        self.expect('not a logitd shard: header magic is [108, 71, 84, 83, 72, 65, 82, 68], expected "LGTSHARD"')

    def test_truncated_at_a_64_byte_boundary(self) -> None:
        truncate(self.shard, os.path.getsize(self.shard) - 64)
        self.expect("trailer")

    def test_truncated_mid_file(self) -> None:
        size = self.blocks[2].offset + 100
        truncate(self.shard, size)
        self.expect(f"file size {size} is not a sealed shard (needs ≥ 128 bytes, a multiple of 64)")

    def test_flipped_footer_byte(self) -> None:
        footer = self.blocks[-1].end
        flip(self.shard, footer + 60)
        self.expect("footer checksum mismatch", f"byte offset {footer}")

    def test_block_header_disagrees_with_index(self) -> None:
        block = self.blocks[2]
        flip(self.shard, block.offset + 24)   # the stored checksum field
        error = self.expect("block 2", "block header disagrees with the footer index entry")
        self.assertEqual(error.offset, block.offset)

    def test_bad_block_magic(self) -> None:
        block = self.blocks[1]
        flip(self.shard, block.offset)
        self.expect("block 1", f"block magic 0x4b4c4246 at offset {block.offset}, expected 0x4b4c4247")

    def test_missing_file(self) -> None:
        os.remove(self.shard)
        with self.assertRaises(ShardError) as caught:
            self.read_all()
        self.assertIn("cannot open for reading", str(caught.exception))

    def test_command_line_exit_codes(self) -> None:
        flip(self.shard, self.blocks[0].offset + 64 + 3)
        result = python_export(self.cache, "syn")
        self.assertEqual(result.returncode, 3)
        self.assertIn(f"{self.shard}, block 0 (byte offset {self.blocks[0].offset}): checksum mismatch",
                      result.stderr.decode())
        self.assertEqual(python_export(self.cache, "nope").returncode, 2)
        self.assertEqual(python_export(os.path.join(self.tmp, "missing"), "syn").returncode, 3)
        self.assertEqual(python_export(self.cache, "syn", "--format", "csv").returncode, 64)

    def test_unknown_dataset(self) -> None:
        with self.assertRaises(DatasetNotFound) as caught:
            Cache(self.cache).dataset("nope")
        self.assertIsInstance(caught.exception, CacheError)
        self.assertIsInstance(caught.exception, KeyError)


class OpenShardShorterThanCommitted(TempDir):
    def test_file_shorter_than_its_committed_length(self) -> None:
        cache = os.path.join(self.tmp, "k")
        process, url = start_daemon(cache)
        try:
            feed(url, "open", vocab=3000, scale=64, count=12, seed=5)
        finally:
            stop_daemon(process, signal.SIGKILL)   # the shard stays open, as after a crash
        shard = open_shards(cache)[0]
        self.assertEqual(sum(1 for _ in Cache(cache).sequences("open")), 12)
        committed = os.path.getsize(shard)
        truncate(shard, committed - 64)
        with self.assertRaises(ShardError) as caught:
            list(Cache(cache).sequences("open"))
        self.assertIn(f"shard {shard}", str(caught.exception))
        self.assertIn(f"committed length {committed} exceeds the file size {committed - 64}", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
