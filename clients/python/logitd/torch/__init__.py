"""The trainer side for PyTorch (``pip install 'logitd[torch]'``): the LM-head losses of
docs/DESIGN.md §6 over stored candidate sets, the MoClip optimizer of §7 with the training LR
schedule, and a replay ``IterableDataset`` over a cache in the order of schema/REPLAY_ORDER.md —
ports of the Swift definitions (Sources/Replay, Sources/Optim), checked against them by
``tests/test_torch_parity.py``."""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError("logitd.torch needs PyTorch: pip install 'logitd[torch]'") from _error

from ..replay import ReplayOptions, ReplaySource, ReplayState, draw_negatives
from .data import ReplayIterableDataset, collate_rows
from .losses import (CandidateBatch, FullSoftmaxLoss, LossOutput, RestrictedSoftmaxLoss, SampledTailLoss,
                     full_softmax_loss, gathered_logits, negative_ids, restricted_softmax_loss, sampled_tail_loss)
from .moclip import MoClip, NonFiniteGradientError, adam_atan2, atan2_over_square_root
from .schedule import training_lr_scheduler, training_schedule, warmup_cosine

__all__ = [
    "CandidateBatch", "FullSoftmaxLoss", "LossOutput", "MoClip", "NonFiniteGradientError", "ReplayIterableDataset",
    "ReplayOptions", "ReplaySource", "ReplayState", "RestrictedSoftmaxLoss", "SampledTailLoss", "adam_atan2",
    "atan2_over_square_root", "collate_rows", "draw_negatives", "full_softmax_loss", "gathered_logits", "negative_ids",
    "restricted_softmax_loss", "sampled_tail_loss", "training_lr_scheduler", "training_schedule", "warmup_cosine",
]
