"""The public reader: :class:`Cache` opens a cache directory read-only and yields records."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .block import DecodedBlock
from .catalog import Catalog
from .content_hash import content_hash
from .errors import CacheError, DatasetNotFound, ShardError
from .models import Coverage, Dataset, Record, ShardInfo
from .shard import Shard


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    block: int
    ordinal: int
    content_hash: int


def _dataset_rows(connection: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    datasets = connection.execute(f"SELECT {Dataset.COLUMNS} FROM dataset ORDER BY name").fetchall()
    shards = connection.execute(f"SELECT {ShardInfo.COLUMNS} FROM shard ORDER BY dataset_id, generation").fetchall()
    return datasets, shards


class Cache:
    """A logitd cache directory, opened read-only (also while ``logitd`` writes to it).

    >>> cache = Cache("/data/kd-cache")
    >>> for record in cache.sequences("netdocs"):
    ...     record.key, record.tokens, record.ids, record.logprobs

    Committed data only: sealed shards whole, open shards up to the committed length the catalog
    records. Every block's XXH3 checksum is verified and its content validated before anything is
    returned; damage raises :class:`~logitd.cache.CacheError` (a :class:`ShardError` naming the file,
    block and byte offset)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.normpath(os.fspath(path))
        if not os.path.isdir(self.path):
            raise CacheError(f"no cache directory at {self.path}")
        self.catalog = Catalog(self.path)

    def close(self) -> None:
        """Closes the catalog connection (shard files are closed as soon as they are read)."""
        self.catalog.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def datasets(self) -> list[Dataset]:
        """Every dataset, sorted by name, with its settings, provenance and coverage."""
        dataset_rows, shard_rows = self.catalog.read(_dataset_rows)
        shards = [ShardInfo.from_row(r) for r in shard_rows]
        return [self._dataset(row, shards) for row in dataset_rows]

    @staticmethod
    def _dataset(row: tuple[Any, ...], shards: list[ShardInfo]) -> Dataset:
        id_, name, vocab, tau, k_min, k_max, scale, teacher, tokenizer, tokenizer_hash, created = row
        own = [s for s in shards if s.dataset_id == id_]
        return Dataset(int(id_), str(name), int(vocab), float(tau), int(k_min), int(k_max), float(scale), str(teacher),
                       str(tokenizer), str(tokenizer_hash), str(created), Coverage.of(own))

    def dataset(self, name: str) -> Dataset:
        """One dataset by name (:class:`DatasetNotFound` when there is none)."""
        return self._dataset_and_shards(name)[0]

    def shards(self, dataset: str) -> list[ShardInfo]:
        """The dataset's shards by generation (all states)."""
        return self._dataset_and_shards(dataset)[1]

    def _dataset_and_shards(self, name: str) -> tuple[Dataset, list[ShardInfo]]:
        def query(c: sqlite3.Connection) -> tuple[Any, list[Any]]:
            row = c.execute(f"SELECT {Dataset.COLUMNS} FROM dataset WHERE name = ?", (name,)).fetchone()
            shards = [] if row is None else c.execute(
                f"SELECT {ShardInfo.COLUMNS} FROM shard WHERE dataset_id = ? ORDER BY generation", (row[0],)).fetchall()
            return row, shards
        row, shard_rows = self.catalog.read(query)
        if row is None:
            raise DatasetNotFound(f"unknown dataset '{name}' in {self.path}")
        shards = [ShardInfo.from_row(r) for r in shard_rows]
        return self._dataset(row, shards), shards

    def sequences(self, dataset: str, verify_hashes: bool = False) -> Iterator[Record]:
        """Every committed sequence of ``dataset`` in storage order (shards by generation, then block
        and ordinal) — the order of ``logitctl export``. Quarantined shards are skipped, as the Swift
        tools do. ``verify_hashes`` also checks each record against its catalog content hash."""
        info, shards = self._dataset_and_shards(dataset)
        for shard in shards:
            if shard.state == "quarantined":
                continue
            yield from self._shard_records(shard, info.logprob_scale if verify_hashes else None)

    def blocks(self, dataset: str) -> Iterator[tuple[ShardInfo, int, DecodedBlock]]:
        """Every committed block of ``dataset`` as block-wide CSR arrays (the fast path for bulk
        readers): ``(shard, block index, decoded block)``."""
        for shard in self.shards(dataset):
            if shard.state == "quarantined":
                continue
            current, _, reader = self._open_committed(shard)
            with reader:
                for index in range(len(reader.blocks)):
                    yield current, index, reader.block(index)

    def _committed(self, shard: ShardInfo) -> tuple[ShardInfo, list[_Entry]]:
        """The shard row and its sequence rows from one catalog snapshot."""
        def query(c: sqlite3.Connection) -> tuple[Any, list[Any]]:
            row = c.execute(f"SELECT {ShardInfo.COLUMNS} FROM shard WHERE id = ?", (shard.id,)).fetchone()
            entries = c.execute("SELECT key, block, ordinal, content_hash FROM sequence WHERE shard_id = ? "
                                "ORDER BY block, ordinal", (shard.id,)).fetchall()
            return row, entries
        row, entries = self.catalog.read(query)
        if row is None:
            raise CacheError(f"shard {shard.path} vanished from the catalog")
        return ShardInfo.from_row(row), [_Entry(str(k), int(b), int(o), int(h) & (2**64 - 1)) for k, b, o, h in entries]

    def _open(self, shard: ShardInfo) -> Shard:
        path = os.path.join(self.path, shard.path)
        if shard.state == "sealed":
            return Shard.sealed(path)
        if shard.state == "open":
            return Shard.open_prefix(path, shard.committed_bytes)
        raise CacheError(f"shard {shard.path} is quarantined: {shard.quarantine_reason or ''}")

    def _open_committed(self, shard: ShardInfo) -> tuple[ShardInfo, list[_Entry], Shard]:
        """Opens the shard with a fresh catalog snapshot; an open shard sealed (renamed) between
        the snapshot and the open is retried once with the new row."""
        for attempt in range(2):
            current, entries = self._committed(shard)
            try:
                return current, entries, self._open(current)
            except ShardError:
                if attempt == 1 or current.state != "open":
                    raise
        raise AssertionError("unreachable")

    def _shard_records(self, shard: ShardInfo, verify_scale: float | None) -> Iterator[Record]:
        current, entries, reader = self._open_committed(shard)
        with reader:
            block_index, block = -1, None
            for entry in entries:
                if entry.block != block_index:
                    block_index, block = entry.block, reader.block(entry.block)
                assert block is not None
                record = _record(block, entry, current.path, reader.path)
                if verify_scale is not None:
                    _verify_hash(record, block, entry, verify_scale, current.path)
                yield record


def _record(block: DecodedBlock, entry: _Entry, shard_path: str, file_path: str) -> Record:
    i = entry.ordinal
    if not 0 <= i < block.sequence_count:
        raise ShardError(file_path, f"ordinal {i} out of range 0..<{block.sequence_count}", entry.block)
    key = block.keys[i]
    if key != entry.key:
        raise CacheError(f"{shard_path} block {entry.block} ordinal {i} holds key '{key}', "
                         f"catalog expects '{entry.key}'")
    p0, p1 = int(block.pos_start[i]), int(block.pos_start[i + 1])
    c0, c1 = int(block.cand_start[i]), int(block.cand_start[i + 1])
    mask = None
    if block.has_mask[i]:
        mask = block.loss_mask[int(block.mask_start[i]):int(block.mask_start[i + 1])]
    return Record(key=key, tokens=block.tokens[int(block.tok_start[i]):int(block.tok_start[i + 1])], loss_mask=mask,
                  offsets=block.set_offsets[p0:p1 + 1] - c0, ids=block.ids[c0:c1], logprobs=block.logprobs[c0:c1],
                  gold_forced=block.gold_forced[p0:p1], shard=shard_path, block=entry.block, ordinal=i)


def _verify_hash(record: Record, block: DecodedBlock, entry: _Entry, scale: float, shard_path: str) -> None:
    actual = content_hash(record, scale)
    if actual != entry.content_hash:
        raise CacheError(f"sequence '{entry.key}' in {shard_path} block {entry.block} does not match its catalog "
                         f"content hash (catalog 0x{entry.content_hash:016x}, computed 0x{actual:016x})")


__all__ = ["Cache"]
