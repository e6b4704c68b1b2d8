"""The catalog's ``content_hash`` of a record (Swift ``contentHash`` in
Sources/ShardFormat/LogprobQuantization.swift; layout documented in schema/SHARD_FORMAT.md,
"Content hash"): XXH3-64 of the canonical, quantized record, computed here with numpy."""

from __future__ import annotations

import numpy as np
import xxhash
from numpy.typing import NDArray

from .models import Record


def quantize(logprobs: NDArray[np.float32], scale: float) -> NDArray[np.uint64]:
    """``code = round_half_even(−lp · S)`` in double precision, clamped to [0, 2^32 − 1]."""
    scaled = np.rint(-logprobs.astype(np.float64) * np.float64(np.float32(scale)))
    return np.clip(scaled, 0, 2**32 - 1).astype(np.uint64)


def _canonical_keys(record: Record, scale: float) -> NDArray[np.uint64]:
    """``code << 32 | id`` per candidate, each set sorted ascending (the canonical order)."""
    keys = (quantize(record.logprobs, scale) << np.uint64(32)) | record.ids.astype(np.uint64)
    counts = np.diff(record.offsets)
    set_of = np.repeat(np.arange(len(counts)), counts)
    if len(keys) > 1 and np.any((keys[1:] < keys[:-1]) & (set_of[1:] == set_of[:-1])):
        keys = keys[np.lexsort((keys, set_of))]
    return keys


def canonical_bytes(record: Record, scale: float) -> bytes:
    """The byte string the content hash is taken over."""
    key = record.key.encode("utf-8")
    head = bytearray()
    head += len(key).to_bytes(4, "little") + key
    head += len(record.tokens).to_bytes(4, "little") + record.tokens.astype("<u4").tobytes()
    if record.loss_mask is None:
        head += b"\x00"
    else:
        head += b"\x01" + len(record.loss_mask).to_bytes(4, "little") + record.loss_mask.astype(np.uint8).tobytes()
    head += record.positions.to_bytes(4, "little")
    return bytes(head) + _set_bytes(record, scale)


def _set_bytes(record: Record, scale: float) -> bytes:
    """Per set: u32 K, u8 gold_forced, then K u64 keys — laid out with index arithmetic."""
    p, c = record.positions, record.candidates
    counts = np.diff(record.offsets)
    out = np.zeros(5 * p + 8 * c, dtype=np.uint8)
    set_at = 5 * np.arange(p, dtype=np.int64) + 8 * record.offsets[:-1]
    out[set_at[:, None] + np.arange(4)] = counts.astype("<u4").view(np.uint8).reshape(p, 4)
    out[set_at + 4] = record.gold_forced.astype(np.uint8)
    set_of = np.repeat(np.arange(p, dtype=np.int64), counts)
    cand_at = 5 * (set_of + 1) + 8 * np.arange(c, dtype=np.int64)
    keys = _canonical_keys(record, scale).astype("<u8").view(np.uint8).reshape(c, 8)
    out[cand_at[:, None] + np.arange(8)] = keys
    return out.tobytes()


def content_hash(record: Record, scale: float) -> int:
    return xxhash.xxh3_64_intdigest(canonical_bytes(record, scale))
