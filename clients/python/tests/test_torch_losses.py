"""The torch losses against an independent float64 numpy computation of docs/DESIGN.md §6 (values
and closed-form gradients), against finite differences (``torch.autograd.gradcheck``), and the
identities every implementation must pass (LossTests.swift)."""

from __future__ import annotations

import math
import unittest
from collections.abc import Callable
from typing import Any

import numpy as np

import support  # noqa: F401  (puts the package on sys.path)
from torch_support import (HAVE_TORCH, Problem, backward, random_problem, reference_full, reference_restricted, reference_tail,
                           requires_torch)

if HAVE_TORCH:
    import torch

    from logitd.replay import draw_negatives
    from logitd.torch import (CandidateBatch, full_softmax_loss, gathered_logits, restricted_softmax_loss,
                              sampled_tail_loss)


def tensors(p: Problem, dtype: Any) -> tuple[Any, Any]:
    h = torch.tensor(p.hidden, dtype=dtype, requires_grad=True)
    w = torch.tensor(p.weight, dtype=dtype, requires_grad=True)
    return h, w


@requires_torch
class AgainstNumpy(unittest.TestCase):
    problems = [random_problem(1, mask=[1, 1, 0, 1, 1, 1]), random_problem(2, n=5),
                random_problem(3, n=4, vocab=12, whole=True, mask=[1, 0, 1, 1])]

    def check(self, out: Any, h: Any, w: Any, ref: tuple[float, Any, Any], tol: float) -> None:
        value, dh, dw = ref
        backward(out.loss)
        self.assertAlmostEqual(float(out.loss.detach()), value, delta=tol)
        np.testing.assert_allclose(h.grad.double().numpy(), dh, atol=tol, rtol=0)
        np.testing.assert_allclose(w.grad.double().numpy(), dw, atol=tol, rtol=0)

    def test_restricted(self) -> None:
        for p in self.problems:
            for alpha, temp in [(0.0, 1.0), (0.6, 2.0), (0.3, 0.7), (1.0, 1.0)]:
                for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 2e-6)]:
                    for gold_index in (False, True):
                        with self.subTest(alpha=alpha, temp=temp, dtype=dtype, gold_index=gold_index):
                            h, w = tensors(p, dtype)
                            out = restricted_softmax_loss(h, w, p.batch(dtype, gold_index), alpha, temp)
                            self.check(out, h, w, reference_restricted(p, alpha, temp), tol)
                            self.assertEqual(out.supervised, int(p.mask.sum()))

    def test_tail(self) -> None:
        for p in self.problems:
            for negatives, alpha, seed, draw in [(8, 0.0, 5, 3), (8, 0.5, 5, 7), (3, 1.0, 2, 9), (100, 0.5, 4, 2)]:
                drawn = draw_negatives(min(negatives, p.vocab), p.vocab, seed, draw)
                for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 2e-6)]:
                    with self.subTest(negatives=negatives, alpha=alpha, dtype=dtype):
                        h, w = tensors(p, dtype)
                        out = sampled_tail_loss(h, w, p.batch(dtype), negatives, alpha, seed, draw)
                        self.check(out, h, w, reference_tail(p, drawn, alpha), tol)

    def test_full(self) -> None:
        for p in self.problems:
            for chunk in (1, 2, 256):
                for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 2e-6)]:
                    h, w = tensors(p, dtype)
                    out = full_softmax_loss(h, w, torch.tensor(p.gold), torch.tensor(p.mask), chunk_rows=chunk)
                    self.check(out, h, w, reference_full(p), tol)

    def test_gradcheck_finite_differences(self) -> None:
        p = self.problems[0]
        b = p.batch(torch.float64)
        h, w = tensors(p, torch.float64)
        for name, f in [
            ("CE_S", lambda h, w: restricted_softmax_loss(h, w, b).loss),
            ("KD_S", lambda h, w: restricted_softmax_loss(h, w, b, 0.7, 1.7).loss),
            ("tail", lambda h, w: sampled_tail_loss(h, w, b, 9, 0.0, 1, 1).loss),
            ("tail KD", lambda h, w: sampled_tail_loss(h, w, b, 9, 0.5, 1, 1).loss),
            ("full", lambda h, w: full_softmax_loss(h, w, b.gold, b.mask, chunk_rows=2).loss),
            ("gathered", lambda h, w: gathered_logits(h, w, torch.tensor([0, 0, 3, 2]), torch.tensor([5, 1, 5, 39]),
                                                      chunk=3)),
        ]:
            with self.subTest(name):
                self.assertTrue(torch.autograd.gradcheck(f, (h, w)))


@requires_torch
class Identities(unittest.TestCase):
    def test_whole_vocabulary_set_is_the_full_cross_entropy(self) -> None:
        p = random_problem(7, n=5, vocab=15, whole=True, mask=[1, 1, 0, 1, 1])
        h, w = tensors(p, torch.float64)
        restricted = restricted_softmax_loss(h, w, p.batch(torch.float64))
        full = full_softmax_loss(h, w, torch.tensor(p.gold), torch.tensor(p.mask))
        self.assertAlmostEqual(float(restricted.loss), float(full.loss), places=12)
        tail = sampled_tail_loss(h, w, p.batch(torch.float64), negatives=5, kd_alpha=0.0)
        self.assertAlmostEqual(float(tail.loss), float(full.loss), places=12, msg="no tail when S = V")

    def test_restricted_ce_equals_full_ce_plus_log_of_inside_mass(self) -> None:
        p = random_problem(8)
        h, w = tensors(p, torch.float64)
        ce_s = restricted_softmax_loss(h, w, p.batch(torch.float64)).loss
        z = h.detach() @ w.detach().T
        logp = z - torch.logsumexp(z, 1, keepdim=True)
        expected = 0.0
        for i in range(p.n):
            ids, _ = p.set(i)
            ce = -float(logp[i, p.gold[i]])
            inside = float(logp[i, torch.tensor(ids)].exp().sum())   # 1 − ρ_student
            expected += ce + math.log(inside)
        self.assertAlmostEqual(float(ce_s), expected / p.n, places=12)

    def test_kd_is_zero_when_the_student_matches_the_teacher(self) -> None:
        p = random_problem(9, n=3, d=40, vocab=40)
        # W = identity, h = teacher log-probs on the set ⇒ z_j = lp_j on S.
        w = torch.eye(40, dtype=torch.float64)
        h = torch.full((3, 40), -30.0, dtype=torch.float64)
        for i in range(3):
            ids, lps = p.set(i)
            h[i, torch.tensor(ids)] = torch.tensor(lps)
        for temp in (1.0, 2.5):
            out = restricted_softmax_loss(h, w, p.batch(torch.float64), 1.0, temp)
            self.assertAlmostEqual(float(out.distillation), 0.0, places=12)

    def test_whole_vocabulary_draw_gives_the_exact_tail_kl(self) -> None:
        p = random_problem(10, n=4, vocab=30)
        h, w = tensors(p, torch.float64)
        out = sampled_tail_loss(h, w, p.batch(torch.float64), negatives=30, kd_alpha=1.0)
        z = h.detach() @ w.detach().T
        logp = z - torch.logsumexp(z, 1, keepdim=True)
        expected = 0.0
        for i in range(p.n):
            ids, lps = p.set(i)
            t = np.exp(lps)
            rho_t = 1 - t.sum()
            s = torch.tensor(ids)
            rho = 1 - float(logp[i, s].exp().sum())
            expected += float(np.sum(t * (np.log(t) - logp[i, s].numpy()))) + rho_t * (math.log(rho_t) - math.log(rho))
        self.assertAlmostEqual(float(out.loss), expected / p.n, places=10)

    def test_only_set_and_drawn_rows_get_gradient(self) -> None:
        p = random_problem(11, vocab=200)
        h, w = tensors(p, torch.float32)
        backward(sampled_tail_loss(h, w, p.batch(), negatives=10, kd_alpha=0.5, seed=3, draw=4).loss)
        entry = np.repeat(np.arange(p.n), np.diff(p.offsets))
        touched = set(p.ids[p.mask[entry] == 1].tolist())
        touched |= set(draw_negatives(10, 200, 3, 4))
        nonzero = set(torch.nonzero(w.grad.abs().sum(1)).flatten().tolist())
        self.assertTrue(nonzero <= touched)
        self.assertGreater(len(nonzero), 10)

    def test_no_supervised_position_gives_zero(self) -> None:
        p = random_problem(12, mask=[0] * 6)
        losses: list[Callable[[Any, Any], Any]] = [
            lambda h, w: restricted_softmax_loss(h, w, p.batch(), 0.5, 2.0),
            lambda h, w: sampled_tail_loss(h, w, p.batch(), 8, 0.5),
            lambda h, w: full_softmax_loss(h, w, torch.tensor(p.gold), torch.tensor(p.mask))]
        for f in losses:
            h, w = tensors(p, torch.float32)
            out = f(h, w)
            backward(out.loss)
            self.assertEqual((float(out.loss), out.supervised), (0.0, 0))
            self.assertEqual(float(h.grad.abs().sum()), 0.0)

    def test_bad_batches_are_refused(self) -> None:
        p = random_problem(13)
        h, w = tensors(p, torch.float32)
        b = p.batch()
        outside = next(j for j in range(40) if j not in p.set(0)[0])
        wrong_gold = b.gold.clone()
        wrong_gold[0] = outside
        cases = {
            "gold not in set": CandidateBatch(b.set_offsets, b.ids, b.logprobs, wrong_gold, b.mask),
            "id ≥ vocab": CandidateBatch(b.set_offsets, b.ids + 40, b.logprobs, b.gold + 40, b.mask),
            "offsets": CandidateBatch(b.set_offsets[:-1], b.ids, b.logprobs, b.gold[:-1], b.mask[:-1]),
            "non-finite": CandidateBatch(b.set_offsets, b.ids, b.logprobs * float("inf"), b.gold, b.mask),
        }
        for name, bad in cases.items():
            with self.subTest(name), self.assertRaises(ValueError):
                restricted_softmax_loss(h, w, bad)
        with self.assertRaises(ValueError):
            restricted_softmax_loss(h, w, b, kd_alpha=1.5)
        with self.assertRaises(ValueError):
            restricted_softmax_loss(h, w, b, temperature=0)
        with self.assertRaises(ValueError):
            sampled_tail_loss(h, w, b, negatives=0)

    def test_bfloat16_inputs_compute_in_float32(self) -> None:
        p = random_problem(14)
        h32, w32 = tensors(p, torch.float32)
        hb = h32.detach().bfloat16().requires_grad_()
        wb = w32.detach().bfloat16().requires_grad_()
        out = restricted_softmax_loss(hb, wb, p.batch(), 0.5, 2.0)
        self.assertEqual(out.loss.dtype, torch.float32)
        backward(out.loss)
        self.assertEqual((hb.grad.dtype, wb.grad.dtype), (torch.bfloat16, torch.bfloat16))


if __name__ == "__main__":
    unittest.main()
