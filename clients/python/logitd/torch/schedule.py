"""``LRSchedule`` (Sources/Optim/LRSchedule.swift) and ``LRSchedule.training`` (Sources/Training):
linear warmup, then cosine decay to a tenth of the peak, as a pure function of the 1-based step,
rounded to float32 as the Swift schedule returns it; and a ``LambdaLR`` that follows it."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["training_lr_scheduler", "training_schedule", "warmup_cosine"]

F32 = np.float32


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, minimum: float) -> Callable[[int], float]:
    """``LRSchedule.warmupCosine``: peak·t/warmup for t ≤ warmup, then cosine from peak to
    ``minimum`` at ``total_steps``, ``minimum`` after. Returns step (1-based) → learning rate
    (a float32 value)."""
    p, mn = float(F32(peak)), float(F32(minimum))
    if not (math.isfinite(p) and p >= 0):
        raise ValueError(f"warmup-cosine peak {peak}, expected finite and ≥ 0")
    if not (math.isfinite(mn) and 0 <= mn <= p):
        raise ValueError(f"warmup-cosine minimum {minimum}, expected finite, ≥ 0 and ≤ peak {peak}")
    if warmup_steps < 0:
        raise ValueError(f"warmup-cosine warmup_steps {warmup_steps}, expected ≥ 0")
    if total_steps <= warmup_steps:
        raise ValueError(f"warmup-cosine total_steps {total_steps}, expected > warmup_steps {warmup_steps}")

    def rate(step: int) -> float:
        t = max(step, 1)
        if t <= warmup_steps:
            return float(F32(p * t / warmup_steps))
        if t >= total_steps:
            return mn
        progress = (t - warmup_steps) / (total_steps - warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return float(F32(mn + (p - mn) * cosine))
    return rate


def training_schedule(peak: float, warmup: int, steps: int) -> Callable[[int], float]:
    """``LRSchedule.training(peak:warmup:steps:)``: warmup over max(warmup, 1) steps, cosine decay
    to peak/10 at step max(steps, warmup + 1)."""
    w = max(warmup, 1)
    p = F32(peak)
    return warmup_cosine(float(p), w, max(steps, w + 1), float(p / F32(10)))


class _Factor:
    """LambdaLR's multiplier: the schedule's rate for step k + 1 over the group's base rate. Plain
    numbers only, so ``LambdaLR.state_dict()`` (which keeps callables' ``__dict__``) pickles."""

    def __init__(self, base: float, warmup: int, steps: int) -> None:
        self.base, self.warmup, self.steps = base, warmup, steps

    def __call__(self, k: int) -> float:
        if self.base == 0:
            return 0.0
        return training_schedule(self.base, self.warmup, self.steps)(k + 1) / self.base


def training_lr_scheduler(optimizer: Optimizer, warmup: int, steps: int, last_epoch: int = -1) -> LambdaLR:
    """A ``LambdaLR`` giving each group ``training_schedule(initial lr, warmup, steps)``: with the
    usual ``optimizer.step(); scheduler.step()`` loop, optimizer step t (1-based) runs at the
    schedule's rate for step t, as ``logit-train`` does. (MoClip rounds the rate to float32,
    so its steps see exactly the Swift rate.)"""
    lambdas: list[Callable[[int], float]] = []
    for group in optimizer.param_groups:
        base = float(group.get("initial_lr", group["lr"]))
        training_schedule(base, warmup, steps)  # validates
        lambdas.append(_Factor(base, warmup, steps))
    return LambdaLR(optimizer, lambdas, last_epoch=last_epoch)
