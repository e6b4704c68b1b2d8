"""``logitd.teach.select_sets`` (torch) against the Swift ``TopKSelector`` on the same rows: the rows
go to a real logitd twice — as sets selected in torch, and as full logits rows (``encode_logits``)
that logitd selects with the Swift code — and the two exports must agree: same ids in the same
order, same gold_forced, log-probs within 2 codes at logprob_scale 4,096 (the largest) (the Swift partition sum
uses a fast exp, ~1e-7 relative). Rows cover ties (also split by the K_max cut), −0/+0, K_min and
K_max clamps, τ = 1, V < K_min, forced golds, f32 extremes."""

from __future__ import annotations

import json
import os
import unittest

import numpy as np
from support import TempDir, daemon, logitctl_export
from torch_support import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

    from logitd.teach import paragraph_cuts, select_sets, validate_policy

from logitd.client import Client, encode_logits, encode_sets

SCALE = 4096.0


def _rows(rng: np.random.Generator, n: int, vocab: int) -> np.ndarray:
    rows = np.empty((n, vocab), dtype=np.float32)
    for r in range(n):
        kind = r % 6
        if kind == 0:    # peaked, Zipf-like
            rows[r] = (rng.standard_normal(vocab) * 2.5).astype(np.float32)
        elif kind == 1:  # coarse values: many exact ties
            rows[r] = rng.integers(-4, 4, vocab).astype(np.float32)
        elif kind == 2:  # flat: K_max clamps
            rows[r] = (rng.standard_normal(vocab) * 0.01).astype(np.float32)
        elif kind == 3:  # one dominant id: K_min clamps
            rows[r] = rng.standard_normal(vocab).astype(np.float32)
            rows[r, rng.integers(vocab)] = 40.0
        elif kind == 4:  # ±0 and large magnitudes
            rows[r] = rng.choice(np.array([0.0, -0.0, 1.0, -1e30, 3e3, 2999.5], dtype=np.float32), vocab)
        else:            # a run of equal maxima wider than K_max: the cut splits it
            rows[r] = rng.standard_normal(vocab).astype(np.float32)
            rows[r, rng.choice(vocab, min(40, vocab), replace=False)] = 7.0
    return rows


@requires_torch
class SelectionMatchesSwift(TempDir):
    def check(self, vocab: int, tau: float, k_min: int, k_max: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        sequences, lines = [], []
        for s in range(4):
            length = 25
            rows = _rows(rng, length - 1, vocab)
            tokens = [int(rng.integers(vocab))] + [int(v) for v in rng.integers(0, vocab, length - 1)]
            sets = select_sets(torch.from_numpy(rows), tokens[1:], tau, k_min, k_max).to_lists()
            sequences.append({"key": f"s{s}", "tokens": tokens, "sets": sets})
            lines.append({"key": f"s{s}", "tokens": tokens, "rows": rows})
        cache = os.path.join(self.tmp, "cache")
        with daemon(cache) as url:
            client = Client(url)
            for name in ("torch", "swift"):
                client.create_dataset(name, vocab, tau=tau, k_min=k_min, k_max=k_max, teacher_id="rows",
                                      logprob_scale=SCALE)
            client.append("torch", encode_sets(vocab, sequences))
            client.append("swift", encode_logits(vocab, lines))
        torch_export = [json.loads(x) for x in logitctl_export(cache, "torch").splitlines()]
        swift_export = [json.loads(x) for x in logitctl_export(cache, "swift").splitlines()]
        self.assertEqual([x["key"] for x in torch_export], [x["key"] for x in swift_export])
        positions = 0
        for a, b in zip(torch_export, swift_export):
            self.assertEqual(a["tokens"], b["tokens"])
            for t, (sa, sb) in enumerate(zip(a["sets"], b["sets"])):
                where = f"{a['key']} position {t} (vocab {vocab}, tau {tau}, K {k_min}..{k_max})"
                self.assertEqual(sa["ids"], sb["ids"], where)
                self.assertEqual(sa["gold_forced"], sb["gold_forced"], where)
                np.testing.assert_allclose(sa["logprobs"], sb["logprobs"], rtol=0, atol=2 / SCALE + 1e-6, err_msg=where)
                positions += 1
        self.assertEqual(positions, 4 * 24)

    def test_default_policy(self) -> None:
        self.check(vocab=1000, tau=0.95, k_min=1, k_max=64, seed=1)

    def test_k_min_and_small_k_max(self) -> None:
        self.check(vocab=300, tau=0.9, k_min=3, k_max=8, seed=2)

    def test_tau_one_and_vocab_below_k_min(self) -> None:
        self.check(vocab=20, tau=1.0, k_min=32, k_max=64, seed=3)

    def test_k_max_one(self) -> None:
        self.check(vocab=50, tau=0.5, k_min=1, k_max=1, seed=4)


@requires_torch
class SelectionUnit(unittest.TestCase):
    def test_ties_by_lower_id_and_gold_forced(self) -> None:
        z = torch.tensor([[1.0, 3.0, 3.0, -0.0, 0.0, 3.0]])
        out = select_sets(z, [4], tau=0.99, k_min=1, k_max=2)
        self.assertEqual(out.to_lists()[0][0], [1, 2, 4])
        self.assertTrue(out.to_lists()[0][2])
        z = torch.tensor([[0.0, -0.0, 0.0, -0.0]])
        self.assertEqual(select_sets(z, [0], tau=1.0, k_min=1, k_max=4).to_lists()[0][0], [0, 1, 2, 3])

    def test_errors(self) -> None:
        with self.assertRaisesRegex(ValueError, "row 1: logit at index 2 is nan"):
            select_sets(torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, float("nan")]]), [0, 0])
        with self.assertRaisesRegex(ValueError, "outside the vocabulary"):
            select_sets(torch.zeros(1, 3), [3])
        for tau, k_min, k_max in ((0.0, 1, 4), (1.5, 1, 4), (0.9, 0, 4), (0.9, 5, 4), (0.9, 1, 4097)):
            with self.assertRaises(ValueError):
                validate_policy(tau, k_min, k_max)

    def test_paragraph_cuts_as_token_corpus(self) -> None:
        data = b"a" * 5 + b"\n\n" + b"b" * 7 + b"\n\nc"
        self.assertEqual(paragraph_cuts(data, 4), [0, 7, 16, len(data)])
        self.assertEqual(paragraph_cuts(b"", 4), [0, 0])


if __name__ == "__main__":
    unittest.main()
