"""A PyTorch ``IterableDataset`` over a logitd cache, in the replay order of schema/REPLAY_ORDER.md,
and the collate function that pads its rows.

>>> ds = ReplayIterableDataset("/data/kd-cache", "netdocs", seed=1, max_tokens=8192, max_sequence_length=1024)
>>> loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
>>> for batch in loader:
...     batch["input_ids"], batch["cand_ids"], batch["cand_logprobs"], batch["gold_index"], batch["rho_T"]
...     state = batch["state"]          # ds.load_state_dict(state) resumes right after this batch

Each item is one batch: the rows (sequence chunks of ≤ ``max_sequence_length`` positions) that
the Swift loader packs into one batch of ≤ ``max_tokens`` positions, padded to [B, T] (and
[B, T, K] for the sets) by :func:`collate_rows`. The order, the rank shares and the batch
boundaries are those of ``logit-train replay`` with the same options; ``batch["state"]`` is the
Swift ``ReplayState`` after the batch (same JSON keys), so a resume can cross languages.

Data parallelism: ``rank``/``world_size`` (default: ``torch.distributed`` when initialised) pick
the rank's share. Loader workers take batches round-robin (worker w yields batches w, w + W, …),
which the ``DataLoader`` interleaves back into exactly the single-process order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..cache.reader import Cache
from ..replay import ReplayOptions, ReplaySource, ReplayState, Row

__all__ = ["ReplayIterableDataset", "collate_rows"]


def collate_rows(rows: Sequence[Row], pad_id: int = 0) -> dict[str, Any]:
    """Pads rows (sequence chunks) into one batch of tensors, B rows × T = longest row:

    - ``input_ids``, ``targets`` (the gold ids) [B, T] int64, padded with ``pad_id``;
      ``position_ids`` [B, T] (0…T−1 in every row, as the Swift model restarts positions per row);
    - ``attention_mask`` [B, T] int64, 1 on real positions; ``loss_mask`` [B, T] bool: real and
      supervised (the record's loss mask);
    - ``cand_ids`` [B, T, K] int64 (K = largest set; padded with 0), ``cand_logprobs`` [B, T, K]
      float32 (padded with −inf), ``set_sizes`` [B, T] int64, ``gold_index`` [B, T] int64 (the
      target's index within its set; −1 on padding);
    - ``rho_T`` [B, T] float32: the teacher's mass outside the set, 1 − Σ_S exp(lp) (not clamped;
      quantisation can make it slightly negative; 0 on padding);
    - ``sources`` [B, 4] int64: (shard, block, ordinal, first position) of each row.

    :meth:`logitd.torch.CandidateBatch.from_padded` turns it into the CSR form the losses take."""
    b = len(rows)
    lengths = [len(r.inputs) for r in rows]
    t = max(lengths, default=0)
    sizes_list = [np.diff(r.set_offsets) for r in rows]
    k = max((int(s.max()) for s in sizes_list if len(s)), default=0)
    input_ids = np.full((b, t), pad_id, dtype=np.int64)
    targets = np.full((b, t), pad_id, dtype=np.int64)
    attention = np.zeros((b, t), dtype=np.int64)
    loss_mask = np.zeros((b, t), dtype=bool)
    set_sizes = np.zeros((b, t), dtype=np.int64)
    cand_ids = np.zeros((b, t, k), dtype=np.int64)
    cand_lps = np.full((b, t, k), -np.inf, dtype=np.float32)
    gold_index = np.full((b, t), -1, dtype=np.int64)
    rho = np.zeros((b, t), dtype=np.float32)
    sources = np.zeros((b, 4), dtype=np.int64)
    for i, (r, sizes) in enumerate(zip(rows, sizes_list)):
        n = lengths[i]
        input_ids[i, :n] = r.inputs
        targets[i, :n] = r.targets
        attention[i, :n] = 1
        loss_mask[i, :n] = r.mask != 0
        set_sizes[i, :n] = sizes
        if n:
            position = np.repeat(np.arange(n), sizes)
            column = np.arange(len(r.ids)) - np.repeat(r.set_offsets[:-1], sizes)
            cand_ids[i, position, column] = r.ids
            cand_lps[i, position, column] = r.logprobs
            hit = r.ids.astype(np.int64) == r.targets.astype(np.int64)[position]
            gold_index[i, position[hit]] = column[hit]
            covered = np.zeros(n, dtype=np.float64)
            np.add.at(covered, position, np.exp(r.logprobs.astype(np.float64)))
            rho[i, :n] = 1 - covered
        sources[i] = r.source
    return {
        "input_ids": torch.from_numpy(input_ids), "targets": torch.from_numpy(targets),
        "position_ids": torch.arange(t, dtype=torch.int64).expand(b, t).clone(),
        "attention_mask": torch.from_numpy(attention), "loss_mask": torch.from_numpy(loss_mask),
        "cand_ids": torch.from_numpy(cand_ids), "cand_logprobs": torch.from_numpy(cand_lps),
        "set_sizes": torch.from_numpy(set_sizes), "gold_index": torch.from_numpy(gold_index),
        "rho_T": torch.from_numpy(rho), "sources": torch.from_numpy(sources),
    }


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ReplayIterableDataset(IterableDataset[dict[str, Any]]):
    """The replay of one or more datasets of a cache for PyTorch (see the module docstring).

    Options are ``ReplayOptions``': ``seed``, ``shuffle``, ``window`` (512), ``rank``,
    ``world_size``, ``remainder`` ("pad" | "drop"), ``max_tokens`` (positions per batch, 8192),
    ``max_sequence_length`` (positions per row, 2048). One iteration replays the rest of the
    current epoch from the current state; :meth:`set_epoch` moves to the start of another epoch.

    State: :meth:`state_dict` / :meth:`load_state_dict` hold the Swift ``ReplayState`` (a dict
    with its JSON keys). In the main process (``num_workers=0``) the state advances as batches are
    yielded; with worker processes the main-process copy does not see them, so keep the
    ``batch["state"]`` of the last batch trained on and load that."""

    def __init__(self, cache: str | os.PathLike[str] | Cache | ReplaySource, datasets: str | Sequence[str] = (), *,
                 seed: int = 0, epoch: int = 0, shuffle: bool = True, window: int = 512, rank: int | None = None,
                 world_size: int | None = None, remainder: str = "pad", max_tokens: int = 8192,
                 max_sequence_length: int = 2048, pad_id: int = 0, allow_snapshot_change: bool = False,
                 block_cache: int = 8) -> None:
        super().__init__()
        self.source = cache if isinstance(cache, ReplaySource) else ReplaySource(cache, datasets, block_cache)
        default_rank, default_world = _distributed()
        self.options = ReplayOptions(seed=seed, shuffle=shuffle, window=window,
                                     rank=default_rank if rank is None else rank,
                                     world_size=default_world if world_size is None else world_size,
                                     remainder=remainder,  # type: ignore[arg-type]
                                     max_tokens=max_tokens, max_sequence_length=max_sequence_length)
        self.options.validate()
        self.pad_id = pad_id
        self.allow_snapshot_change = allow_snapshot_change
        self._state = self.source.initial_state(epoch, self.options)
        self.source.check_state(self._state, self.options)

    @property
    def vocab_size(self) -> int:
        return self.source.vocab_size

    @property
    def epoch(self) -> int:
        return self._state.epoch

    def set_epoch(self, epoch: int) -> None:
        """Moves to the start of ``epoch`` (same seed)."""
        self._state = replace(self.source.initial_state(epoch, self.options), seed=self._state.seed)

    def state_dict(self) -> dict[str, Any]:
        return self._state.to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes after the batch whose ``batch["state"]`` (or :meth:`state_dict`) this is. Refuses
        another rank layout or chunk length, and another snapshot unless ``allow_snapshot_change``."""
        restored = ReplayState.from_dict(state)
        checked, _ = self.source.check_state(restored, self.options, self.allow_snapshot_change)
        self._state = checked

    def batches_per_epoch(self) -> int:
        """Batches in the rest of the current epoch from the current state (computed from the
        catalog's sequence lengths; nothing is decoded)."""
        return sum(1 for _ in self.source.plan(self._state, self.options, self.allow_snapshot_change))

    def __len__(self) -> int:
        return self.batches_per_epoch()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        start = self._state
        for index, plan in enumerate(self.source.plan(start, self.options, self.allow_snapshot_change)):
            if index % workers != worker:
                continue
            batch = collate_rows(self.source.rows_of(plan), self.pad_id)
            batch["state"] = plan.state_after.to_dict()
            if info is None:
                self._state = plan.state_after
            yield batch

