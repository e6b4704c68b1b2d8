"""The reading API: datasets and coverage as ``logitctl stats`` reports them, record invariants,
content hashes, and the Swift-compatible text formatting used by the export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

import numpy as np

from support import PACKAGE_ROOT, TempDir, binary, import_jsonl, odd_key_lines, run, teach

from logitd.cache import Cache, content_hash
from logitd.cache.jsonl import json_string, swift_float


class DatasetsAndRecords(TempDir):
    def setUp(self) -> None:
        super().setUp()
        self.cache = os.path.join(self.tmp, "c")
        teach(self.cache, "syn", positions=1200, vocab=30000, seq_len=200)
        import_jsonl(self.cache, "odd", odd_key_lines(), vocab=10, kmax=2)

    def test_datasets_match_logitctl_stats(self) -> None:
        datasets = {d.name: d for d in Cache(self.cache).datasets()}
        self.assertEqual(sorted(datasets), ["odd", "syn"])
        for name, d in datasets.items():
            stats = json.loads(run(binary("logitctl"), "stats", self.cache, "--dataset", name, "--json").stdout)
            c = d.coverage
            self.assertEqual((d.vocab_size, d.tau, d.k_min, d.k_max, d.teacher_id, d.tokenizer_id, d.tokenizer_hash),
                             (stats["vocab_size"], stats["tau"], stats["k_min"], stats["k_max_policy"],
                              stats["teacher_id"], stats["tokenizer_id"], stats["tokenizer_hash"]))
            self.assertEqual((c.sequences, c.positions, c.candidates, c.bytes, c.shards_sealed, c.shards_open),
                             (stats["sequences"], stats["positions"], stats["candidates"], stats["bytes"],
                              stats["shards_sealed"], stats["shards_open"]))
            self.assertAlmostEqual(c.gold_forced_rate, stats["gold_forced_rate"], places=12)
            self.assertAlmostEqual(c.covered_mass_mean, stats["covered_mass_mean"], places=9)
            self.assertEqual(c.k_histogram[:len(stats["k_histogram"])], stats["k_histogram"])
            self.assertEqual(d.logprob_scale, 64.0)

    def test_record_invariants(self) -> None:
        cache = Cache(self.cache)
        records = list(cache.sequences("syn", verify_hashes=True))
        self.assertEqual(sum(r.positions for r in records), cache.dataset("syn").coverage.positions)
        for r in records:
            self.assertEqual((r.tokens.dtype, r.ids.dtype, r.logprobs.dtype, r.offsets.dtype, r.gold_forced.dtype),
                             (np.uint32, np.uint32, np.float32, np.int64, np.bool_))
            self.assertEqual(len(r.tokens), r.positions + 1)
            self.assertEqual((int(r.offsets[0]), int(r.offsets[-1])), (0, r.candidates))
            self.assertTrue(np.all(np.diff(r.offsets) >= 1))
            self.assertTrue(np.all(r.logprobs <= 0))
            self.assertLess(int(r.ids.max()), 30000)
            for t in range(r.positions):
                ids, lps = r.candidate_set(t)
                self.assertIn(int(r.tokens[t + 1]), ids.tolist())
                self.assertTrue(np.all(np.diff(lps) <= 0), "canonical order: descending log-prob")
            self.assertIsNone(r.loss_mask)

    def test_loss_masks_and_hashes_of_imported_records(self) -> None:
        records = list(Cache(self.cache).sequences("odd", verify_hashes=True))
        self.assertEqual(len(records), len(odd_key_lines()))
        masked = [r for r in records if r.loss_mask is not None]
        self.assertTrue(masked)
        for r in masked:
            self.assertEqual(r.loss_mask.tolist(), [1, 0])  # type: ignore[union-attr]
        self.assertEqual([r.key for r in records], [line["key"] for line in odd_key_lines()])
        self.assertNotEqual(content_hash(records[0], 64.0), content_hash(records[1], 64.0))

    def test_held_records_are_never_overwritten(self) -> None:
        """Output storage is recycled only when nothing refers to it any more."""
        cache = Cache(self.cache)
        held, copies = [], []
        for r in cache.sequences("syn"):
            held.append(r)
            copies.append((r.ids.copy(), r.logprobs.copy(), r.tokens.copy()))
        for _ in range(3):  # decode again: the held blocks' storage must not be reused
            for r in cache.sequences("syn"):
                pass
        for r, (ids, lps, tokens) in zip(held, copies):
            self.assertTrue(np.array_equal(r.ids, ids) and np.array_equal(r.logprobs, lps)
                            and np.array_equal(r.tokens, tokens), r.key)
        one = next(iter(cache.sequences("syn")))
        ids = one.ids[:5].copy()
        del held, copies
        for _ in cache.sequences("syn"):
            pass
        self.assertTrue(np.array_equal(one.ids[:5], ids), "a slice kept alone keeps its storage")

    def test_blocks_cover_every_sequence(self) -> None:
        cache = Cache(self.cache)
        sequences = sum(b.sequence_count for _, _, b in cache.blocks("syn"))
        self.assertEqual(sequences, cache.dataset("syn").coverage.sequences)


class WorkedExample(TempDir):
    """The 512-byte shard printed in schema/SHARD_FORMAT.md, read with this package."""

    def shard_bytes(self) -> bytes:
        from support import REPO
        with open(os.path.join(REPO, "schema", "SHARD_FORMAT.md"), encoding="utf-8") as f:
            text = f.read()
        dump = text.split("## Worked example", 1)[1].split("```", 2)[1]
        data = bytearray()
        for line in dump.splitlines():
            if len(line) > 6 and line[4] == ":":
                data += bytes(int(b, 16) for b in line[6:53].split())
        return bytes(data)

    def test_decodes_as_documented(self) -> None:
        from logitd.cache import Record, Shard
        from logitd.cache.content_hash import canonical_bytes
        path = os.path.join(self.tmp, "example.lgs")
        with open(path, "wb") as f:
            f.write(self.shard_bytes())
        with Shard.sealed(path) as shard:
            self.assertEqual(str(shard.shard_id), "00112233-4455-6677-8899-aabbccddeeff")
            self.assertEqual((shard.provenance.dataset_name, shard.provenance.vocab_size, shard.provenance.k_max),
                             ("demo", 10, 3))
            block = shard.block(0)
        self.assertEqual(block.keys, ["doc-1"])
        self.assertEqual(block.tokens.tolist(), [5, 7, 9])
        self.assertEqual(block.ids.tolist(), [7, 2, 1, 3, 4, 9])
        self.assertEqual(block.logprobs.tolist(), [-0.09375, -2.5, -0.5, -1.5, -2.0, -9.0])
        self.assertEqual(block.gold_forced.tolist(), [False, True])
        record = Record("doc-1", block.tokens, None, block.set_offsets, block.ids, block.logprobs, block.gold_forced,
                        "example.lgs", 0, 0)
        self.assertEqual(len(canonical_bytes(record, 64.0)), 88)


class Formatting(unittest.TestCase):
    def test_swift_float_description(self) -> None:
        cases = [(0.0, "0.0"), (-0.0, "-0.0"), (-0.09375, "-0.09375"), (-2.5, "-2.5"), (-9.0, "-9.0"),
                 (100.0, "100.0"), (-0.0001, "-0.0001"), (-1e-05, "-1e-05"), (-2.5e-05, "-2.5e-05"),
                 (16777216.0, "16777216.0"), (16777218.0, "1.6777218e+07"), (-1e10, "-1e+10"), (123.456, "123.456"),
                 (-0.6666667, "-0.6666667"), (-1081.3334, "-1081.3334"), (-1.4316558e09, "-1.4316558e+09"),
                 (1e-45, "1e-45"), (3.4028235e38, "3.4028235e+38"), (0.1, "0.1"), (1.0, "1.0"),
                 (1234567.0, "1234567.0")]
        for value, text in cases:
            self.assertEqual(swift_float(np.float32(value)), text, repr(value))

    def test_json_string_as_swift_writes_it(self) -> None:
        self.assertEqual(json_string('a/b"c\\d\n\t\r\b\f\x01\x1f\x7fé😀'),
                         '"a\\/b\\"c\\\\d\\n\\t\\r\\b\\f\\u0001\\u001f\x7fé😀"')


class CommandLine(TempDir):
    def test_bench_and_datasets_commands(self) -> None:
        cache = os.path.join(self.tmp, "c")
        teach(cache, "syn", positions=600, vocab=1000)
        env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
        out = subprocess.run([sys.executable, "-m", "logitd.cache", "bench", cache, "--dataset", "syn", "--json",
                              "--repeats", "1", "--no-decode", "--bin", os.path.dirname(binary("logitctl"))],
                             capture_output=True, check=True, env=env).stdout
        result = json.loads(out)
        self.assertGreater(result["python_candidates_per_s"], 0)
        self.assertEqual(result["swift_baseline"], "export")
        self.assertAlmostEqual(result["python_over_swift"],
                               result["python_candidates_per_s"] / result["swift_candidates_per_s"])
        # The decode baseline reads the same shards: the same candidates, counted by the Swift reader.
        out = subprocess.run([sys.executable, "-m", "logitd.cache", "bench", cache, "--dataset", "syn", "--json",
                              "--repeats", "1", "--no-export", "--bin", os.path.dirname(binary("logit-bench"))],
                             capture_output=True, check=True, env=env).stdout
        result = json.loads(out)
        self.assertEqual(result["swift_baseline"], "decode")
        self.assertEqual(result["swift_decode_candidates"], result["candidates"])
        self.assertGreater(result["python_over_swift"], 0)
        listing = json.loads(subprocess.run([sys.executable, "-m", "logitd.cache", "datasets", cache, "--json"],
                                            capture_output=True, check=True, env=env).stdout)
        self.assertEqual(listing[0]["name"], "syn")


if __name__ == "__main__":
    unittest.main()
