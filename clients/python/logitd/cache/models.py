"""What the catalog says about datasets and shards, and the decoded sequence record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _histogram(blob: bytes | None) -> list[int]:
    """Little-endian u64 counts (a truncated tail is ignored)."""
    if not blob:
        return []
    counts: list[int] = np.frombuffer(blob[: len(blob) // 8 * 8], dtype="<u8").astype(np.int64).tolist()
    return counts


def _add(a: list[int], b: list[int]) -> list[int]:
    out = a + [0] * max(0, len(b) - len(a))
    for i, v in enumerate(b):
        out[i] += v
    return out


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One ``shard`` row. ``path`` is relative to the cache directory; ``committed_bytes`` is the
    durable prefix (the whole file once sealed)."""

    id: int
    dataset_id: int
    uuid: uuid.UUID
    generation: int
    path: str
    state: str
    committed_bytes: int
    blocks: int
    file_hash: int | None
    sequences: int
    positions: int
    candidates: int
    gold_forced: int
    covered_mass_sum: float
    k_histogram: list[int]
    covered_histogram: list[int]
    quarantine_reason: str | None
    created_at: str
    sealed_at: str | None

    COLUMNS = ("id, dataset_id, uuid, generation, path, state, committed_bytes, blocks, file_hash, sequences, "
               "positions, candidates, gold_forced, covered_mass_sum, k_histogram, covered_histogram, "
               "quarantine_reason, created_at, sealed_at")

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ShardInfo:
        (id_, dataset_id, uuid_text, generation, path, state, committed, blocks, file_hash, sequences, positions,
         candidates, gold_forced, covered, k_hist, covered_hist, reason, created, sealed) = row
        return cls(int(id_), int(dataset_id), uuid.UUID(uuid_text), int(generation), str(path), str(state),
                   int(committed), int(blocks), int(file_hash, 16) if file_hash is not None else None,
                   int(sequences), int(positions), int(candidates), int(gold_forced), float(covered),
                   _histogram(k_hist), _histogram(covered_hist), reason, str(created), sealed)


@dataclass(frozen=True, slots=True)
class Coverage:
    """Aggregates over a dataset's shards that are not quarantined (catalog only, no shard scan)."""

    sequences: int = 0
    positions: int = 0
    candidates: int = 0
    gold_forced: int = 0
    covered_mass_sum: float = 0.0
    k_histogram: list[int] = field(default_factory=list)
    covered_histogram: list[int] = field(default_factory=list)
    bytes: int = 0
    shards_sealed: int = 0
    shards_open: int = 0
    shards_quarantined: int = 0

    @classmethod
    def of(cls, shards: list[ShardInfo]) -> Coverage:
        live = [s for s in shards if s.state != "quarantined"]
        k_hist: list[int] = []
        covered_hist: list[int] = []
        for s in live:
            k_hist = _add(k_hist, s.k_histogram)
            covered_hist = _add(covered_hist, s.covered_histogram)
        return cls(sum(s.sequences for s in live), sum(s.positions for s in live), sum(s.candidates for s in live),
                   sum(s.gold_forced for s in live), sum(s.covered_mass_sum for s in live), k_hist, covered_hist,
                   sum(s.committed_bytes for s in live), sum(s.state == "sealed" for s in shards),
                   sum(s.state == "open" for s in shards), sum(s.state == "quarantined" for s in shards))

    @property
    def k_mean(self) -> float:
        return self.candidates / self.positions if self.positions else 0.0

    @property
    def covered_mass_mean(self) -> float:
        return self.covered_mass_sum / self.positions if self.positions else 0.0

    @property
    def gold_forced_rate(self) -> float:
        return self.gold_forced / self.positions if self.positions else 0.0

    @property
    def bytes_per_candidate(self) -> float:
        return self.bytes / self.candidates if self.candidates else 0.0


@dataclass(frozen=True, slots=True)
class Dataset:
    """A ``dataset`` row (settings and provenance, immutable once created) with its coverage."""

    id: int
    name: str
    vocab_size: int
    tau: float
    k_min: int
    k_max: int
    logprob_scale: float
    teacher_id: str
    tokenizer_id: str
    tokenizer_hash: str
    created_at: str
    coverage: Coverage

    COLUMNS = ("id, name, vocab_size, tau, k_min, k_max, logprob_scale, teacher_id, tokenizer_id, tokenizer_hash, "
               "created_at")


U32 = NDArray[np.uint32]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored sequence, as the Swift reader returns it.

    ``tokens`` has L entries; ``loss_mask`` L − 1 values in {0, 1} or None (all supervised).
    Position t (0 ≤ t < L − 1) predicts ``tokens[t + 1]``; its candidate set is
    ``ids[offsets[t]:offsets[t+1]]`` with ``logprobs`` (float32, ``-(f32(code) · f32(1/S))``) in
    canonical order (descending log-prob, ties by lower id), and ``gold_forced[t]``.
    The arrays are read-only views into the decoded block; copy them to keep them writable."""

    key: str
    tokens: U32
    loss_mask: NDArray[np.uint8] | None
    offsets: NDArray[np.int64]
    ids: U32
    logprobs: NDArray[np.float32]
    gold_forced: NDArray[np.bool_]
    shard: str
    block: int
    ordinal: int

    @property
    def positions(self) -> int:
        return len(self.gold_forced)

    @property
    def candidates(self) -> int:
        return len(self.ids)

    def candidate_set(self, t: int) -> tuple[U32, NDArray[np.float32]]:
        """Ids and log-probs of position ``t``."""
        lo, hi = int(self.offsets[t]), int(self.offsets[t + 1])
        return self.ids[lo:hi], self.logprobs[lo:hi]
