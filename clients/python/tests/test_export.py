"""``python -m logitd.cache export`` against ``logitctl export``: byte-identical output."""

from __future__ import annotations

import os
import sqlite3
import unittest

from support import (TempDir, feed, import_jsonl, daemon, logitctl_export, odd_key_lines, python_export,
                     rewrite_shard, sealed_shards, teach)


class ExportMatchesLogitctl(TempDir):
    def assert_same_export(self, cache: str, dataset: str) -> bytes:
        swift = logitctl_export(cache, dataset)
        result = python_export(cache, dataset)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertGreater(len(swift), 0)
        if result.stdout != swift:
            mine, theirs = result.stdout.splitlines(), swift.splitlines()
            for n, (a, b) in enumerate(zip(mine, theirs)):
                self.assertEqual(a, b, f"{dataset}: line {n + 1} differs")
            self.assertEqual(len(mine), len(theirs), f"{dataset}: line counts differ")
        return swift

    def test_synthetic_teacher_datasets(self) -> None:
        cache = os.path.join(self.tmp, "c")
        teach(cache, "small-vocab", positions=1500, vocab=1000)               # 2-byte ids
        teach(cache, "big-vocab", positions=700, vocab=70000, seq_len=128)    # 3-byte ids, width classes 1-3
        teach(cache, "tiny-vocab", positions=300, vocab=200, seq_len=64)      # 1-byte ids
        for name in ("small-vocab", "big-vocab", "tiny-vocab"):
            self.assert_same_export(cache, name)

    def test_odd_keys_masks_and_negative_zero(self) -> None:
        cache = os.path.join(self.tmp, "c")
        import_jsonl(cache, "odd", odd_key_lines(), vocab=10, kmax=2)
        out = self.assert_same_export(cache, "odd")
        self.assertIn(b'"a\\/b"', out)
        self.assertIn(b"-0.0", out)
        self.assertIn(b'"loss_mask": [1, 0]', out)

    def test_open_shards_while_logitd_writes_and_after(self) -> None:
        cache = os.path.join(self.tmp, "d")
        with daemon(cache, "--max-shard-bytes", "16384") as url:
            feed(url, "s4096", vocab=70000, scale=4096, count=60, seed=1)        # 3-byte ids, many escapes
            feed(url, "s3", vocab=300, scale=3, count=30, seed=2, big=6e9)       # non-dyadic and clamped codes
            states = self.shard_states(cache)
            self.assertIn("open", states["s4096"] + states["s3"], "expected an open shard to read")
            self.assertGreater(len(states["s4096"]), 1, "expected the small max_shard_bytes to rotate shards")
            open_exports = {d: self.assert_same_export(cache, d) for d in ("s4096", "s3")}
        for dataset, before in open_exports.items():
            self.assertEqual(self.assert_same_export(cache, dataset), before)

    def test_lz4_and_uncompressed_blocks(self) -> None:
        cache = os.path.join(self.tmp, "c")
        teach(cache, "syn", positions=1200, vocab=5000)
        reference = self.assert_same_export(cache, "syn")
        shard = sealed_shards(cache)[0]
        for codec in (2, 0, 1):
            rewrite_shard(shard, shard + ".tmp", codec)
            os.replace(shard + ".tmp", shard)
            self.assertEqual(self.assert_same_export(cache, "syn"), reference, f"codec {codec}")

    @staticmethod
    def shard_states(cache: str) -> dict[str, list[str]]:
        uri = "file:" + os.path.join(cache, "catalog.sqlite") + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True)   # beside a live writer: side files exist already
        try:
            rows = connection.execute("SELECT d.name, s.state FROM shard s JOIN dataset d ON d.id = s.dataset_id "
                                      "ORDER BY s.generation").fetchall()
        finally:
            connection.close()
        states: dict[str, list[str]] = {}
        for name, state in rows:
            states.setdefault(name, []).append(state)
        return states


if __name__ == "__main__":
    unittest.main()
