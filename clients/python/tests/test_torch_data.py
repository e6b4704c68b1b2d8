"""The replay ``IterableDataset`` and ``collate_rows`` on caches built with the release binaries
(``logit-teach --teacher synthetic``, ``logitctl import``): coverage and exact rebuild of every
sequence, batch shapes, rank shares, loader workers, resume, epochs, snapshot changes — and a
small training loop (the README quick start) whose loss goes down.

The order itself is checked against the Swift loader in test_torch_parity.py and against the pin
of ReplayDatasetTests.swift in test_replay_order.py."""

from __future__ import annotations

import os
import re
import tempfile
import unittest
import warnings
from collections import defaultdict
from typing import Any

import numpy as np

from support import PACKAGE_ROOT, import_jsonl, odd_key_lines, teach
from torch_support import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

    from logitd.cache import Cache
    from logitd.replay import ReplayError
    from logitd.torch import CandidateBatch, ReplayIterableDataset, collate_rows

CACHE: str | None = None
_TMP: tempfile.TemporaryDirectory[str] | None = None


def setUpModule() -> None:
    global CACHE, _TMP
    if not HAVE_TORCH:
        return
    _TMP = tempfile.TemporaryDirectory(prefix="logitd-torch-data-")
    CACHE = os.path.join(_TMP.name, "cache")
    teach(CACHE, "syn", positions=2500, vocab=3000, seq_len=90, seed=1)
    teach(CACHE, "syn", positions=4000, vocab=3000, seq_len=90, seed=1)    # the rest, in a second shard
    teach(CACHE, "syn2", positions=800, vocab=3000, seq_len=40, seed=3)
    import_jsonl(CACHE, "odd", odd_key_lines(), vocab=10, kmax=2)


def tearDownModule() -> None:
    if _TMP is not None:
        _TMP.cleanup()


def records_by_location(datasets: list[str]) -> dict[tuple[int, int, int], Any]:
    """(snapshot shard index, block, ordinal) → record, for sealed shards in snapshot order."""
    assert CACHE is not None
    cache = Cache(CACHE)
    out = {}
    index = 0
    for name in sorted(datasets):
        shards = [s for s in cache.shards(name) if s.state == "sealed"]
        by_path = {s.path: i for i, s in enumerate(shards)}
        for r in cache.sequences(name):
            if r.shard in by_path:
                out[(index + by_path[r.shard], r.block, r.ordinal)] = r
        index += len(shards)
    cache.close()
    return out


def location(source: Any) -> tuple[int, int, int]:
    """(shard, block, ordinal) of a ``sources`` row."""
    return int(source[0]), int(source[1]), int(source[2])


def batches_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        (torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]) for k in a)


@requires_torch
class Coverage(unittest.TestCase):
    def test_every_sequence_is_rebuilt_exactly_once(self) -> None:
        assert CACHE is not None
        ds = ReplayIterableDataset(CACHE, ["syn", "syn2"], seed=3, window=16, max_tokens=64, max_sequence_length=17)
        self.assertEqual(len(ds.source.snapshot.shards), 3)
        rebuilt: dict[tuple[int, int, int], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        batches = 0
        for b in ds:
            batches += 1
            valid = b["attention_mask"].bool()
            self.assertLessEqual(int(valid.sum()), 64)
            self.assertLessEqual(b["input_ids"].shape[1], 17)
            for r in range(valid.shape[0]):
                n = int(valid[r].sum())
                self.assertTrue(bool(valid[r, :n].all()) and not bool(valid[r, n:].any()), "rows are left-aligned")
                key = location(b["sources"][r])
                acc = rebuilt[key]
                self.assertEqual(len(acc["inputs"]), int(b["sources"][r, 3]), "chunks arrive in order")
                acc["inputs"] += b["input_ids"][r, :n].tolist()
                acc["targets"] += b["targets"][r, :n].tolist()
                acc["mask"] += b["loss_mask"][r, :n].long().tolist()
                for t in range(n):
                    k = int(b["set_sizes"][r, t])
                    acc["sets"].append(b["cand_ids"][r, t, :k].tolist())
                    acc["lps"].append(b["cand_logprobs"][r, t, :k].numpy().copy())
                    self.assertTrue(bool(torch.isinf(b["cand_logprobs"][r, t, k:]).all()))
        self.assertEqual(ds.state_dict()["sequencesConsumed"], ds.source.snapshot.sequences)
        self.assertEqual(list(ds), [], "the epoch is finished until set_epoch")
        records = records_by_location(["syn", "syn2"])
        self.assertEqual(set(rebuilt), set(records))
        for key, r in records.items():
            got = rebuilt[key]
            self.assertEqual(got["inputs"], r.tokens[:-1].tolist())
            self.assertEqual(got["targets"], r.tokens[1:].tolist())
            self.assertEqual(got["mask"], [1] * r.positions if r.loss_mask is None else r.loss_mask.tolist())
            for t in range(r.positions):
                ids, lps = r.candidate_set(t)
                self.assertEqual(got["sets"][t], ids.tolist())
                self.assertTrue(np.array_equal(got["lps"][t], lps))
        self.assertEqual(batches, ReplayIterableDataset(CACHE, ["syn", "syn2"], seed=3, window=16, max_tokens=64,
                                                        max_sequence_length=17).batches_per_epoch())

    def test_loss_masks_are_delivered(self) -> None:
        assert CACHE is not None
        ds = ReplayIterableDataset(CACHE, "odd", seed=1, max_tokens=8, max_sequence_length=4)
        records = records_by_location(["odd"])
        masked = 0
        for b in ds:
            for r in range(b["input_ids"].shape[0]):
                rec = records[location(b["sources"][r])]
                n = int(b["attention_mask"][r].sum())
                want = [1] * n if rec.loss_mask is None else rec.loss_mask.tolist()[:n]
                self.assertEqual(b["loss_mask"][r, :n].long().tolist(), want)
                masked += want.count(0)
        self.assertGreater(masked, 0)

    def test_collate(self) -> None:
        assert CACHE is not None
        ds = ReplayIterableDataset(CACHE, "syn", seed=5, max_tokens=300, max_sequence_length=60)
        plan = next(ds.source.plan(ds.source.initial_state(0, ds.options), ds.options))
        rows = ds.source.rows_of(plan)
        b = collate_rows(rows, pad_id=7)
        bsz, t = b["input_ids"].shape
        self.assertEqual((bsz, t), (len(rows), max(len(r.inputs) for r in rows)))
        self.assertTrue(bool((b["position_ids"] == torch.arange(t)).all()))
        valid = b["attention_mask"].bool()
        self.assertTrue(bool((b["input_ids"][~valid] == 7).all()))
        self.assertTrue(bool((b["gold_index"][~valid] == -1).all()))
        gi = b["gold_index"][valid]
        self.assertTrue(bool((gi >= 0).all()), "the gold is in every stored set")
        gathered = b["cand_ids"][valid].gather(1, gi[:, None]).squeeze(1)
        self.assertTrue(torch.equal(gathered, b["targets"][valid]))
        lps = b["cand_logprobs"][valid].double()
        expected = 1 - torch.where(torch.isinf(lps), torch.zeros_like(lps), lps.exp()).sum(1)
        self.assertLess(float((b["rho_T"][valid].double() - expected).abs().max()), 1e-6)
        self.assertGreater(float(b["rho_T"][valid].mean()), 0.0, "the synthetic teacher leaves mass outside")
        # CSR over valid positions, as hidden[attention_mask] orders them.
        cb = CandidateBatch.from_padded(b)
        packed = ds.source.materialize(plan)
        self.assertEqual(cb.set_offsets.tolist(), packed.set_offsets.tolist())
        self.assertEqual(cb.ids.tolist(), packed.ids.tolist())
        assert cb.gold is not None
        self.assertEqual(cb.gold.tolist(), packed.targets.tolist())
        cb.validate(ds.vocab_size, int(valid.sum()))


@requires_torch
class Loading(unittest.TestCase):
    def kwargs(self, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = dict(seed=11, window=8, max_tokens=50, max_sequence_length=9)
        base.update(kw)
        return base

    def test_workers_deliver_the_single_process_order(self) -> None:
        assert CACHE is not None
        ds = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs())
        single = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
        ds.set_epoch(0)
        for workers in (2, 3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)   # 3 workers on a 2-core machine
                multi = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))
            self.assertEqual(len(multi), len(single))
            self.assertTrue(all(batches_equal(a, b) for a, b in zip(single, multi)), f"{workers} workers")

    def test_rank_shares(self) -> None:
        assert CACHE is not None
        total = ReplayIterableDataset(CACHE, ["syn", "syn2"], **self.kwargs()).source.snapshot.sequences
        world = 3
        for remainder in ("pad", "drop"):
            shares = []
            for rank in range(world):
                ds = ReplayIterableDataset(CACHE, ["syn", "syn2"], rank=rank, world_size=world, remainder=remainder,
                                           **self.kwargs(max_tokens=4096, max_sequence_length=4096))
                shares.append([tuple(int(x) for x in b["sources"][r, :3]) for b in ds for r in range(len(b["sources"]))])
            size = -(-total // world) if remainder == "pad" else total // world
            self.assertEqual([len(s) for s in shares], [size] * world, remainder)
            union = [x for s in shares for x in s]
            if remainder == "drop":
                self.assertEqual(len(set(union)), len(union))
            else:
                self.assertEqual(len(set(union)), total)
        with self.assertRaises(ReplayError):
            ReplayIterableDataset(CACHE, ["syn"], rank=3, world_size=3)

    def test_resume_from_state_dict_and_batch_state(self) -> None:
        assert CACHE is not None
        full = list(ReplayIterableDataset(CACHE, ["syn"], epoch=2, **self.kwargs()))
        self.assertGreater(len(full), 10)
        for k in (1, 5, len(full) - 1):
            ds = ReplayIterableDataset(CACHE, ["syn"], epoch=2, **self.kwargs())
            it = iter(ds)
            for _ in range(k):
                next(it)
            state = ds.state_dict()
            self.assertEqual(state, full[k - 1]["state"])
            resumed = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs())
            resumed.load_state_dict(state)
            self.assertEqual(resumed.epoch, 2)
            rest = list(resumed)
            self.assertEqual(len(rest), len(full) - k)
            self.assertTrue(all(batches_equal(a, b) for a, b in zip(rest, full[k:])))
        # Through workers: the batch's own state.
        ds = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs())
        ds.load_state_dict(full[3]["state"])
        rest = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
        self.assertTrue(all(batches_equal(a, b) for a, b in zip(rest, full[4:])))
        self.assertTrue(any(b["state"]["chunksConsumed"] > 0 for b in full), "a resume point inside a sequence")
        other = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs(max_sequence_length=10))
        with self.assertRaises(ReplayError):
            other.load_state_dict(full[3]["state"])

    def test_epochs_and_file_order(self) -> None:
        assert CACHE is not None
        ds = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs())
        order = [b["sources"].tolist() for b in ds]
        ds.set_epoch(1)
        other = [b["sources"].tolist() for b in ds]
        ds.set_epoch(0)
        self.assertEqual([b["sources"].tolist() for b in ds], order)
        self.assertNotEqual(order, other)
        plain = ReplayIterableDataset(CACHE, ["syn"], **self.kwargs(shuffle=False, max_sequence_length=4096,
                                                                   max_tokens=4096))
        seqs = [tuple(r[:3]) for b in plain for r in b["sources"].tolist()]
        self.assertEqual(seqs, sorted(seqs))

    def test_snapshot_change_is_refused_unless_allowed(self) -> None:
        assert CACHE is not None
        with tempfile.TemporaryDirectory() as tmp:
            cache = os.path.join(tmp, "c")
            teach(cache, "d", positions=400, vocab=500, seq_len=40, seed=1)
            before = ReplayIterableDataset(cache, "d", max_tokens=64, max_sequence_length=64)
            it = iter(before)
            next(it)
            state = before.state_dict()
            teach(cache, "d", positions=700, vocab=500, seq_len=40, seed=1)
            after = ReplayIterableDataset(cache, "d", max_tokens=64, max_sequence_length=64)
            self.assertNotEqual(after.source.snapshot.hash_hex, state["snapshotHash"])
            with self.assertRaisesRegex(ReplayError, state["snapshotHash"]):
                after.load_state_dict(state)
            allowed = ReplayIterableDataset(cache, "d", max_tokens=64, max_sequence_length=64,
                                            allow_snapshot_change=True)
            allowed.load_state_dict(state)
            self.assertEqual(allowed.state_dict()["snapshotHash"], after.source.snapshot.hash_hex)
            self.assertGreater(len(list(allowed)), 0)

    def test_incompatible_datasets_are_refused(self) -> None:
        assert CACHE is not None
        with self.assertRaisesRegex(ReplayError, "vocab size"):
            ReplayIterableDataset(CACHE, ["syn", "odd"])
        with self.assertRaises(ReplayError):
            ReplayIterableDataset(CACHE, ["syn", "syn"])


@requires_torch
class QuickStart(unittest.TestCase):
    def test_readme_quick_start_runs_and_learns(self) -> None:
        """Runs the README's "Training from a cache with PyTorch" block on a cache built here."""
        assert CACHE is not None
        with open(os.path.join(PACKAGE_ROOT, "README.md")) as f:
            readme = f.read()
        section = readme.split("## Training from a cache with PyTorch", 1)[1]
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert code is not None
        torch.manual_seed(0)
        scope: dict[str, Any] = {"CACHE": CACHE, "DATASET": "syn", "EPOCHS": 7}
        exec(compile(code.group(1), "README.md", "exec"), scope)
        losses = scope["losses"]
        self.assertEqual(len(losses), 7 * len(scope["data"]))
        self.assertGreater(len(losses), 40)
        self.assertLess(np.mean(losses[-10:]), np.mean(losses[:10]) - 0.3, losses)


if __name__ == "__main__":
    unittest.main()
