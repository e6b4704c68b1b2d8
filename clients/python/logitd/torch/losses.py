"""The LM-head losses of docs/DESIGN.md §6 in PyTorch, ports of ``Sources/Replay``:
:func:`restricted_softmax_loss` (``RestrictedSoftmaxLoss``: CE_S and KD_S with (α, T)),
:func:`sampled_tail_loss` (``SampledTailLoss``: S ∪ {tail} with sampled negatives) and
:func:`full_softmax_loss` (``FullSoftmaxLoss``: the full-vocabulary reference).

Inputs: final hidden states ``hidden`` H (N×d), the LM-head / tied-embedding weight ``weight``
W (V×d) and a :class:`CandidateBatch` in CSR form over the same N positions. The restricted and
tail losses gather only the rows of each set (:func:`gathered_logits`, chunked, with a fused
backward), so the N×V logits are never formed; the full loss forms them ``chunk_rows`` positions
at a time and recomputes them in backward. Every loss is the mean over supervised positions
(mask 1) and is differentiable with respect to ``hidden`` and ``weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..replay import draw_negatives

__all__ = [
    "CandidateBatch", "FullSoftmaxLoss", "LossOutput", "RestrictedSoftmaxLoss", "SampledTailLoss", "full_softmax_loss",
    "gathered_logits", "negative_ids", "restricted_softmax_loss", "sampled_tail_loss",
]


class LossOutput(NamedTuple):
    """What a loss returns. ``loss`` is what to differentiate: the mean over supervised positions
    of (1−α)·CE + α·KD. ``cross_entropy`` and ``distillation`` are the detached means of the two
    terms (``distillation`` is 0 when α = 0 or for the full loss); ``supervised`` counts mask-1
    positions — the Swift ``LossResult``."""

    loss: Tensor
    cross_entropy: Tensor
    distillation: Tensor
    supervised: int


@dataclass(frozen=True)
class CandidateBatch:
    """The candidate sets of N positions in CSR form (``Replay.CandidateBatch``).

    - ``set_offsets`` (N + 1): position i's set is ``ids[set_offsets[i]:set_offsets[i+1]]``;
    - ``ids`` (ΣK) candidate token ids, distinct within a set; ``logprobs`` (ΣK) the teacher's
      full-vocabulary log-probs;
    - ``gold`` (N) the gold token ids, or ``gold_index`` (N) the gold's index within its set
      (one of the two; both may be given);
    - ``mask`` (N) 1 = supervised (``None``: all).

    Integer tensors may be any integer dtype; they are used as int64."""

    set_offsets: Tensor
    ids: Tensor
    logprobs: Tensor
    gold: Tensor | None = None
    mask: Tensor | None = None
    gold_index: Tensor | None = None

    @property
    def positions(self) -> int:
        return int(self.set_offsets.numel()) - 1

    @staticmethod
    def from_padded(batch: dict[str, Any], device: torch.device | str | None = None) -> CandidateBatch:
        """The CSR form of a padded batch from :func:`logitd.torch.collate_rows`, over its valid
        positions in row-major order — the order of ``hidden[batch["attention_mask"].bool()]``."""
        valid = batch["attention_mask"].bool()
        sizes = batch["set_sizes"][valid].long()
        k = batch["cand_ids"].shape[-1]
        keep = torch.arange(k, device=sizes.device)[None, :] < sizes[:, None]
        offsets = torch.zeros(sizes.numel() + 1, dtype=torch.long, device=sizes.device)
        torch.cumsum(sizes, 0, out=offsets[1:])
        out = CandidateBatch(offsets, batch["cand_ids"][valid][keep].long(), batch["cand_logprobs"][valid][keep],
                             gold=batch["targets"][valid].long(), mask=batch["loss_mask"][valid].bool(),
                             gold_index=batch["gold_index"][valid].long())
        return out.to(device) if device is not None else out

    def to(self, device: torch.device | str) -> CandidateBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)
        return CandidateBatch(self.set_offsets.to(device), self.ids.to(device), self.logprobs.to(device),
                              move(self.gold), move(self.mask), move(self.gold_index))

    def supervised_mask(self) -> Tensor:
        n = self.positions
        if self.mask is None:
            return torch.ones(n, dtype=torch.bool, device=self.set_offsets.device)
        return self.mask.to(torch.bool)

    def gold_indices(self) -> Tensor:
        """The gold's index within each set (−1 where the gold id is not in the set)."""
        if self.gold_index is not None:
            return self.gold_index.long()
        if self.gold is None:
            raise ValueError("the batch has neither gold ids nor gold indices")
        offsets = self.set_offsets.long()
        sizes = offsets[1:] - offsets[:-1]
        n = self.positions
        entry = torch.repeat_interleave(torch.arange(n, device=offsets.device), sizes)
        hit = self.ids.long() == self.gold.long()[entry]
        index = torch.full((n,), -1, dtype=torch.long, device=offsets.device)
        local = torch.arange(self.ids.numel(), device=offsets.device) - offsets[entry]
        index[entry[hit]] = local[hit]
        return index

    def validate(self, vocab: int, n: int, needs_sets: bool = True) -> None:
        """``CandidateBatch.validate`` of the Swift side: shapes, CSR monotonicity, id range, finite
        log-probs and the gold in every supervised set — before any kernel trusts them."""
        if self.positions != n:
            raise ValueError(f"batch has {self.positions} positions, hidden has n = {n}")
        if self.mask is not None:
            if self.mask.numel() != n:
                raise ValueError(f"mask has {self.mask.numel()} entries, expected {n}")
            if bool(((self.mask != 0) & (self.mask != 1)).any()):
                raise ValueError("mask values must be 0 or 1")
        if self.gold is not None:
            if self.gold.numel() != n:
                raise ValueError(f"gold has {self.gold.numel()} entries, expected {n}")
            if n and (int(self.gold.min()) < 0 or int(self.gold.max()) >= vocab):
                raise ValueError(f"gold ids must be within 0..<vocab {vocab}")
        if not needs_sets:
            return
        offsets = self.set_offsets.long()
        if self.ids.numel() != self.logprobs.numel():
            raise ValueError(f"{self.ids.numel()} ids but {self.logprobs.numel()} logprobs")
        if int(offsets[0]) != 0 or int(offsets[-1]) != self.ids.numel():
            raise ValueError(f"set_offsets must start at 0 and end at ids.count = {self.ids.numel()}")
        sizes = offsets[1:] - offsets[:-1]
        if bool((sizes < 0).any()):
            raise ValueError("set_offsets decrease")
        supervised = self.supervised_mask()
        if bool((supervised & (sizes == 0)).any()):
            raise ValueError("a supervised position has an empty candidate set")
        entry = torch.repeat_interleave(torch.arange(n, device=offsets.device), sizes)
        live = supervised[entry]
        ids = self.ids.long()[live]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
            raise ValueError(f"candidate ids must be within 0..<vocab {vocab}")
        if not bool(torch.isfinite(self.logprobs[live]).all()):
            raise ValueError("a supervised candidate's log-prob is not finite")
        gi = self.gold_indices()
        bad = supervised & ((gi < 0) | (gi >= sizes))
        if bool(bad.any()):
            raise ValueError(f"position {int(bad.nonzero()[0])}: the gold is not in its candidate set")
        if self.gold is not None and self.gold_index is not None:
            g = self.ids.long()[(offsets[:-1] + gi.clamp(min=0)).clamp(max=max(self.ids.numel() - 1, 0))]
            if bool((supervised & (g != self.gold.long())).any()):
                raise ValueError("gold_index and gold disagree")


# -- the gathered head ---------------------------------------------------------------------------

class _GatheredLogits(torch.autograd.Function):
    """z_e = ⟨H[rows_e], W[ids_e]⟩ for every entry e, in chunks of ``chunk`` entries. Backward:
    dH[rows_e] += dz_e·W[ids_e] and dW[ids_e] += dz_e·H[rows_e], also chunked."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, weight: Tensor, rows: Tensor, ids: Tensor, chunk: int) -> Tensor:
        dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
        z = torch.empty(rows.numel(), dtype=dtype, device=hidden.device)
        for s in range(0, rows.numel(), chunk):
            e = min(s + chunk, rows.numel())
            z[s:e] = (hidden[rows[s:e]].to(dtype) * weight[ids[s:e]].to(dtype)).sum(-1)
        ctx.save_for_backward(hidden, weight, rows, ids)
        ctx.chunk = chunk
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dz: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        hidden, weight, rows, ids = ctx.saved_tensors
        chunk: int = ctx.chunk
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dtype = dz.dtype
        dh = torch.zeros(hidden.shape, dtype=dtype, device=hidden.device) if want_h else None
        dw = torch.zeros(weight.shape, dtype=dtype, device=weight.device) if want_w else None
        for s in range(0, rows.numel(), chunk):
            e = min(s + chunk, rows.numel())
            g = dz[s:e, None]
            if dh is not None:
                dh.index_add_(0, rows[s:e], g * weight[ids[s:e]].to(dtype))
            if dw is not None:
                dw.index_add_(0, ids[s:e], g * hidden[rows[s:e]].to(dtype))
        return (None if dh is None else dh.to(hidden.dtype), None if dw is None else dw.to(weight.dtype),
                None, None, None)


def gathered_logits(hidden: Tensor, weight: Tensor, rows: Tensor, ids: Tensor, chunk: int = 8192) -> Tensor:
    """Logits of (position, candidate) pairs only: ``z[e] = hidden[rows[e]] · weight[ids[e]]``
    (at least float32). Memory is O(len(rows) + chunk·d), never N×V."""
    if chunk < 1:
        raise ValueError(f"chunk {chunk}, expected ≥ 1")
    out: Tensor = _GatheredLogits.apply(hidden, weight, rows.long(), ids.long(), chunk)
    return out


# -- shared preparation --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sets:
    """The supervised positions' sets, padded to [Ns, Kmax] (entries past a set's size are invalid)."""

    positions: Tensor      # [Ns] indexes into the batch's positions
    rows: Tensor           # [Cs] the position of each supervised entry
    ids: Tensor            # [Cs]
    logprobs: Tensor       # [Cs]
    segment: Tensor        # [Cs] index into 0..<Ns
    column: Tensor         # [Cs] index within the set
    sizes: Tensor          # [Ns]
    gold: Tensor           # [Ns] gold index within the set
    width: int             # Kmax

    @property
    def count(self) -> int:
        return int(self.positions.numel())

    def valid(self) -> Tensor:
        return torch.arange(self.width, device=self.sizes.device)[None, :] < self.sizes[:, None]

    def pad(self, values: Tensor, fill: float) -> Tensor:
        out = torch.full((self.count, self.width), fill, dtype=values.dtype, device=values.device)
        return out.index_put((self.segment, self.column), values)


def _prepare(hidden: Tensor, weight: Tensor, batch: CandidateBatch, validate: bool) -> _Sets:
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)}: expected N×d and V×d")
    n = hidden.shape[0]
    if validate:
        batch.validate(weight.shape[0], n)
    device = hidden.device
    offsets = batch.set_offsets.to(device).long()
    sizes = offsets[1:] - offsets[:-1]
    supervised = batch.supervised_mask().to(device)
    entry = torch.repeat_interleave(torch.arange(n, device=device), sizes)
    live = supervised[entry]
    positions = supervised.nonzero().flatten()
    ssizes = sizes[positions]
    soffsets = torch.zeros(positions.numel() + 1, dtype=torch.long, device=device)
    torch.cumsum(ssizes, 0, out=soffsets[1:])
    segment = torch.repeat_interleave(torch.arange(positions.numel(), device=device), ssizes)
    column = torch.arange(segment.numel(), device=device) - soffsets[:-1][segment]
    width = int(ssizes.max()) if positions.numel() else 0
    return _Sets(positions, entry[live], batch.ids.to(device).long()[live], batch.logprobs.to(device)[live],
                 segment, column, ssizes, batch.gold_indices().to(device)[positions], width)


def _empty(hidden: Tensor, weight: Tensor) -> LossOutput:
    """No supervised position: loss 0 with zero gradients (the Swift losses return 0)."""
    zero = gathered_logits(hidden, weight, hidden.new_zeros(0, dtype=torch.long),
                           hidden.new_zeros(0, dtype=torch.long)).sum()
    return LossOutput(zero, zero.detach(), zero.detach(), 0)


def _mean(values: Tensor, count: int) -> Tensor:
    """Sum in float64 (as the Swift losses accumulate), divided by the supervised count."""
    return (values.double().sum() / count).to(values.dtype)


# -- the losses ----------------------------------------------------------------------------------

def restricted_softmax_loss(hidden: Tensor, weight: Tensor, batch: CandidateBatch, kd_alpha: float = 0.0,
                            temperature: float = 1.0, *, validate: bool = True, chunk: int = 8192) -> LossOutput:
    """``RestrictedSoftmaxLoss``: for each supervised position with set S, z_j = h·W_j (j ∈ S only),

        CE_S = logsumexp_S(z) − z_gold
        KD_S = T²·KL(q ‖ p),  q = softmax_S(lp/T),  p = softmax_S(z/T)
        loss = mean over supervised positions of (1−α)·CE_S + α·KD_S
    """
    if not (math.isfinite(kd_alpha) and 0 <= kd_alpha <= 1):
        raise ValueError(f"kd_alpha {kd_alpha}, expected in [0, 1]")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature {temperature}, expected > 0")
    sets = _prepare(hidden, weight, batch, validate)
    if sets.count == 0:
        return _empty(hidden, weight)
    z = gathered_logits(hidden, weight, sets.rows, sets.ids, chunk)
    zp = sets.pad(z, -math.inf)
    ar = torch.arange(sets.count, device=z.device)
    ce = torch.logsumexp(zp, 1) - zp[ar, sets.gold]
    ce_mean = _mean(ce, sets.count)
    if kd_alpha == 0:
        return LossOutput(ce_mean, ce_mean.detach(), torch.zeros_like(ce_mean), sets.count)
    valid = sets.valid()
    temp = float(temperature)
    lq = sets.pad(sets.logprobs.to(z.dtype), -math.inf) / temp
    log_q = lq - torch.logsumexp(lq, 1, keepdim=True)
    zt = zp / temp
    log_p = zt - torch.logsumexp(zt, 1, keepdim=True)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    log_q = torch.where(valid, log_q, zero)
    log_p = torch.where(valid, log_p, zero)
    q = torch.where(valid, log_q.exp(), zero)
    kd = temp * temp * (q * (log_q - log_p)).sum(1)
    kd_mean = _mean(kd, sets.count)
    loss = (1 - kd_alpha) * ce_mean + kd_alpha * kd_mean
    return LossOutput(loss, ce_mean.detach(), kd_mean.detach(), sets.count)


def negative_ids(count: int, vocab: int, seed: int, draw: int, device: torch.device | str | None = None) -> Tensor:
    """The tail loss's shared draw as a tensor (:func:`logitd.replay.draw_negatives`)."""
    return torch.tensor(draw_negatives(count, vocab, seed, draw), dtype=torch.long, device=device)


def sampled_tail_loss(hidden: Tensor, weight: Tensor, batch: CandidateBatch, negatives: int = 256,
                      kd_alpha: float = 0.0, seed: int = 0, draw: int = 0, *, validate: bool = True,
                      chunk: int = 8192) -> LossOutput:
    """``SampledTailLoss``: classes S ∪ {tail}. n = min(negatives, V) distinct ids N are drawn
    (:func:`logitd.replay.draw_negatives` with ``seed`` and ``draw``; the Swift trainer passes
    draw = optimizer steps taken before this step) and shared by all positions; for a position,
    N_i = N ∖ S (n′ ids) stands in for the V − K ids outside S with weight w = (V − K)/n′:

        Ẑ = Σ_S e^{z_j} + w·Σ_{N_i} e^{z_j},  p̂_j = e^{z_j}/Ẑ,  ρ̂ = w·Σ_{N_i} e^{z_j}/Ẑ
        CE = log Ẑ − z_gold
        KD = Σ_S t_j (log t_j − log p̂_j) + ρ_T (log ρ_T − log ρ̂)   (t = e^{lp}, ρ_T = max(0, 1 − Σ_S t),
                                                                   both renormalised to sum 1; T = 1)
        loss = mean over supervised positions of (1−α)·CE + α·KD

    With N_i empty (S = V, or every draw hit S) the tail vanishes: CE_S and KD_S exactly."""
    if not (math.isfinite(kd_alpha) and 0 <= kd_alpha <= 1):
        raise ValueError(f"kd_alpha {kd_alpha}, expected in [0, 1]")
    if negatives < 1:
        raise ValueError(f"negatives {negatives}, expected ≥ 1 (use the restricted loss for none)")
    sets = _prepare(hidden, weight, batch, validate)
    if sets.count == 0:
        return _empty(hidden, weight)
    vocab = weight.shape[0]
    device = hidden.device
    sampled = negative_ids(min(negatives, vocab), vocab, seed, draw, device)
    ns = sampled.numel()
    z = gathered_logits(hidden, weight, sets.rows, sets.ids, chunk)
    dtype = z.dtype
    zp = sets.pad(z, -math.inf)
    ar = torch.arange(sets.count, device=device)

    # Which drawn ids each position's set already holds.
    slot = torch.full((vocab,), -1, dtype=torch.long, device=device)
    slot[sampled] = torch.arange(ns, device=device)
    entry_slot = slot[sets.ids]
    hit = torch.zeros((sets.count, ns), dtype=torch.bool, device=device)
    found = entry_slot >= 0
    hit[sets.segment[found], entry_slot[found]] = True
    outside = ns - hit.sum(1)
    has_tail = outside > 0

    # Z_N = H_s · W_Nᵀ; the tail's log-sum-exp with the weight included.
    z_n = hidden[sets.positions].to(dtype) @ weight[sampled].to(dtype).T
    # Rows without a tail keep finite values (their result is discarded) so no NaN reaches backward.
    drop = hit & has_tail[:, None]
    z_out = z_n.masked_fill(drop, -math.inf)
    log_w = torch.log((vocab - sets.sizes).to(dtype) / outside.clamp(min=1).to(dtype))
    lse_out = torch.logsumexp(z_out, 1) + log_w
    lse_s = torch.logsumexp(zp, 1)
    log_z = torch.where(has_tail, torch.logaddexp(lse_s, lse_out), lse_s)
    ce = log_z - zp[ar, sets.gold]
    ce_mean = _mean(ce, sets.count)
    if kd_alpha == 0:
        return LossOutput(ce_mean, ce_mean.detach(), torch.zeros_like(ce_mean), sets.count)

    valid = sets.valid()
    zero = torch.zeros((), dtype=dtype, device=device)
    t = torch.where(valid, sets.pad(sets.logprobs.to(dtype), -math.inf).exp(), zero)
    sum_t = t.sum(1)
    rho_t = torch.where(has_tail, (1 - sum_t).clamp(min=0), zero)
    inv = 1 / (sum_t + rho_t)
    t = t * inv[:, None]
    rho_t = rho_t * inv
    positive = t > 0
    t_safe = torch.where(positive, t, torch.ones((), dtype=dtype, device=device))
    log_p = torch.where(positive, zp - log_z[:, None], zero)
    kd = torch.where(positive, t * (t_safe.log() - log_p), zero).sum(1)
    tail = rho_t > 0
    rho_safe = torch.where(tail, rho_t, torch.ones((), dtype=dtype, device=device))
    kd = kd + torch.where(tail, rho_t * (rho_safe.log() - (lse_out - log_z)), zero)
    kd_mean = _mean(kd, sets.count)
    loss = (1 - kd_alpha) * ce_mean + kd_alpha * kd_mean
    return LossOutput(loss, ce_mean.detach(), kd_mean.detach(), sets.count)


def _chunk_cross_entropy(hidden: Tensor, weight: Tensor, gold: Tensor) -> Tensor:
    logits = hidden @ weight.T
    return (torch.logsumexp(logits, 1) - logits.gather(1, gold[:, None]).squeeze(1)).double().sum()


def full_softmax_loss(hidden: Tensor, weight: Tensor, gold: Tensor, mask: Tensor | None = None,
                      chunk_rows: int = 256) -> LossOutput:
    """``FullSoftmaxLoss``: CE = logsumexp_V(z) − z_gold with z = H·Wᵀ, mean over supervised
    positions. The logits are formed ``chunk_rows`` positions at a time and recomputed in backward
    (activation checkpointing), so at most chunk_rows×V of them live at once."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)}: expected N×d and V×d")
    n, vocab = hidden.shape[0], weight.shape[0]
    gold = gold.to(hidden.device).long()
    if gold.numel() != n:
        raise ValueError(f"gold has {gold.numel()} entries, expected {n}")
    if n and (int(gold.min()) < 0 or int(gold.max()) >= vocab):
        raise ValueError(f"gold ids must be within 0..<vocab {vocab}")
    supervised = torch.ones(n, dtype=torch.bool, device=hidden.device) if mask is None else mask.to(hidden.device).bool()
    positions = supervised.nonzero().flatten()
    count = int(positions.numel())
    if count == 0:
        return _empty(hidden, weight)
    dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
    h = hidden[positions].to(dtype)
    w = weight.to(dtype)
    g = gold[positions]
    total = h.new_zeros((), dtype=torch.float64)
    step = max(1, chunk_rows)
    for s in range(0, count, step):
        part = checkpoint(_chunk_cross_entropy, h[s:s + step], w, g[s:s + step], use_reentrant=False)
        total = total + part
    loss = (total / count).to(dtype)
    return LossOutput(loss, loss.detach(), torch.zeros_like(loss.detach()), count)


# -- callables with the Swift names --------------------------------------------------------------

@dataclass(frozen=True)
class RestrictedSoftmaxLoss:
    """``loss(hidden, weight, batch)`` → :class:`LossOutput` (see :func:`restricted_softmax_loss`)."""

    kd_alpha: float = 0.0
    temperature: float = 1.0

    def __call__(self, hidden: Tensor, weight: Tensor, batch: CandidateBatch, draw: int = 0) -> LossOutput:
        return restricted_softmax_loss(hidden, weight, batch, self.kd_alpha, self.temperature)


@dataclass(frozen=True)
class SampledTailLoss:
    """``loss(hidden, weight, batch, draw)`` → :class:`LossOutput` (see :func:`sampled_tail_loss`);
    pass draw = the optimizer's steps taken before this step, as the Swift trainer does."""

    negatives: int = 256
    kd_alpha: float = 0.0
    seed: int = 0

    def __call__(self, hidden: Tensor, weight: Tensor, batch: CandidateBatch, draw: int = 0) -> LossOutput:
        return sampled_tail_loss(hidden, weight, batch, self.negatives, self.kd_alpha, self.seed, draw)


@dataclass(frozen=True)
class FullSoftmaxLoss:
    """``loss(hidden, weight, batch)`` → :class:`LossOutput` (see :func:`full_softmax_loss`; the
    batch's sets are ignored, its gold ids and mask used)."""

    chunk_rows: int = 256

    def __call__(self, hidden: Tensor, weight: Tensor, batch: CandidateBatch, draw: int = 0) -> LossOutput:
        if batch.gold is None:
            raise ValueError("the full loss needs gold ids")
        return full_softmax_loss(hidden, weight, batch.gold, batch.mask, self.chunk_rows)
