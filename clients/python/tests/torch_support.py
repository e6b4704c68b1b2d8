"""Shared by the torch tests: skip cleanly without torch, and an independent float64 numpy
reference of the three losses (values and gradients from the closed forms of docs/DESIGN.md §6)."""

from __future__ import annotations

import math
import unittest
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import torch
    HAVE_TORCH = True
    # The test tensors are tiny: one thread, so OpenMP workers never spin against other processes
    # on a busy machine (that made these tests 10× slower on 2 cores).
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_TORCH = False

requires_torch = unittest.skipUnless(HAVE_TORCH, "torch is not installed (pip install 'logitd[torch]'); "
                                                 "the logitd.torch tests are skipped")


def backward(loss: Any) -> None:
    """``loss.backward()`` (torch's stubs leave it untyped)."""
    loss.backward()


@dataclass
class Problem:
    """One LM-head problem in numpy: H (N×d), W (V×d) and CSR sets."""

    hidden: np.ndarray
    weight: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    logprobs: np.ndarray
    gold: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        return int(self.hidden.shape[0])

    @property
    def vocab(self) -> int:
        return int(self.weight.shape[0])

    def set(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[lo:hi].astype(np.int64), self.logprobs[lo:hi].astype(np.float64)

    def batch(self, dtype: Any = None, gold_index: bool = False) -> Any:
        import torch

        from logitd.torch import CandidateBatch
        gi = None
        if gold_index:
            gi = torch.tensor([int(np.nonzero(self.set(i)[0] == self.gold[i])[0][0]) for i in range(self.n)])
        return CandidateBatch(torch.tensor(self.offsets, dtype=torch.long), torch.tensor(self.ids, dtype=torch.long),
                              torch.tensor(self.logprobs, dtype=dtype or torch.float32),
                              None if gold_index else torch.tensor(self.gold, dtype=torch.long),
                              torch.tensor(self.mask, dtype=torch.uint8), gi)


def random_problem(seed: int, n: int = 6, d: int = 8, vocab: int = 40, whole: bool = False,
                   mask: list[int] | None = None, covered: float = 0.5) -> Problem:
    """Random H, W and per position a random subset containing the gold, with teacher log-probs
    that leave about 1 − ``covered`` of the mass outside the set."""
    rng = np.random.default_rng(seed)
    hidden = rng.uniform(-1, 1, (n, d))
    weight = 1.5 * rng.uniform(-1, 1, (vocab, d))
    offsets, ids, lps, gold = [0], [], [], []
    for _ in range(n):
        k = vocab if whole else int(rng.integers(2, 8))
        s = rng.choice(vocab, k, replace=False)
        p = rng.dirichlet(np.ones(k)) * (1.0 if whole else covered)
        ids += s.tolist()
        lps += np.log(np.maximum(p, 1e-12)).tolist()
        gold.append(int(s[rng.integers(k)]))
        offsets.append(len(ids))
    return Problem(hidden, weight, np.array(offsets), np.array(ids), np.array(lps), np.array(gold),
                   np.array(mask if mask is not None else [1] * n, dtype=np.uint8))


def _lse(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.sum(np.exp(x - m))))


def reference_restricted(p: Problem, alpha: float, temperature: float) -> tuple[float, np.ndarray, np.ndarray]:
    h, w = p.hidden.astype(np.float64), p.weight.astype(np.float64)
    supervised = [i for i in range(p.n) if p.mask[i]]
    dh, dw = np.zeros_like(h), np.zeros_like(w)
    total = 0.0
    for i in supervised:
        ids, lps = p.set(i)
        z = w[ids] @ h[i]
        g = int(np.nonzero(ids == p.gold[i])[0][0])
        ce = _lse(z) - z[g]
        soft = np.exp(z - _lse(z))
        q = np.exp(lps / temperature - _lse(lps / temperature))
        pt = np.exp(z / temperature - _lse(z / temperature))
        kd = temperature ** 2 * float(np.sum(q * (np.log(q) - np.log(pt))))
        total += (1 - alpha) * ce + alpha * kd
        onehot = np.zeros(len(ids))
        onehot[g] = 1
        dz = ((1 - alpha) * (soft - onehot) + alpha * temperature * (pt - q)) / len(supervised)
        dh[i] = dz @ w[ids]
        np.add.at(dw, ids, dz[:, None] * h[i][None, :])
    return total / max(len(supervised), 1), dh, dw


def reference_tail(p: Problem, drawn: list[int], alpha: float) -> tuple[float, np.ndarray, np.ndarray]:
    h, w = p.hidden.astype(np.float64), p.weight.astype(np.float64)
    supervised = [i for i in range(p.n) if p.mask[i]]
    dh, dw = np.zeros_like(h), np.zeros_like(w)
    total = 0.0
    for i in supervised:
        ids, lps = p.set(i)
        outside = np.array([j for j in drawn if j not in set(ids.tolist())], dtype=np.int64)
        z = w[ids] @ h[i]
        z_out = w[outside] @ h[i] if len(outside) else np.zeros(0)
        weight_ht = (p.vocab - len(ids)) / len(outside) if len(outside) else 0.0
        e_s = np.exp(z)
        e_o = weight_ht * np.exp(z_out)
        z_hat = float(e_s.sum() + e_o.sum())
        g = int(np.nonzero(ids == p.gold[i])[0][0])
        ce = math.log(z_hat) - z[g]
        t = np.exp(lps)
        rho_t = max(0.0, 1 - float(t.sum())) if len(outside) else 0.0
        norm = float(t.sum()) + rho_t
        t, rho_t = t / norm, rho_t / norm
        rho_hat = float(e_o.sum()) / z_hat
        kd = float(sum(tj * (math.log(tj) - (zj - math.log(z_hat))) for tj, zj in zip(t, z) if tj > 0))
        if rho_t > 0:
            kd += rho_t * (math.log(rho_t) - math.log(rho_hat))
        total += (1 - alpha) * ce + alpha * kd
        p_hat = e_s / z_hat
        onehot = np.zeros(len(ids))
        onehot[g] = 1
        dz = (p_hat - (1 - alpha) * onehot - alpha * t) / len(supervised)
        dz_out = (e_o / z_hat) * (1 - (alpha * rho_t / rho_hat if rho_hat > 0 else 0.0)) / len(supervised)
        dh[i] = dz @ w[ids] + (dz_out @ w[outside] if len(outside) else 0.0)
        np.add.at(dw, ids, dz[:, None] * h[i][None, :])
        if len(outside):
            np.add.at(dw, outside, dz_out[:, None] * h[i][None, :])
    return total / max(len(supervised), 1), dh, dw


def reference_full(p: Problem) -> tuple[float, np.ndarray, np.ndarray]:
    h, w = p.hidden.astype(np.float64), p.weight.astype(np.float64)
    supervised = [i for i in range(p.n) if p.mask[i]]
    dh, dw = np.zeros_like(h), np.zeros_like(w)
    total = 0.0
    for i in supervised:
        z = w @ h[i]
        total += _lse(z) - z[p.gold[i]]
        dz = np.exp(z - _lse(z))
        dz[p.gold[i]] -= 1
        dz /= len(supervised)
        dh[i] = dz @ w
        dw += dz[:, None] * h[i][None, :]
    return total / max(len(supervised), 1), dh, dw
