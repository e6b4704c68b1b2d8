"""One shard file, read-only: a sealed file through one read-only memory map, an open file
through ``pread`` up to the committed length (recovery may cut an open file back, and a mapping
past the new end would fault). Geometry is validated when the shard is opened; a block's header,
checksum and payload when it is first decoded (Sources/ShardFormat/ShardReader.swift)."""

from __future__ import annotations

import mmap
import os
import uuid
from typing import Protocol

import numpy as np

from . import layout
from .block import BlockDecoder, DecodedBlock
from .codecs import decompress
from .errors import ShardError
from .layout import BlockInfo, FileHeader, Provenance


class _Source(Protocol):
    path: str
    size: int

    def read(self, offset: int, count: int, what: str, block: int | None = None) -> memoryview: ...

    def close(self) -> None: ...


class _MappedFile:
    """The whole file, mapped read-only (sealed shards are never modified)."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = _open(path)
        try:
            self.size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, self.size, access=mmap.ACCESS_READ) if self.size else None
        except (OSError, ValueError) as e:
            raise ShardError(path, f"mmap of {self.size} bytes failed: {e}") from None
        finally:
            os.close(fd)
        self._view = memoryview(self._map) if self._map is not None else memoryview(b"")

    def read(self, offset: int, count: int, what: str, block: int | None = None) -> memoryview:
        _check_range(self.path, self.size, offset, count, what, block)
        return self._view[offset:offset + count]

    def close(self) -> None:
        try:
            self._view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass  # views of the mapping are still alive; it is unmapped when they go


class _CommittedPrefix:
    """The first ``limit`` bytes of an open shard, read with ``pread``."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self._fd = _open(path)
        file_size = os.fstat(self._fd).st_size
        if limit > file_size:
            os.close(self._fd)
            raise ShardError(path, f"committed length {limit} exceeds the file size {file_size}", offset=file_size)
        self.size = limit

    def read(self, offset: int, count: int, what: str, block: int | None = None) -> memoryview:
        _check_range(self.path, self.size, offset, count, what, block)
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise ShardError(self.path, f"{what}: unexpected end of file at {offset + len(data)}", block,
                             offset + len(data))
        return memoryview(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ShardError(path, f"cannot open for reading: {e.strerror} (errno {e.errno})") from None


def _check_range(path: str, size: int, offset: int, count: int, what: str, block: int | None) -> None:
    if count < 0 or offset < 0 or offset + count > size:
        raise ShardError(path, f"{what} at offset {offset} of {count} bytes extends past the end ({size} bytes)",
                         block, offset)


class Shard:
    """A validated shard. Use :meth:`sealed` or :meth:`open_prefix`; then :meth:`block`."""

    def __init__(self, source: _Source, header: FileHeader, blocks: list[BlockInfo], sealed: bool) -> None:
        self._source = source
        self.path = source.path
        self.header = header
        self.blocks = blocks
        self.is_sealed = sealed
        self._decoder = BlockDecoder(header.provenance, source.path)

    @property
    def provenance(self) -> Provenance:
        return self.header.provenance

    @property
    def shard_id(self) -> uuid.UUID:
        return self.header.shard_id

    @property
    def sequence_count(self) -> int:
        last = self.blocks[-1] if self.blocks else None
        return last.first_sequence + last.sequence_count if last else 0

    @classmethod
    def sealed(cls, path: str) -> Shard:
        source = _MappedFile(path)
        try:
            return cls._open_sealed(source)
        except BaseException:
            source.close()
            raise

    @classmethod
    def _open_sealed(cls, source: _MappedFile) -> Shard:
        path, size = source.path, source.size
        if size < layout.FIXED_HEADER_BYTES + layout.TRAILER_BYTES or size % 64 != 0:
            raise ShardError(path, f"file size {size} is not a sealed shard (needs ≥ 128 bytes, a multiple of 64)",
                             offset=size)
        header = _read_header(source)
        trailer = layout.decode_trailer(source.read(size - 64, 64, "trailer"), path, size - 64)
        fo, fl = trailer.footer_offset, trailer.footer_length
        end = fo + fl
        if not (fo >= header.header_length and fo % 64 == 0 and fl >= layout.FOOTER_FIXED_BYTES
                and end <= size - 64 and layout.align64(end) == size - 64):
            raise ShardError(path, f"trailer places the footer at {fo} with length {fl}, inconsistent with header "
                                   f"length {header.header_length} and file size {size}", offset=size - 64)
        footer = source.read(fo, fl, "footer")
        actual = layout.xxh3(footer)
        if actual != trailer.footer_checksum:
            raise ShardError(path, f"footer checksum mismatch (stored {layout.hex64(trailer.footer_checksum)}, "
                                   f"computed {layout.hex64(actual)})", offset=fo)
        blocks = layout.decode_footer(footer, trailer, header.header_length, header.provenance.body, path)
        padding = source.read(end, size - 64 - end, "footer padding")
        if any(padding):
            raise ShardError(path, "footer padding is not zero", offset=end)
        return cls(source, header, blocks, sealed=True)

    @classmethod
    def open_prefix(cls, path: str, committed: int) -> Shard:
        """An unsealed shard, read up to the catalog's committed length."""
        source = _CommittedPrefix(path, committed)
        try:
            return cls._open_prefix(source, committed)
        except BaseException:
            source.close()
            raise

    @classmethod
    def _open_prefix(cls, source: _CommittedPrefix, committed: int) -> Shard:
        path = source.path
        if committed < layout.FIXED_HEADER_BYTES or committed % 64 != 0:
            raise ShardError(path, f"committed length {committed} must be ≥ 64 and a multiple of 64", offset=committed)
        header = _read_header(source)
        blocks: list[BlockInfo] = []
        offset, next_sequence = header.header_length, 0
        while offset < committed:
            index = len(blocks)
            if committed - offset < 128:
                raise ShardError(path, f"only {committed - offset} bytes left at offset {offset}, a block needs ≥ 128",
                                 index, offset)
            info = layout.decode_block_header(source.read(offset, 64, "block header", index), offset, path, index)
            if info.first_sequence != next_sequence:
                raise ShardError(path, f"first sequence {info.first_sequence}, expected {next_sequence}", index, offset)
            if info.end > committed:
                raise ShardError(path, f"block ends at {info.end}, past the committed length {committed}", index, offset)
            blocks.append(info)
            next_sequence += info.sequence_count
            offset = info.end
        if offset != committed:
            raise ShardError(path, f"committed length {committed} falls inside the header ({header.header_length} bytes)",
                             offset=committed)
        return cls(source, header, blocks, sealed=False)

    def block(self, index: int) -> DecodedBlock:
        """Reads, verifies (header against the index, XXH3 checksum), decompresses and decodes one block."""
        if not 0 <= index < len(self.blocks):
            raise ShardError(self.path, f"block {index} out of range 0..<{len(self.blocks)}")
        info = self.blocks[index]
        data = self._source.read(info.offset, 64 + info.stored_bytes, "block", index)
        header, payload = data[:64], data[64:]
        on_disk = layout.decode_block_header(header, info.offset, self.path, index)
        if on_disk != info:
            raise ShardError(self.path, "block header disagrees with the footer index entry", index, info.offset)
        actual = layout.block_checksum(header, payload)
        if actual != info.checksum:
            raise ShardError(self.path, f"checksum mismatch (stored {layout.hex64(info.checksum)}, computed "
                                        f"{layout.hex64(actual)})", index, info.offset)
        raw = decompress(payload, info.codec, info.raw_bytes, self.path, index, info.offset + 64)
        return self._decoder.decode(np.frombuffer(raw, dtype=np.uint8), info, index)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Shard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_header(source: _Source) -> FileHeader:
    fixed = source.read(0, 64, "file header")
    length = layout.header_length(fixed, source.path)
    return layout.decode_header(source.read(0, length, "file header"), source.path)
