"""MoClip in torch: the invariants of docs/DESIGN.md §7 (as Tests/OptimTests checks them for the
Swift optimizer), the fast atan2, state_dict round trips, and the training LR schedule."""

from __future__ import annotations

import io
import math
import unittest
from typing import Any

import numpy as np

import support  # noqa: F401
from torch_support import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch

    from logitd.torch import (MoClip, NonFiniteGradientError, adam_atan2, atan2_over_square_root,
                              training_lr_scheduler, training_schedule, warmup_cosine)
    from logitd.torch.moclip import decide


def telemetry(opt: Any) -> dict[str, Any]:
    assert opt.last_telemetry is not None
    out: dict[str, Any] = opt.last_telemetry
    return out


def make_params(seed: int = 1) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(37, 29), (29,), (7,), (1,)]
    return [torch.nn.Parameter(torch.rand(s, generator=g) * 2 - 1) for s in shapes]


def quadratic_grads(params: list[Any], step: int, scale: float = 1.0, noise: float = 0.5) -> None:
    for k, p in enumerate(params):
        g = torch.Generator().manual_seed(step * 1_000_003 + k)
        i = torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape)
        curvature = 1 + (i % 5)
        target = ((i % 7) - 3) * 0.1
        p.grad = scale * (curvature * (p.detach() - target) + noise * (torch.rand(p.shape, generator=g) * 2 - 1))


def groups(params: list[Any], wd: float = 0.05) -> list[dict[str, Any]]:
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


@requires_torch
class FastAtan2(unittest.TestCase):
    def test_error_bound_and_special_values(self) -> None:
        rng = np.random.default_rng(0)
        y = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.uniform(-20, 20, 20000),
                            [0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-38, 1e-45]]).astype(np.float32)
        w = np.concatenate([np.abs(rng.standard_normal(20000)) * 10.0 ** rng.uniform(-38, 38, 20000),
                            [0.0, 1.0, 1.0, 1.0, 0.0, np.inf, 1e-45, 4.0]]).astype(np.float32)
        got = atan2_over_square_root(torch.from_numpy(y), torch.from_numpy(w)).numpy().astype(np.float64)
        wc = np.clip(w.astype(np.float64), np.finfo(np.float32).tiny, np.finfo(np.float32).max)
        exact = np.arctan2(y.astype(np.float64), np.sqrt(wc))
        self.assertLessEqual(float(np.max(np.abs(got - exact))), 1e-4)
        self.assertTrue(np.all(np.abs(got) <= np.float32(math.pi / 2)))
        self.assertEqual(np.signbit(got[y == 0]).tolist(), np.signbit(y[y == 0]).tolist())
        # Pinned to π/4 at |y| = √w up to the 1/√w estimate (FastAtan2Tests: 3e-6): first steps are lr·a·π/4.
        first = atan2_over_square_root(torch.tensor([2.0, -7.0, 0.3]), torch.tensor([4.0, 49.0, 0.09]))
        self.assertTrue(torch.allclose(first.abs(), torch.tensor(math.pi / 4), atol=3e-6, rtol=0))


@requires_torch
class Invariants(unittest.TestCase):
    def test_max_angle_pi_is_exactly_adam_atan2(self) -> None:
        a, b, c = make_params(), make_params(), make_params()
        opt_pi = MoClip(groups(a), lr=0.01, max_angle=math.pi)
        opt_off = adam_atan2(groups(b), lr=0.01)
        opt_half = MoClip(groups(c), lr=0.01)
        clipped = []
        for s in range(1, 13):
            for params, opt in ((a, opt_pi), (b, opt_off), (c, opt_half)):
                quadratic_grads(params, s, noise=20.0)
                opt.step()
            self.assertEqual(telemetry(opt_pi)["clipped_fraction"], 0.0)
            clipped.append(telemetry(opt_half)["clipped_fraction"])
        for x, y in zip(a, b):
            self.assertTrue(torch.equal(x, y), "Δmax = π must reproduce Adam-atan2 bit for bit")
        self.assertIsNotNone(telemetry(opt_pi)["mean_angle_before_clip"])
        self.assertIsNone(telemetry(opt_off)["mean_angle_before_clip"])
        self.assertTrue(any(f > 0 for f in clipped))
        self.assertFalse(all(torch.equal(x, y) for x, y in zip(b, c)))

    def test_every_coordinate_moves_at_most_lr_a_pi_over_two(self) -> None:
        params = make_params()
        opt = MoClip(params, lr=0.01, max_angle=math.pi / 4)
        bound = 0.01 * 1.27 * math.pi / 2
        rng = np.random.default_rng(5)
        observed = 0.0
        for s in range(1, 26):
            for p in params:
                i = np.arange(p.numel())
                magnitude = np.array([1e-30, 1e-3, 1, 1e6, 1e15])[(i + s) % 5]
                sign = np.where(rng.random(p.numel()) < 0.5, -1.0, 1.0)
                g = np.where((i + s) % 11 == 0, 0.0, magnitude * sign).astype(np.float32)
                p.grad = torch.from_numpy(g).reshape(p.shape)
            before = [p.detach().clone() for p in params]
            opt.step()
            step_max = max(float((p.detach() - b).abs().max()) for p, b in zip(params, before))
            self.assertLessEqual(step_max, bound * (1 + 1e-5) + 5e-7)
            self.assertAlmostEqual(telemetry(opt)["max_coordinate_step"], step_max, delta=1e-6 + 1e-3 * step_max)
            observed = max(observed, step_max)
        self.assertGreater(observed, 0.5 * bound)

    def test_scaling_the_loss_changes_nothing(self) -> None:
        a, b = make_params(), make_params()
        opt_a = MoClip(groups(a), lr=0.01)
        opt_b = MoClip(groups(b), lr=0.01)
        for s in range(1, 9):
            quadratic_grads(a, s, scale=1.0)
            quadratic_grads(b, s, scale=1000.0)
            opt_a.step()
            opt_b.step()
        for x, y in zip(a, b):
            self.assertLess(float((x - y).detach().abs().max()), 1e-5)

    def test_clip_keeps_the_norm_and_caps_the_angle(self) -> None:
        for clip, max_angle in [("angle", math.pi / 2), ("angle", math.pi / 6), ("momentum", math.pi / 12)]:
            params = make_params()
            opt = MoClip(params, lr=0.01, clip=clip, max_angle=max_angle, betas=(0.9, 0.99))
            beta1 = float(np.float32(0.9))
            for s in range(1, 15):
                quadratic_grads(params, s, noise=30.0)
                old = [opt.state[p]["exp_avg"].clone().double() if opt.state[p] else None for p in params]
                grads = [p.grad.double().flatten() for p in params]
                opt.step()
                for p, m_old, g in zip(params, old, grads):
                    if m_old is None or float(m_old.norm()) == 0 or p.numel() == 1:
                        continue  # a 1-element tensor is always (anti-)parallel: the degenerate rule
                    m_new = opt.state[p]["exp_avg"].double().flatten()
                    m_old = m_old.flatten()
                    g_clipped = (m_new - beta1 * m_old) / (1 - beta1)
                    self.assertAlmostEqual(float(g_clipped.norm() / g.norm()), 1.0, delta=1e-4)
                    if clip == "angle":
                        cos = float(g_clipped @ m_old / (g_clipped.norm() * m_old.norm()))
                        self.assertLessEqual(math.acos(max(-1.0, min(1.0, cos))), max_angle + 1e-3)
                    else:
                        cos = float(m_new @ m_old / (m_new.norm() * m_old.norm()))
                        self.assertLessEqual(math.acos(max(-1.0, min(1.0, cos))), max_angle + 1e-3)

    def test_degenerate_geometry(self) -> None:
        # g exactly opposite m: g' = ‖g‖·cos Δmax·u; along m at Δmax = 0: g' = ‖g‖·u.
        d = decide(-4.0, 4.0, 4.0, "angle", math.pi / 3, 0.9)
        self.assertTrue(d.clipped and d.degenerate)
        self.assertAlmostEqual(d.momentum_scale, math.cos(math.pi / 3))
        self.assertEqual(d.gradient_scale, 0.0)
        d = decide(1.0, 1.0, 1.0 + 1e-15, "angle", 0.0, 0.9)
        self.assertTrue(d.degenerate)
        self.assertEqual(decide(1.0, 0.0, 1.0, "angle", 0.5, 0.9).angle, None)
        self.assertFalse(decide(-1.0, 1.0, 1.0, "angle", math.pi, 0.9).clipped)

    def test_non_finite_gradient_is_refused_before_any_change(self) -> None:
        params = make_params()
        opt = MoClip(params, lr=0.01)
        quadratic_grads(params, 1)
        opt.step()
        before = [p.detach().clone() for p in params]
        state = {k: v.clone() for k, v in opt.state[params[0]].items() if isinstance(v, torch.Tensor)}
        quadratic_grads(params, 2)
        params[2].grad[3] = float("nan")
        with self.assertRaises(NonFiniteGradientError):
            opt.step()
        for p, b in zip(params, before):
            self.assertTrue(torch.equal(p.detach(), b))
        self.assertTrue(all(torch.equal(opt.state[params[0]][k], v) for k, v in state.items()))
        self.assertEqual(opt.steps_taken, 1)

    def test_options_are_validated(self) -> None:
        p = make_params()
        for kw in [dict(lr=-1.0), dict(betas=(1.0, 0.9)), dict(a=0.0), dict(clip="nope"),
                   dict(max_angle=4.0), dict(clip="momentum", max_angle=2.0), dict(granularity="layer"),
                   dict(lr=0.1, weight_decay=10.0), dict(atan2="slow")]:
            with self.subTest(kw), self.assertRaises(ValueError):
                MoClip(p, **kw)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            MoClip([{"params": p[:2], "granularity": "global"}, {"params": p[2:], "max_angle": 1.0}])


@requires_torch
class StateDict(unittest.TestCase):
    def test_round_trip_resumes_bit_identically(self) -> None:
        for granularity in ("tensor", "global"):
            a = make_params()
            opt = MoClip(groups(a), lr=0.01, granularity=granularity)
            for s in range(1, 4):
                quadratic_grads(a, s, noise=10.0)
                opt.step()
            buffer = io.BytesIO()
            torch.save({"params": [p.detach().clone() for p in a], "opt": opt.state_dict()}, buffer)
            for s in range(4, 8):
                quadratic_grads(a, s, noise=10.0)
                opt.step()
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
            b = [torch.nn.Parameter(t) for t in saved["params"]]
            resumed = MoClip(groups(b), lr=0.5, granularity=granularity)
            resumed.load_state_dict(saved["opt"])
            self.assertEqual(resumed.param_groups[0]["lr"], 0.01)
            self.assertEqual(resumed.steps_taken, 3)
            for s in range(4, 8):
                quadratic_grads(b, s, noise=10.0)
                resumed.step()
            for x, y in zip(a, b):
                self.assertTrue(torch.equal(x, y), granularity)
            for x, y in zip(a, b):
                for key in ("exp_avg", "exp_avg_sq"):
                    self.assertTrue(torch.equal(opt.state[x][key], resumed.state[y][key]))

    def test_bfloat16_parameters_keep_float32_moments(self) -> None:
        p = [torch.nn.Parameter(torch.linspace(-1, 1, 10).bfloat16())]
        opt = MoClip(p, lr=0.01)
        p[0].grad = torch.linspace(1, -1, 10).bfloat16()
        opt.step()
        self.assertEqual(opt.state[p[0]]["exp_avg"].dtype, torch.float32)
        q = [torch.nn.Parameter(p[0].detach().clone())]
        other = MoClip(q, lr=0.01)
        other.load_state_dict(opt.state_dict())
        self.assertEqual(other.state[q[0]]["exp_avg_sq"].dtype, torch.float32)
        self.assertTrue(torch.equal(other.state[q[0]]["exp_avg_sq"], opt.state[p[0]]["exp_avg_sq"]))


@requires_torch
class Schedule(unittest.TestCase):
    def test_training_schedule(self) -> None:
        s = training_schedule(0.02, 4, 20)
        self.assertEqual(s(1), float(np.float32(0.02 * 1 / 4)))
        self.assertEqual(s(4), float(np.float32(0.02)))
        self.assertEqual(s(20), float(np.float32(0.02) / np.float32(10)))
        self.assertEqual(s(500), s(20))
        values = [s(t) for t in range(4, 21)]
        self.assertEqual(values, sorted(values, reverse=True))
        self.assertEqual(training_schedule(1.0, 0, 1)(1), 1.0, "a one-step run uses the peak")
        with self.assertRaises(ValueError):
            warmup_cosine(1.0, 5, 5, 0.1)

    def test_lambda_lr_follows_the_schedule(self) -> None:
        params = make_params()
        opt = MoClip([{"params": params[:1], "lr": 0.02}, {"params": params[1:], "lr": 0.004}])
        scheduler = training_lr_scheduler(opt, warmup=3, steps=12)
        expected = [training_schedule(0.02, 3, 12), training_schedule(0.004, 3, 12)]
        for t in range(1, 16):
            for group, sched in zip(opt.param_groups, expected):
                self.assertEqual(float(np.float32(group["lr"])), sched(t), f"step {t}")
            quadratic_grads(params, t)
            opt.step()
            scheduler.step()
        buffer = io.BytesIO()
        torch.save({"opt": opt.state_dict(), "sched": scheduler.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=False)
        fresh = MoClip([{"params": params[:1], "lr": 0.02}, {"params": params[1:], "lr": 0.004}])
        resumed = training_lr_scheduler(fresh, warmup=3, steps=12)   # PyTorch's order: build both, then load
        fresh.load_state_dict(saved["opt"])
        resumed.load_state_dict(saved["sched"])
        self.assertEqual([g["lr"] for g in fresh.param_groups], [g["lr"] for g in opt.param_groups])
        quadratic_grads(params, 16)
        resumed.step()
        scheduler.step()
        self.assertEqual([g["lr"] for g in fresh.param_groups], [g["lr"] for g in opt.param_groups])


if __name__ == "__main__":
    unittest.main()
