"""The reader never writes: no catalog side files, no changed bytes, beside a live writer too."""

from __future__ import annotations

import hashlib
import os
import signal
import unittest

from support import (TempDir, daemon, feed, python_export, remove_side_files, side_files, start_daemon,
                     stop_daemon, teach)

from logitd.cache import Cache


def fingerprint(directory: str) -> dict[str, tuple[int, int, str]]:
    """Every file under ``directory``: size, mtime and content hash."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns, digest)
    return found


class ReadOnly(TempDir):
    def read_everything(self, cache: str) -> int:
        c = Cache(cache)
        count = 0
        for dataset in c.datasets():
            c.shards(dataset.name)
            count += sum(1 for _ in c.sequences(dataset.name, verify_hashes=True))
            count += sum(1 for _ in c.blocks(dataset.name))
        return count

    def test_no_side_files_without_a_writer(self) -> None:
        cache = os.path.join(self.tmp, "c")
        teach(cache, "syn", positions=800, vocab=1000)
        remove_side_files(cache)   # logit-teach closes cleanly; make sure
        before = fingerprint(cache)
        self.assertGreater(self.read_everything(cache), 0)
        self.assertEqual(python_export(cache, "syn").returncode, 0)
        self.assertEqual(side_files(cache), [])
        self.assertEqual(fingerprint(cache), before)

    def test_beside_a_running_logitd_nothing_is_added(self) -> None:
        cache = os.path.join(self.tmp, "d")
        with daemon(cache) as url:
            feed(url, "live", vocab=5000, scale=64, count=20, seed=3)
            before = set(fingerprint(cache))
            self.assertGreater(self.read_everything(cache), 0)
            self.assertEqual(set(fingerprint(cache)), before)

    def test_wal_without_shm_is_read_from_a_private_copy(self) -> None:
        cache = os.path.join(self.tmp, "k")
        process, url = start_daemon(cache)
        try:
            feed(url, "crashed", vocab=500, scale=64, count=15, seed=4)
            expected = [r.key for r in Cache(cache).sequences("crashed")]
        finally:
            stop_daemon(process, signal.SIGKILL)   # no checkpoint: committed rows live in the WAL
        self.assertTrue(os.path.exists(os.path.join(cache, "catalog.sqlite-wal")))
        os.remove(os.path.join(cache, "catalog.sqlite-shm"))
        before = fingerprint(cache)
        self.assertEqual([r.key for r in Cache(cache).sequences("crashed", verify_hashes=True)], expected)
        self.assertEqual(fingerprint(cache), before)
        self.assertEqual(len(expected), 15)


if __name__ == "__main__":
    unittest.main()
