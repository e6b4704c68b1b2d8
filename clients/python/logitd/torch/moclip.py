"""MoClip (docs/DESIGN.md §7) as a ``torch.optim.Optimizer``: a port of ``Sources/Optim/MoClip.swift``
with ``MoClipGeometry.swift``, ``UpdateKernels.swift`` and ``FastAtan2.atan2OverSquareRoot``.

Per step t and clipping unit (a tensor, or with ``granularity="global"`` all tensors together):

1. ⟨g,m⟩, ‖g‖², ‖m‖² in float64; a non-finite ‖g‖² raises :class:`NonFiniteGradientError` before
   any state changes (only while the clip is on).
2. Angle clip: if θ = angle(g, m) > Δmax, g' = α·g + β·m with ‖g'‖ = ‖g‖ and angle(g', m) = Δmax
   (``clip="angle"``), or the least rotation that turns the new momentum by at most Δmax
   (``clip="momentum"``); ``clip="off"`` is Adam-atan2.
3. m ← β1·m + (1−β1)·g', v ← β2·v + (1−β2)·g'² (or g² with ``second_moment_from_clipped=False``).
4. p ← p·(1 − lr·λ) − lr·a·atan2(m̂, b·√v̂), m̂ and v̂ bias-corrected; no ε.

The arithmetic follows the Swift kernels operation by operation in float32 (coefficients decided
in float64 and rounded once, the learning rate rounded to float32 as the Swift schedule returns
it, no fused multiply-adds, the same degree-7 atan2 polynomial), so on the same inputs the updated
parameters and moments equal the Swift ones to float32 rounding — usually bit for bit.
``atan2="exact"`` uses ``torch.atan2`` instead of the polynomial (error ≤ 1e-4 rad apart).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ClipDecision", "MoClip", "NonFiniteGradientError", "adam_atan2", "atan2_over_square_root", "decide"]

F32 = np.float32
DEGENERATE_SINE = 1e-3
_CLIPS = ("angle", "momentum", "off")
_GRANULARITIES = ("tensor", "global")


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds NaN or ∞ (``OptimError.nonFiniteGradient``); nothing was updated."""


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 (as a Python float)."""
    return float(F32(x))


# -- geometry ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipDecision:
    """g' = gradient_scale·g + momentum_scale·m (``ClipDecision``)."""

    gradient_scale: float = 1.0
    momentum_scale: float = 0.0
    clipped: bool = False
    degenerate: bool = False
    angle: float | None = None


def decide(dot: float, grad_norm_sq: float, momentum_norm_sq: float, clip: str, max_angle: float,
           beta1: float) -> ClipDecision:
    """``MoClipGeometry.decide`` in float64 (``beta1`` as the optimizer holds it, a float32 value)."""
    if not (grad_norm_sq > 0 and momentum_norm_sq > 0):
        return ClipDecision()
    c = max(-1.0, min(1.0, dot / (math.sqrt(grad_norm_sq) * math.sqrt(momentum_norm_sq))))
    theta = math.acos(c)
    sin_theta = math.sqrt(max(0.0, 1 - c * c))
    g_norm = math.sqrt(grad_norm_sq)
    m_norm = math.sqrt(momentum_norm_sq)
    if clip == "off":
        return ClipDecision(angle=theta)
    if clip == "angle":
        if not (max_angle < math.pi and theta > max_angle):
            return ClipDecision(angle=theta)
        if sin_theta < DEGENERATE_SINE:
            along = 1.0 if c > 0 else math.cos(max_angle)
            return ClipDecision(0.0, g_norm * along / m_norm, True, True, theta)
        psi = max_angle
    elif clip == "momentum":
        big_a = beta1 * m_norm
        big_r = (1 - beta1) * g_norm
        phi = math.atan2(big_r * sin_theta, big_a + big_r * c)
        if not phi > max_angle:
            return ClipDecision(angle=theta)
        sin_d, cos_d = math.sin(max_angle), math.cos(max_angle)
        reach = big_a * cos_d + math.sqrt(max(0.0, big_r * big_r - big_a * big_a * sin_d * sin_d))
        cos_psi = max(-1.0, min(1.0, (reach * cos_d - big_a) / big_r))
        sin_psi = max(0.0, min(1.0, reach * sin_d / big_r))
        if sin_theta < DEGENERATE_SINE:
            return ClipDecision(0.0, g_norm * cos_psi / m_norm, True, True, theta)
        psi = math.atan2(sin_psi, cos_psi)
    else:
        raise ValueError(f"clip {clip!r}, expected one of {_CLIPS}")
    alpha = math.sin(psi) / sin_theta
    beta = (g_norm / m_norm) * math.sin(theta - psi) / sin_theta
    return ClipDecision(alpha, beta, True, False, theta)


# -- the atan2 of the update ---------------------------------------------------------------------

_SIGN = -(1 << 31)          # 0x8000_0000 as int32
_MAGNITUDE = (1 << 31) - 1  # 0x7fff_ffff
_MAGIC = 0x5F3759DF
_LEAST_NORMAL = float(np.finfo(np.float32).tiny)
_GREATEST = float(np.finfo(np.float32).max)
# Swift's Float.pi is π rounded toward zero (0x40490FDA), so `.pi / 2` is 0x3FC90FDA, one ulp below
# the nearest float32 to π/2.
_HALF_PI = float(np.array([0x3FC90FDA], dtype=np.uint32).view(np.float32)[0])


def atan2_over_square_root(y: Tensor, w: Tensor) -> Tensor:
    """``FastAtan2.atan2OverSquareRoot``: atan2(y, √w) for float32 w ≥ 0 and finite y, to within
    1e-4 rad, operation by operation as the Swift vector code (bit-trick 1/√w with two Newton
    steps, a degree-7 odd minimax polynomial exact at |y| = √w, folded by octant)."""
    one = torch.ones((), dtype=torch.float32, device=y.device)
    wc = torch.where(w > _LEAST_NORMAL, w, _LEAST_NORMAL * one)
    wc = torch.where(wc < _GREATEST, wc, _GREATEST * one)
    q = (_MAGIC - (wc.view(torch.int32) >> 1)).view(torch.float32)
    y_bits = y.view(torch.int32)
    abs_y = (y_bits & _MAGNITUDE).view(torch.float32)
    inverse_y = 1 / abs_y
    half_w = 0.5 * wc
    q = q * (1.5 - (half_w * q) * q)
    q = q * (1.5 - (half_w * q) * q)
    t = abs_y * q
    other = (wc * q) * inverse_y
    r = torch.where(t < other, t, other)
    s = r * r
    s2 = s * s
    low = s * _f32(-0.32036685943603516) + _f32(0.9991359114646912)
    high = s * _f32(-0.037662193179130554) + _f32(0.14429128170013428)
    a = (low + s2 * high) * r
    folded = torch.where(1 < t, _HALF_PI - a, a)
    return (folded.view(torch.int32) | (y_bits & _SIGN)).view(torch.float32)


def _exact_atan2(y: Tensor, w: Tensor) -> Tensor:
    return torch.atan2(y, w.clamp(min=0).sqrt())


# -- the optimizer -------------------------------------------------------------------------------

class MoClip(torch.optim.Optimizer):
    """MoClip with AdamW-like parameter groups.

    ``MoClip(model.parameters(), lr=3e-4, weight_decay=0.1)``; per group: ``lr``, ``betas``
    (0.9, 0.99), ``weight_decay`` λ (decoupled: p ← p·(1 − lr·λ)), ``a`` = 1.27, ``b`` = 1,
    ``clip`` ("angle" | "momentum" | "off"), ``max_angle`` Δmax = π/2, ``granularity``
    ("tensor" | "global"), ``second_moment_from_clipped`` = True, ``bias_correction`` = True,
    ``atan2`` ("fast": the Swift polynomial | "exact"). The defaults are ``MoClipConfig()``'s.
    There is no ε: the atan2 update needs none.

    Moments are float32 (``exp_avg``, ``exp_avg_sq``) whatever the parameter dtype; parameters
    that are not float32 are updated through a float32 copy. Parameters whose ``grad`` is None
    are skipped (PyTorch's convention; the Swift optimizer updates every tensor it holds). A
    parameter's ``state["step"]`` is its own step count t; :attr:`steps_taken` is the largest —
    the ``draw`` to give :func:`logitd.torch.sampled_tail_loss`. After each step,
    :attr:`last_telemetry` holds the Swift ``StepTelemetry`` fields."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, a: float = 1.27, b: float = 1.0, clip: str = "angle",
                 max_angle: float = math.pi / 2, granularity: str = "tensor", second_moment_from_clipped: bool = True,
                 bias_correction: bool = True, atan2: str = "fast") -> None:
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, a=a, b=b, clip=clip, max_angle=max_angle,
                        granularity=granularity, second_moment_from_clipped=second_moment_from_clipped,
                        bias_correction=bias_correction, atan2=atan2)
        super().__init__(params, defaults)
        self.last_telemetry: dict[str, Any] | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._validate(self.param_groups[-1])
        self._check_global()

    @staticmethod
    def _validate(group: dict[str, Any]) -> None:
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning rate {lr}, expected finite and ≥ 0")
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} = {beta}, expected within [0, 1)")
        if not (math.isfinite(wd) and wd >= 0):
            raise ValueError(f"weight decay {wd}, expected finite and ≥ 0")
        if lr * wd >= 1:
            raise ValueError(f"lr·weight_decay = {lr * wd}, expected < 1 (the decay factor 1 − lr·λ must stay positive)")
        for name in ("a", "b"):
            if not (math.isfinite(group[name]) and group[name] > 0):
                raise ValueError(f"MoClip {name} = {group[name]}, expected finite and > 0")
        if group["clip"] not in _CLIPS:
            raise ValueError(f"clip {group['clip']!r}, expected one of {_CLIPS}")
        limit = math.pi if group["clip"] == "angle" else math.pi / 2
        if group["clip"] != "off" and not 0 <= group["max_angle"] <= limit:
            raise ValueError(f"max_angle {group['max_angle']} rad, expected within [0, {limit:.6f}] for clip "
                             f"{group['clip']!r}")
        if group["granularity"] not in _GRANULARITIES:
            raise ValueError(f"granularity {group['granularity']!r}, expected one of {_GRANULARITIES}")
        if group["atan2"] not in ("fast", "exact"):
            raise ValueError(f"atan2 {group['atan2']!r}, expected 'fast' or 'exact'")
        for p in group["params"]:
            if not p.is_floating_point():
                raise TypeError(f"MoClip updates floating-point tensors, got {p.dtype}")

    def _check_global(self) -> None:
        """Global granularity decides once over every tensor: the groups must agree on it."""
        if not any(g["granularity"] == "global" for g in self.param_groups):
            return
        keys = ("granularity", "clip", "max_angle", "betas")
        first = {k: self.param_groups[0][k] for k in keys}
        for g in self.param_groups[1:]:
            if any(g[k] != first[k] for k in keys):
                raise ValueError(f"granularity 'global' needs every group to share {keys}")

    @property
    def steps_taken(self) -> int:
        """Steps taken so far (the largest per-parameter step count; 0 before the first step)."""
        return max((int(s.get("step", 0)) for s in self.state.values()), default=0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``, but the moments stay float32 whatever the parameters'
        dtype (PyTorch casts floating state to the parameter dtype)."""
        saved_groups = state_dict["param_groups"]
        moments: dict[int, dict[str, Tensor]] = {}
        ids = [i for g in saved_groups for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(ids, params):
            entry = state_dict["state"].get(saved_id)
            if entry is not None:
                moments[id(p)] = {k: v.detach().to(torch.float32, copy=True) for k, v in entry.items()
                                  if k in ("exp_avg", "exp_avg_sq")}
        super().load_state_dict(state_dict)
        for p in params:
            if id(p) in moments:
                for k, v in moments[id(p)].items():
                    self.state[p][k] = v.to(p.device)
                self.state[p]["step"] = int(self.state[p]["step"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work: list[tuple[dict[str, Any], Tensor]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("MoClip does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                    state["exp_avg_sq"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                work.append((group, p))
        if not work:
            return loss

        # 1. Angle statistics, and the non-finite check before anything changes.
        stats: list[tuple[float, float, float] | None] = []
        for group, p in work:
            if group["clip"] == "off":
                stats.append(None)
                continue
            assert p.grad is not None
            g = p.grad.detach().to(torch.float32).double()
            m = self.state[p]["exp_avg"].double()
            dot, gg, mm = float((g * m).sum()), float((g * g).sum()), float((m * m).sum())
            if not math.isfinite(gg):
                name = next((n for n, q in enumerate(group["params"]) if q is p), -1)
                raise NonFiniteGradientError(f"non-finite gradient in parameter {name} of a group "
                                             f"(shape {tuple(p.shape)}); nothing was updated")
            stats.append((dot, gg, mm))

        # 2. Clip decisions.
        decisions: list[ClipDecision] = []
        global_units = [s for (group, _), s in zip(work, stats) if s is not None and group["granularity"] == "global"]
        global_decision: ClipDecision | None = None
        if global_units:
            group0 = next(g for g, _ in work if g["granularity"] == "global")
            total = tuple(math.fsum(u[k] for u in global_units) for k in range(3))
            global_decision = decide(total[0], total[1], total[2], group0["clip"], group0["max_angle"],
                                     float(F32(group0["betas"][0])))
        for (group, _), s in zip(work, stats):
            if s is None:
                decisions.append(ClipDecision())
            elif group["granularity"] == "global":
                assert global_decision is not None
                decisions.append(global_decision)
            else:
                decisions.append(decide(s[0], s[1], s[2], group["clip"], group["max_angle"],
                                        float(F32(group["betas"][0]))))

        # 3. The fused update, tensor by tensor.
        largest = 0.0
        for (group, p), decision in zip(work, decisions):
            state = self.state[p]
            t = int(state["step"]) + 1
            step_max = self._update(group, p, state, t, decision)
            largest = max(largest, step_max)
            state["step"] = t
        clipped = [d for (g, _), d in zip(work, decisions) if g["clip"] != "off"]
        angles = [d.angle for d in clipped if d.angle is not None]
        if global_decision is not None and all(g["granularity"] == "global" for g, _ in work):
            fraction = 1.0 if global_decision.clipped else 0.0
            mean_angle = global_decision.angle
        else:
            fraction = sum(d.clipped for d in clipped) / len(clipped) if clipped else 0.0
            mean_angle = sum(angles) / len(angles) if angles else None
        self.last_telemetry = {"step": self.steps_taken, "clipped_fraction": fraction,
                               "mean_angle_before_clip": mean_angle, "max_coordinate_step": largest}
        return loss

    @staticmethod
    def _update(group: dict[str, Any], p: Tensor, state: dict[str, Any], t: int, d: ClipDecision) -> float:
        beta1, beta2 = F32(group["betas"][0]), F32(group["betas"][1])
        lr = F32(group["lr"])
        decay = float(F32(1) - lr * F32(group["weight_decay"]))
        step_scale = float(lr * F32(group["a"]))
        x_scale = float(F32(group["b"]))
        if group["bias_correction"]:
            bc1 = 1 - math.pow(float(beta1), t)
            bc2 = 1 - math.pow(float(beta2), t)
            x_scale *= bc1 / math.sqrt(bc2)
        x_scale_sq = _f32(x_scale * x_scale)
        v_gain = math.sqrt(float(F32(1) - beta2))
        one_minus_beta1 = float(F32(1) - beta1)
        from_clipped = d.clipped and bool(group["second_moment_from_clipped"])
        if d.clipped:
            m_from_m = _f32(float(beta1) + one_minus_beta1 * d.momentum_scale)
            m_from_g = _f32(one_minus_beta1 * d.gradient_scale)
        else:
            m_from_m, m_from_g = float(beta1), one_minus_beta1
        v_from_g = _f32(v_gain * d.gradient_scale if from_clipped else v_gain)
        v_from_m = _f32(v_gain * d.momentum_scale) if from_clipped else 0.0

        assert p.grad is not None
        g = p.grad.detach().to(torch.float32)
        m_old: Tensor = state["exp_avg"]
        v_old: Tensor = state["exp_avg_sq"]
        p32 = p.detach().to(torch.float32)
        m_new = m_old * m_from_m + g * m_from_g
        g_scaled = g * v_from_g
        if from_clipped:
            g_scaled = g_scaled + m_old * v_from_m
        v_new = v_old * float(beta2) + g_scaled * g_scaled
        w = v_new * x_scale_sq
        u = atan2_over_square_root(m_new, w) if group["atan2"] == "fast" else _exact_atan2(m_new, w)
        p_new = p32 * decay - u * step_scale
        m_old.copy_(m_new)
        v_old.copy_(v_new)
        p.copy_(p_new)
        return float(F32(float(u.abs().max())) * F32(step_scale)) if u.numel() else 0.0


def adam_atan2(params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99),
               weight_decay: float = 0.0, **kwargs: Any) -> MoClip:
    """Adam-atan2 (``MoClipConfig.adamAtan2``): MoClip with the clip off."""
    return MoClip(params, lr, betas, weight_decay, clip="off", **kwargs)
