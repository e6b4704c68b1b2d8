"""The replay order of schema/REPLAY_ORDER.md in Python (numpy only): snapshot and snapshot hash,
the order of an epoch, data-parallel shares, chunks and token-budget batches, and the resume state.

A port of ``Sources/Replay`` (``ReplaySnapshot``, ``ReplayOrder``, ``BatchProducer``,
``ReplayState``): the same (cache, datasets, seed, epoch, options) give the same sequences, the
same rows and the same batches as the Swift trainer, and a :class:`ReplayState` is the Swift
``ReplayState`` (same JSON keys), so a run can resume across the two.

>>> from logitd.replay import ReplayOptions, ReplaySource
>>> source = ReplaySource("/data/kd-cache", ["netdocs"])
>>> options = ReplayOptions(seed=42, max_tokens=4096, max_sequence_length=1024)
>>> for batch in source.batches(source.initial_state(0, options), options):
...     batch.inputs, batch.targets, batch.mask, batch.set_offsets, batch.ids, batch.logprobs
...     batch.state_after          # store it beside a checkpoint to resume right after this batch

``logitd.torch.ReplayIterableDataset`` wraps this for PyTorch data loaders.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .cache.block import DecodedBlock
from .cache.models import Dataset, ShardInfo
from .cache.reader import Cache
from .cache.shard import Shard

MASK64 = (1 << 64) - 1
Remainder = Literal["pad", "drop"]

__all__ = [
    "BatchPlan", "ReplayBatch", "ReplayError", "ReplayOptions", "ReplaySource", "ReplayState", "Row", "Snapshot",
    "SnapshotShard", "SplitMix64", "below", "draw_negatives", "epoch_order", "global_index", "mix", "share_size",
    "shuffle", "stream_seed",
]


class ReplayError(ValueError):
    """Refused options, state or datasets (the Swift ``ReplayError`` cases)."""


# -- SplitMix64 and the order ---------------------------------------------------------------------

def mix(x: int) -> int:
    """The SplitMix64 finalizer (all arithmetic mod 2^64)."""
    z = x & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """``LogitCore.SplitMix64``: ``state += 0x9e3779b97f4a7c15; return mix(state)``."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        return mix(self.state)


def below(bound: int, rng: SplitMix64) -> int:
    """``ReplayOrder.below``: the high 64 bits of next()·bound (Lemire, no rejection)."""
    return (rng.next() * bound) >> 64


def shuffle(a: list[Any], lo: int, hi: int, rng: SplitMix64) -> None:
    """Fisher–Yates on ``a[lo:hi]`` in place, high index down to lo + 1."""
    i = hi - 1
    while i > lo:
        j = lo + below(i - lo + 1, rng)
        a[i], a[j] = a[j], a[i]
        i -= 1


def stream_seed(seed: int, epoch: int) -> int:
    """Seed of an epoch's single stream: mix(seed XOR mix(epoch + 0x5245504C41590001))."""
    return mix((seed & MASK64) ^ mix((epoch + 0x5245504C41590001) & MASK64))


def draw_negatives(count: int, vocab: int, seed: int, draw: int) -> list[int]:
    """``SampledTailLoss.drawNegatives``: ``count`` distinct ids of ``0..<vocab``, ascending — Floyd's
    sampling from SplitMix64(mix(seed XOR mix(draw + 0x5441494C4E454701))). The Swift trainer uses
    draw = the optimizer's step count before the step."""
    if not 0 <= count <= vocab:
        raise ValueError(f"count {count}, expected within 0...vocab {vocab}")
    rng = SplitMix64(mix((seed & MASK64) ^ mix((draw + 0x5441494C4E454701) & MASK64)))
    chosen: set[int] = set()
    for j in range(vocab - count, vocab):
        t = below(j + 1, rng)
        if t in chosen:
            chosen.add(j)
        else:
            chosen.add(t)
    return sorted(chosen)


# -- snapshot ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotShard:
    """One sealed shard of a snapshot. ``positions_per_sequence[b]`` are the catalog's position
    counts of block b's sequences by ordinal (empty when built without a cache)."""

    dataset: str
    uuid: uuid.UUID
    generation: int
    file_hash: int
    sequences_per_block: tuple[int, ...]
    positions: int = 0
    path: str = ""
    positions_per_sequence: tuple[NDArray[np.int64], ...] = field(default=(), compare=False, repr=False)

    @property
    def blocks(self) -> int:
        return len(self.sequences_per_block)

    @property
    def sequences(self) -> int:
        return sum(self.sequences_per_block)


@dataclass(frozen=True)
class Snapshot:
    """The frozen list of sealed shards a replay reads (datasets by name, shards by generation)."""

    shards: tuple[SnapshotShard, ...]

    @property
    def sequences(self) -> int:
        return sum(s.sequences for s in self.shards)

    @property
    def positions(self) -> int:
        return sum(s.positions for s in self.shards)

    @property
    def hash(self) -> int:
        """FNV-1a 64 over "logitd-replay-snapshot-v1", then per shard: dataset name, 0x00, the 16
        UUID bytes, the file's XXH3-64 as u64 LE, the block count as u64 LE."""
        h = 0xCBF29CE484222325
        data = bytearray(b"logitd-replay-snapshot-v1")
        for s in self.shards:
            data += s.dataset.encode("utf-8") + b"\0" + s.uuid.bytes
            data += (s.file_hash & MASK64).to_bytes(8, "little") + s.blocks.to_bytes(8, "little")
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & MASK64
        return h

    @property
    def hash_hex(self) -> str:
        return f"{self.hash:016x}"


def epoch_order(snapshot: Snapshot, seed: int, epoch: int, window: int = 512, shuffle_: bool = True
                ) -> NDArray[np.int64]:
    """Every sequence once, as rows (shard, block, ordinal): shards shuffled, then each shard's
    blocks, then windows of ``window`` sequences, all from one SplitMix64 stream
    (``ReplayOrder.epochOrder``). ``shuffle_ = False``: file order."""
    rng = SplitMix64(stream_seed(seed, epoch))
    shard_order = list(range(len(snapshot.shards)))
    if shuffle_:
        shuffle(shard_order, 0, len(shard_order), rng)
    parts: list[NDArray[np.int64]] = []
    for s in shard_order:
        per_block = snapshot.shards[s].sequences_per_block
        block_order = list(range(len(per_block)))
        if shuffle_:
            shuffle(block_order, 0, len(block_order), rng)
        for b in block_order:
            n = per_block[b]
            part = np.empty((n, 3), dtype=np.int64)
            part[:, 0] = s
            part[:, 1] = b
            part[:, 2] = np.arange(n)
            parts.append(part)
    order = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
    if shuffle_:
        w = max(1, window)
        index = list(range(len(order)))
        for start in range(0, len(index), w):
            shuffle(index, start, min(start + w, len(index)), rng)
        order = order[np.asarray(index, dtype=np.int64)] if index else order
    return order


def share_size(total: int, world_size: int, remainder: Remainder) -> int:
    """Sequences per rank: ⌈N/R⌉ when padding, ⌊N/R⌋ when dropping the remainder."""
    if remainder == "pad":
        return (total + world_size - 1) // world_size
    if remainder == "drop":
        return total // world_size
    raise ReplayError(f"remainder {remainder!r}, expected 'pad' or 'drop'")


def global_index(k: int, rank: int, share: int, total: int) -> int:
    """Index into the epoch order of the k-th sequence of ``rank``'s share."""
    return (rank * share + k) % total


# -- options and state ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayOptions:
    """``ReplayOptions`` of the Swift side (without the prefetch depth)."""

    seed: int = 0
    shuffle: bool = True
    window: int = 512
    rank: int = 0
    world_size: int = 1
    remainder: Remainder = "pad"
    max_tokens: int = 8192
    max_sequence_length: int = 2048

    def validate(self) -> None:
        if not (self.world_size >= 1 and 0 <= self.rank < self.world_size):
            raise ReplayError(f"rank {self.rank} of world size {self.world_size}, expected 0 ≤ rank < worldSize")
        if self.window < 1:
            raise ReplayError(f"window {self.window}, expected ≥ 1")
        if self.max_sequence_length < 1:
            raise ReplayError(f"maxSequenceLength {self.max_sequence_length}, expected ≥ 1")
        if self.max_tokens < self.max_sequence_length:
            raise ReplayError(f"maxTokens {self.max_tokens} must be ≥ maxSequenceLength {self.max_sequence_length} "
                              "(a chunk must fit a batch)")
        if self.max_tokens > 1 << 28:
            raise ReplayError(f"maxTokens {self.max_tokens}, expected ≤ 2^28")
        if self.remainder not in ("pad", "drop"):
            raise ReplayError(f"remainder {self.remainder!r}, expected 'pad' or 'drop'")
        if not 0 <= self.seed <= MASK64:
            raise ReplayError(f"seed {self.seed}, expected a u64")


_STATE_KEYS = ("snapshotHash", "seed", "epoch", "sequencesConsumed", "chunksConsumed", "rank", "worldSize",
               "maxSequenceLength")


@dataclass(frozen=True)
class ReplayState:
    """Where a rank is in an epoch — the Swift ``ReplayState``; :meth:`to_dict` gives its JSON keys."""

    snapshot_hash: str
    seed: int
    epoch: int
    sequences_consumed: int
    chunks_consumed: int
    rank: int
    world_size: int
    max_sequence_length: int

    def to_dict(self) -> dict[str, Any]:
        return {"snapshotHash": self.snapshot_hash, "seed": self.seed, "epoch": self.epoch,
                "sequencesConsumed": self.sequences_consumed, "chunksConsumed": self.chunks_consumed,
                "rank": self.rank, "worldSize": self.world_size, "maxSequenceLength": self.max_sequence_length}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayState:
        missing = [k for k in _STATE_KEYS if k not in d]
        if missing:
            raise ReplayError(f"replay state lacks {missing}")
        return cls(str(d["snapshotHash"]), int(d["seed"]), int(d["epoch"]), int(d["sequencesConsumed"]),
                   int(d["chunksConsumed"]), int(d["rank"]), int(d["worldSize"]), int(d["maxSequenceLength"]))


# -- batches -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchPlan:
    """Which chunks form one batch: per row (shard, block, ordinal, start, end) in positions of its
    sequence, and the state after the batch. Computed from the catalog's position counts, without
    decoding anything."""

    rows: tuple[tuple[int, int, int, int, int], ...]
    state_after: ReplayState

    @property
    def positions(self) -> int:
        return sum(r[4] - r[3] for r in self.rows)


@dataclass
class ReplayBatch:
    """One packed batch, as ``Replay.ReplayBatch``: rows end to end without padding (row r is
    positions ``row_offsets[r]:row_offsets[r+1]``), and per position the input, the target (gold
    id), the mask (0 or 1) and the candidate set ``ids[set_offsets[p]:set_offsets[p+1]]`` with the
    teacher's full-vocabulary ``logprobs``. ``row_sources[r]`` is (shard, block, ordinal, start)."""

    row_offsets: NDArray[np.int64]
    inputs: NDArray[np.int64]
    targets: NDArray[np.int64]
    mask: NDArray[np.uint8]
    set_offsets: NDArray[np.int64]
    ids: NDArray[np.int64]
    logprobs: NDArray[np.float32]
    row_sources: list[tuple[int, int, int, int]]
    state_after: ReplayState

    @property
    def rows(self) -> int:
        return len(self.row_offsets) - 1

    @property
    def positions(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Row:
    """One chunk of a sequence: positions [start, start + len(inputs)) of sequence (shard, block,
    ordinal); the set of position p is ``ids[set_offsets[p]:set_offsets[p+1]]``."""

    inputs: NDArray[np.uint32]
    targets: NDArray[np.uint32]
    mask: NDArray[np.uint8]
    set_offsets: NDArray[np.int64]
    ids: NDArray[np.uint32]
    logprobs: NDArray[np.float32]
    source: tuple[int, int, int, int]


class ReplaySource:
    """One or more datasets of a cache, opened read-only for replay (``Replay.ReplayDataset``):
    a frozen snapshot of their sealed shards, the epoch order, rank shares and batches.

    Everything needed from the catalog (snapshot, per-sequence position counts) is read at
    construction; shard files are opened lazily in the process that decodes, so the object can
    be handed to data-loader worker processes (fork or spawn)."""

    def __init__(self, cache: str | os.PathLike[str] | Cache, datasets: str | Sequence[str],
                 block_cache: int = 8) -> None:
        names = [datasets] if isinstance(datasets, str) else list(datasets)
        if not names:
            raise ReplayError("no dataset named")
        if len(set(names)) != len(names):
            raise ReplayError(f"dataset named twice in {names}")
        own = not isinstance(cache, Cache)
        store = Cache(cache) if not isinstance(cache, Cache) else cache
        try:
            infos = [store.dataset(n) for n in sorted(names)]
            first = infos[0]
            for info in infos[1:]:
                diffs = []
                if info.vocab_size != first.vocab_size:
                    diffs.append(f"vocab size {info.vocab_size} ≠ {first.vocab_size}")
                if info.tokenizer_id != first.tokenizer_id:
                    diffs.append(f"tokenizer id '{info.tokenizer_id}' ≠ '{first.tokenizer_id}'")
                if info.tokenizer_hash != first.tokenizer_hash:
                    diffs.append(f"tokenizer hash '{info.tokenizer_hash}' ≠ '{first.tokenizer_hash}'")
                if diffs:
                    raise ReplayError(f"dataset '{info.name}' differs from '{first.name}': " + ", ".join(diffs))
            self.directory = store.path
            shards = [self._snapshot_shard(store, info, entry) for info in infos for entry in
                      sorted((s for s in store.shards(info.name) if s.state == "sealed"), key=lambda s: s.generation)]
        finally:
            if own:
                store.close()
        self.datasets: list[Dataset] = infos
        self.vocab_size = first.vocab_size
        self.max_set_size = max(d.k_max + 1 for d in infos)
        self.snapshot = Snapshot(tuple(shards))
        if self.snapshot.sequences == 0:
            raise ReplayError(f"datasets {sorted(names)} have no sealed sequences in {self.directory} "
                              "(open shards are not replayed)")
        self._block_cache_size = max(1, block_cache)
        self._shards: dict[int, Shard] = {}
        self._blocks: OrderedDict[tuple[int, int], DecodedBlock] = OrderedDict()
        self._orders: dict[tuple[int, int, int, bool], NDArray[np.int64]] = {}

    @staticmethod
    def _snapshot_shard(store: Cache, info: Dataset, entry: ShardInfo) -> SnapshotShard:
        if entry.file_hash is None:
            raise ReplayError(f"sealed shard {entry.path} of '{info.name}' has no file hash in the catalog")
        path = os.path.join(store.path, entry.path)
        with Shard.sealed(path) as reader:
            if reader.shard_id != entry.uuid or len(reader.blocks) != entry.blocks \
                    or reader.provenance.vocab_size != info.vocab_size:
                raise ReplayError(f"{path}: shard id {reader.shard_id}, {len(reader.blocks)} blocks, vocab "
                                  f"{reader.provenance.vocab_size}; catalog expects {entry.uuid}, {entry.blocks} "
                                  f"blocks, vocab {info.vocab_size}")
            per_block = tuple(b.sequence_count for b in reader.blocks)
            positions = sum(b.positions for b in reader.blocks)

        def query(c: sqlite3.Connection) -> list[Any]:
            return c.execute("SELECT block, ordinal, positions FROM sequence WHERE shard_id = ? ORDER BY block, ordinal",
                             (entry.id,)).fetchall()
        rows = np.asarray(store.catalog.read(query), dtype=np.int64).reshape(-1, 3)
        per_sequence: list[NDArray[np.int64]] = []
        cursor = 0
        for b, n in enumerate(per_block):
            chunk = rows[cursor:cursor + n]
            if len(chunk) != n or np.any(chunk[:, 0] != b) or np.any(chunk[:, 1] != np.arange(n)) \
                    or np.any(chunk[:, 2] < 1):
                raise ReplayError(f"{path}: the catalog's sequence rows do not match block {b} "
                                  f"({n} sequences in the shard)")
            per_sequence.append(chunk[:, 2].copy())
            cursor += n
        if cursor != len(rows):
            raise ReplayError(f"{path}: the catalog lists {len(rows)} sequences, the shard holds {cursor}")
        return SnapshotShard(info.name, entry.uuid, entry.generation, entry.file_hash, per_block, positions,
                             path, tuple(per_sequence))

    # pickling for data-loader workers: no open files or decoded blocks travel
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"], state["_blocks"], state["_orders"] = {}, OrderedDict(), {}
        return state

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()
        self._blocks.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- order and shares

    def order(self, epoch: int, options: ReplayOptions) -> NDArray[np.int64]:
        """The epoch's order (every sequence once, not yet split across ranks), (N, 3) rows."""
        key = (options.seed, epoch, options.window, options.shuffle)
        if key not in self._orders:
            self._orders.clear()
            self._orders[key] = epoch_order(self.snapshot, options.seed, epoch, options.window, options.shuffle)
        return self._orders[key]

    def share_size(self, options: ReplayOptions) -> int:
        return share_size(self.snapshot.sequences, options.world_size, options.remainder)

    def initial_state(self, epoch: int, options: ReplayOptions) -> ReplayState:
        return ReplayState(self.snapshot.hash_hex, options.seed, epoch, 0, 0, options.rank, options.world_size,
                           options.max_sequence_length)

    def check_state(self, state: ReplayState, options: ReplayOptions, allow_snapshot_change: bool = False
                    ) -> tuple[ReplayState, ReplayOptions]:
        """The checks of ``ReplayDataset.makeProducer``; returns the effective state and options
        (the state's seed wins, the snapshot hash becomes the current one)."""
        options.validate()
        if state.snapshot_hash != self.snapshot.hash_hex and not allow_snapshot_change:
            raise ReplayError(f"state was taken on snapshot {state.snapshot_hash}, the cache now gives "
                              f"{self.snapshot.hash_hex} (shards added, removed or rewritten); pass "
                              "allow_snapshot_change to continue anyway")
        if state.rank != options.rank or state.world_size != options.world_size:
            raise ReplayError(f"state is rank {state.rank} of {state.world_size}, options say rank {options.rank} "
                              f"of {options.world_size}")
        if state.max_sequence_length != options.max_sequence_length:
            raise ReplayError(f"state was taken with maxSequenceLength {state.max_sequence_length}, options say "
                              f"{options.max_sequence_length}")
        if options.max_tokens * self.max_set_size > 0xFFFFFFFF:
            raise ReplayError(f"maxTokens {options.max_tokens} × K ≤ {self.max_set_size} candidates could overflow the "
                              "u32 set offsets of a batch")
        effective = replace(options, seed=state.seed)
        share = self.share_size(effective)
        if share <= 0:
            raise ReplayError(f"{self.snapshot.sequences} sequences cannot give each of {options.world_size} ranks one "
                              "when dropping the remainder")
        if not (0 <= state.sequences_consumed <= share and state.chunks_consumed >= 0
                and (state.sequences_consumed < share or state.chunks_consumed == 0)):
            raise ReplayError(f"state has consumed {state.sequences_consumed} sequences + {state.chunks_consumed} "
                              f"chunks of a {share}-sequence share")
        return replace(state, snapshot_hash=self.snapshot.hash_hex), effective

    def positions_of(self, shard: int, block: int, ordinal: int) -> int:
        return int(self.snapshot.shards[shard].positions_per_sequence[block][ordinal])

    def plan(self, state: ReplayState, options: ReplayOptions, allow_snapshot_change: bool = False
             ) -> Iterator[BatchPlan]:
        """The batches of the rest of the epoch from ``state`` (``BatchProducer.fill``), as plans."""
        state, options = self.check_state(state, options, allow_snapshot_change)
        order = self.order(state.epoch, options)
        total = len(order)
        share = share_size(total, options.world_size, options.remainder)
        max_len, max_tokens = options.max_sequence_length, options.max_tokens
        consumed, chunks_done = state.sequences_consumed, state.chunks_consumed
        while consumed < share:
            rows: list[tuple[int, int, int, int, int]] = []
            used = 0
            while consumed < share:
                g = global_index(consumed, options.rank, share, total)
                s, b, o = (int(x) for x in order[g])
                p = self.positions_of(s, b, o)
                chunks = (p + max_len - 1) // max_len
                if chunks_done >= chunks:
                    raise ReplayError(f"sequence {consumed} of the share has {chunks} chunks, state says "
                                      f"{chunks_done} consumed")
                full = False
                while chunks_done < chunks:
                    start = chunks_done * max_len
                    end = min(start + max_len, p)
                    if used + (end - start) > max_tokens:
                        full = True
                        break
                    rows.append((s, b, o, start, end))
                    used += end - start
                    chunks_done += 1
                if full:
                    break
                consumed += 1
                chunks_done = 0
            yield BatchPlan(tuple(rows), replace(state, sequences_consumed=consumed, chunks_consumed=chunks_done))

    # -- decoding

    def _block(self, shard: int, block: int) -> DecodedBlock:
        key = (shard, block)
        found = self._blocks.get(key)
        if found is not None:
            self._blocks.move_to_end(key)
            return found
        reader = self._shards.get(shard)
        if reader is None:
            reader = self._shards[shard] = Shard.sealed(self.snapshot.shards[shard].path)
        decoded = reader.block(block)
        self._blocks[key] = decoded
        while len(self._blocks) > self._block_cache_size:
            self._blocks.popitem(last=False)
        return decoded

    def row(self, shard: int, block: int, ordinal: int, start: int, end: int) -> Row:
        """Positions [start, end) of one sequence (inputs, targets, mask, sets)."""
        blk = self._block(shard, block)
        if not 0 <= ordinal < blk.sequence_count:
            raise ReplayError(f"{self.snapshot.shards[shard].path} block {block} has {blk.sequence_count} sequences, "
                              f"snapshot expects ordinal {ordinal}")
        p0, p1 = int(blk.pos_start[ordinal]), int(blk.pos_start[ordinal + 1])
        if p1 - p0 != self.positions_of(shard, block, ordinal):
            raise ReplayError(f"{self.snapshot.shards[shard].path} block {block} ordinal {ordinal} has {p1 - p0} "
                              f"positions, the catalog says {self.positions_of(shard, block, ordinal)}")
        t0 = int(blk.tok_start[ordinal])
        tokens = blk.tokens[t0 + start:t0 + end + 1]
        if blk.has_mask[ordinal]:
            m0 = int(blk.mask_start[ordinal])
            mask = blk.loss_mask[m0 + start:m0 + end]
        else:
            mask = np.ones(end - start, dtype=np.uint8)
        offsets = blk.set_offsets[p0 + start:p0 + end + 1]
        lo, hi = int(offsets[0]), int(offsets[-1])
        return Row(tokens[:-1], tokens[1:], mask, offsets - lo, blk.ids[lo:hi], blk.logprobs[lo:hi],
                   (shard, block, ordinal, start))

    def rows_of(self, plan: BatchPlan) -> list[Row]:
        return [self.row(*r) for r in plan.rows]

    def materialize(self, plan: BatchPlan) -> ReplayBatch:
        """The packed batch of a plan, exactly as the Swift loader delivers it."""
        rows = self.rows_of(plan)
        sizes = [len(r.inputs) for r in rows]
        row_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=row_offsets[1:])
        set_offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for r in rows:
            set_offsets.append(r.set_offsets[1:] + base)
            base += int(r.set_offsets[-1])

        def cat(arrays: list[Any], dtype: Any) -> Any:
            return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)
        return ReplayBatch(row_offsets, cat([r.inputs for r in rows], np.int64), cat([r.targets for r in rows], np.int64),
                           cat([r.mask for r in rows], np.uint8), np.concatenate(set_offsets),
                           cat([r.ids for r in rows], np.int64), cat([r.logprobs for r in rows], np.float32),
                           [r.source for r in rows], plan.state_after)

    def batches(self, state: ReplayState, options: ReplayOptions, allow_snapshot_change: bool = False
                ) -> Iterator[ReplayBatch]:
        """The rest of the epoch from ``state``, batch by batch (each carries its ``state_after``)."""
        for plan in self.plan(state, options, allow_snapshot_change):
            yield self.materialize(plan)
