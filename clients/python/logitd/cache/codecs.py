"""Block payload decompression into exactly the declared raw size (Swift's ``BlockCompression``):
a frame that decodes to any other size is corruption, never silently accepted."""

from __future__ import annotations

import lz4.block
import zstandard

from .errors import ShardError

_ZSTD = zstandard.ZstdDecompressor()


def decompress(stored: memoryview, codec: int, raw_bytes: int, path: str, block: int, offset: int) -> bytes:
    """Returns the raw payload of ``raw_bytes`` bytes. ``offset`` is the payload's file offset."""
    if codec == 0:
        if len(stored) != raw_bytes:
            raise ShardError(path, f"uncompressed block stores {len(stored)} bytes but declares {raw_bytes} raw bytes",
                             block, offset)
        return bytes(stored)
    if codec == 1:
        return _zstd(stored, raw_bytes, path, block, offset)
    return _lz4(stored, raw_bytes, path, block, offset)


def _zstd(stored: memoryview, raw_bytes: int, path: str, block: int, offset: int) -> bytes:
    try:
        declared = zstandard.frame_content_size(stored)
    except zstandard.ZstdError:
        declared = -2  # ZSTD_CONTENTSIZE_ERROR, as the Swift reader prints it
    if declared != raw_bytes:
        raise ShardError(path, f"zstd frame declares {declared} content bytes, block header says {raw_bytes}",
                         block, offset)
    try:
        out = _ZSTD.decompress(stored, max_output_size=raw_bytes, allow_extra_data=False)
    except zstandard.ZstdError as e:
        raise ShardError(path, f"zstd decompression failed: {e}", block, offset) from None
    if len(out) != raw_bytes:
        raise ShardError(path, f"zstd produced {len(out)} bytes, expected {raw_bytes}", block, offset)
    return out


def _lz4(stored: memoryview, raw_bytes: int, path: str, block: int, offset: int) -> bytes:
    if len(stored) > 2**31 - 1 or raw_bytes > 2**31 - 1:
        raise ShardError(path, "lz4 block too large", block, offset)
    try:
        out: bytes = lz4.block.decompress(stored, uncompressed_size=raw_bytes)
    except lz4.block.LZ4BlockError:
        raise ShardError(path, "lz4 data is corrupt", block, offset) from None
    if len(out) != raw_bytes:
        raise ShardError(path, f"lz4 produced {len(out)} bytes, expected {raw_bytes}", block, offset)
    return out
