"""Fixed structures of a shard file (schema/SHARD_FORMAT.md): header with provenance, block
headers / footer index entries, footer and trailer. Every field is range-checked before it is
used to size or locate anything; failures raise :class:`ShardError` with the Swift reader's
wording (Sources/ShardFormat/ShardLayout.swift, ShardFooter.swift, ShardProvenance.swift)."""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass

import xxhash

from .errors import ShardError

HEADER_MAGIC = b"LGTSHARD"
TRAILER_MAGIC = b"LGTSEND!"
BLOCK_MAGIC = 0x4B4C4247
FOOTER_MAGIC = 0x52544F46
MAJOR_VERSION = 1

FIXED_HEADER_BYTES = 64
MAX_HEADER_BYTES = 64 << 10
BLOCK_HEADER_BYTES = 64
FOOTER_FIXED_BYTES = 48
INDEX_ENTRY_BYTES = 64
TRAILER_BYTES = 64

MAX_BLOCK_RAW_BYTES = 64 << 20
MAX_BLOCK_STORED_BYTES = MAX_BLOCK_RAW_BYTES + (MAX_BLOCK_RAW_BYTES >> 7) + (1 << 16)
MAX_SEQUENCES_PER_BLOCK = 1 << 16
MAX_STRING_BYTES = 4096
MAX_VOCAB_SIZE = 1 << 32
K_MAX_LIMIT = 4096
MAX_TOKENS = 1 << 20
MAX_KEY_BYTES = 1024

CODECS = {0: "none", 1: "zstd", 2: "lz4"}


def align64(n: int) -> int:
    return (n + 63) & ~63


def hex64(value: int) -> str:
    """Swift's ``"0x" + String(v, radix: 16)``."""
    return f"0x{value:x}"


def xxh3(data: bytes | memoryview) -> int:
    return xxhash.xxh3_64_intdigest(data)


class ByteReader:
    """Bounds-checked little-endian reads of untrusted bytes (Swift's ``ByteReader``)."""

    def __init__(self, data: bytes | memoryview, path: str, what: str, block: int | None = None,
                 base: int | None = None) -> None:
        self.data = memoryview(data)
        self.offset = 0
        self.path = path
        self.what = what
        self.block = block
        self.base = base

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, n: int) -> int:
        if n < 0 or n > self.remaining:
            raise ShardError(self.path, f"{self.what} truncated: needs {n} bytes at offset {self.offset}, "
                                        f"only {self.remaining} remain", self.block,
                             None if self.base is None else self.base + self.offset)
        at = self.offset
        self.offset += n
        return at

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        value: int = struct.unpack_from(fmt, self.data, self.take(size))[0]
        return value

    def u8(self) -> int:
        return self.unpack("<B")

    def u16(self) -> int:
        return self.unpack("<H")

    def u32(self) -> int:
        return self.unpack("<I")

    def u64(self) -> int:
        return self.unpack("<Q")

    def f32(self) -> float:
        at = self.take(4)
        value: float = struct.unpack_from("<f", self.data, at)[0]
        return value

    def f64(self) -> float:
        at = self.take(8)
        value: float = struct.unpack_from("<d", self.data, at)[0]
        return value

    def bytes(self, n: int) -> bytes:
        at = self.take(n)
        return bytes(self.data[at:at + n])

    def skip(self, n: int) -> None:
        self.take(n)


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a shard records about its dataset (header and footer copy)."""

    dataset_name: str
    vocab_size: int
    tau: float
    k_min: int
    k_max: int
    teacher_id: str
    tokenizer_id: str
    tokenizer_hash: str
    logprob_scale: float
    body: bytes

    @property
    def id_bytes(self) -> int:
        """Bytes per id in the byte planes: the fewest that hold ``vocab_size - 1``."""
        b = 1
        while b < 4 and (self.vocab_size - 1) >> (8 * b) != 0:
            b += 1
        return b

    @property
    def k_low(self) -> int:
        return min(self.k_min, self.vocab_size)

    @property
    def k_high(self) -> int:
        return self.k_max + 1


@dataclass(frozen=True, slots=True)
class FileHeader:
    shard_id: uuid.UUID
    provenance: Provenance
    header_length: int


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """One block header (or footer index entry): where the block lies and what it holds."""

    offset: int
    stored_bytes: int
    raw_bytes: int
    codec: int
    checksum: int
    first_sequence: int
    sequence_count: int
    positions: int
    candidates: int

    @property
    def end(self) -> int:
        """Where the next block (or the footer) starts."""
        return self.offset + BLOCK_HEADER_BYTES + align64(self.stored_bytes)


@dataclass(frozen=True, slots=True)
class Trailer:
    footer_offset: int
    footer_length: int
    footer_checksum: int
    block_count: int
    sequence_count: int


def header_length(fixed: memoryview, path: str) -> int:
    """Checks magic, version, flags of the first 64 bytes; returns the full header length."""
    r = ByteReader(fixed, path, "file header", base=0)
    magic = r.bytes(8)
    if magic != HEADER_MAGIC:
        raise ShardError(path, f'not a logitd shard: header magic is {list(magic)}, expected "LGTSHARD"', offset=0)
    major, minor = r.u16(), r.u16()
    if major != MAJOR_VERSION:
        raise ShardError(path, f"unsupported format version {major}.{minor}, this reader reads major version "
                               f"{MAJOR_VERSION}", offset=8)
    flags = r.u32()
    if flags != 0:
        raise ShardError(path, f"header flags 0x{flags:x}: unknown flag bits set", offset=12)
    length = r.u32()
    if not (FIXED_HEADER_BYTES <= length <= MAX_HEADER_BYTES and length % 64 == 0):
        raise ShardError(path, f"header length {length} must be a multiple of 64 in 64…{MAX_HEADER_BYTES}", offset=16)
    return length


def decode_header(data: memoryview, path: str) -> FileHeader:
    """Parses and verifies a complete header (``len(data)`` = header length)."""
    length = header_length(data[:64], path)
    if len(data) != length:
        raise ShardError(path, f"header truncated: {len(data)} of {length} bytes", offset=0)
    r = ByteReader(data, path, "file header", base=0)
    r.skip(20)
    body_length = r.u32()
    if body_length > length - FIXED_HEADER_BYTES or align64(FIXED_HEADER_BYTES + body_length) != length:
        raise ShardError(path, f"provenance length {body_length} does not fit header length {length}", offset=20)
    shard_id = uuid.UUID(bytes=r.bytes(16))
    stored = r.u64()
    copy = bytearray(data)
    copy[40:48] = bytes(8)
    actual = xxh3(bytes(copy))
    if stored != actual:
        raise ShardError(path, f"header checksum mismatch (stored {hex64(stored)}, computed {hex64(actual)})", offset=40)
    vocab, scale, id_bytes = r.u64(), r.f32(), r.u8()
    r.skip(3)
    if not 2 <= vocab <= MAX_VOCAB_SIZE:
        raise ShardError(path, f"vocab size {vocab} out of range 2…{MAX_VOCAB_SIZE}", offset=48)
    prov = decode_provenance(bytes(data[64:64 + body_length]), vocab, scale, path)
    if id_bytes != prov.id_bytes:
        raise ShardError(path, f"header id width {id_bytes} bytes, expected {prov.id_bytes} for vocab {vocab}", offset=60)
    for i in range(64 + body_length, length):
        if data[i] != 0:
            raise ShardError(path, f"header padding byte {i} is not zero", offset=i)
    return FileHeader(shard_id, prov, length)


def decode_provenance(body: bytes, vocab_size: int, scale: float, path: str) -> Provenance:
    r = ByteReader(body, path, "provenance", base=64)
    tau, k_min, k_max = r.f64(), r.u32(), r.u32()
    strings: list[str] = []
    for name in ("datasetName", "teacherId", "tokenizerId", "tokenizerHash"):
        n = r.u32()
        if n > MAX_STRING_BYTES:
            raise ShardError(path, f"provenance {name} declares {n} bytes, at most {MAX_STRING_BYTES} allowed",
                             offset=64 + r.offset - 4)
        raw = r.bytes(n)
        try:
            strings.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ShardError(path, f"provenance {name} is not valid UTF-8", offset=64 + r.offset - n) from None
    if r.remaining != 0:
        raise ShardError(path, f"provenance has {r.remaining} trailing bytes", offset=64 + r.offset)
    prov = Provenance(strings[0], vocab_size, tau, k_min, k_max, strings[1], strings[2], strings[3], scale, body)
    validate_provenance(prov, path)
    return prov


def validate_provenance(p: Provenance, path: str) -> None:
    problem = provenance_problem(p)
    if problem is not None:
        raise ShardError(path, f"invalid provenance: {problem}", offset=48)


def provenance_problem(p: Provenance) -> str | None:
    if not math.isfinite(p.tau) or not 0 < p.tau <= 1:
        return f"invalid selection policy: tau must be in (0, 1], got {p.tau}"
    if p.k_min < 1:
        return f"invalid selection policy: kMin must be ≥ 1, got {p.k_min}"
    if p.k_max < p.k_min:
        return f"invalid selection policy: kMin ({p.k_min}) must not exceed kMax ({p.k_max})"
    if p.k_max > K_MAX_LIMIT:
        return f"invalid selection policy: kMax must be ≤ {K_MAX_LIMIT}, got {p.k_max}"
    if not math.isfinite(p.logprob_scale) or not 1 <= p.logprob_scale <= 65536:
        return f"logprob scale must be in 1.0...65536.0 codes per nat, got {p.logprob_scale}"
    if not p.dataset_name:
        return "dataset name is empty"
    return None


def validated_block(offset: int, stored: int, raw: int, codec: int, checksum: int, first: int, sequences: int,
                    positions: int, candidates: int, path: str, block: int, at: int) -> BlockInfo:
    """Range checks shared by block headers and index entries, before anything is sized from them.
    ``at`` is the file offset of the structure read (block header or index entry)."""
    def fail(reason: str) -> ShardError:
        return ShardError(path, reason, block, at)
    if codec not in CODECS:
        raise fail(f"unknown codec byte {codec}")
    if raw > MAX_BLOCK_RAW_BYTES:
        raise fail(f"declares {raw} raw bytes, more than the {MAX_BLOCK_RAW_BYTES}-byte cap")
    if not 1 <= stored <= MAX_BLOCK_STORED_BYTES:
        raise fail(f"declares {stored} stored bytes, expected 1…{MAX_BLOCK_STORED_BYTES}")
    if not 1 <= sequences <= MAX_SEQUENCES_PER_BLOCK:
        raise fail(f"declares {sequences} sequences, expected 1…{MAX_SEQUENCES_PER_BLOCK}")
    if not (sequences <= positions <= raw // 3 and positions <= candidates <= raw):
        raise fail(f"counts ({sequences} sequences, {positions} positions, {candidates} candidates) "
                   f"inconsistent with {raw} raw bytes")
    if first >= (2**63 - 1) // 2 or offset % 64 != 0:
        raise fail(f"first sequence {first} or offset {offset} invalid")
    return BlockInfo(offset, stored, raw, codec, checksum, first, sequences, positions, candidates)


_BLOCK_HEADER = struct.Struct("<IB3xQQQQI4xQQ")
_INDEX_ENTRY = struct.Struct("<QQQQQQQIB3x")
_TRAILER = struct.Struct("<QQQQQHH4xQ8s")


def decode_block_header(data: memoryview, offset: int, path: str, block: int) -> BlockInfo:
    magic, codec, stored, raw, checksum, first, seqs, pos, cand = _BLOCK_HEADER.unpack_from(data, 0)
    if magic != BLOCK_MAGIC:
        raise ShardError(path, f"block magic 0x{magic:x} at offset {offset}, expected 0x{BLOCK_MAGIC:x}", block, offset)
    return validated_block(offset, stored, raw, codec, checksum, first, seqs, pos, cand, path, block, offset)


def block_checksum(header: memoryview, payload: memoryview) -> int:
    """XXH3-64 over the 64-byte block header with bytes 24..<32 zeroed, then the stored payload."""
    h = xxhash.xxh3_64()
    h.update(bytes(header[:24]))
    h.update(bytes(8))
    h.update(bytes(header[32:64]))
    h.update(payload)
    return h.intdigest()


def decode_trailer(data: memoryview, path: str, at: int) -> Trailer:
    fo, fl, fc, bc, sc, major, minor, stored, magic = _TRAILER.unpack_from(data, 0)
    if magic != TRAILER_MAGIC:
        raise ShardError(path, "trailer magic missing: not a sealed shard (truncated, or still open?)", offset=at + 56)
    actual = xxh3(bytes(data[:48]))
    if stored != actual:
        raise ShardError(path, f"trailer checksum mismatch (stored {hex64(stored)}, computed {hex64(actual)})",
                         offset=at + 48)
    if major != MAJOR_VERSION:
        raise ShardError(path, f"trailer declares unsupported format version {major}.{minor}", offset=at + 40)
    return Trailer(fo, fl, fc, bc, sc)


def decode_footer(data: memoryview, trailer: Trailer, header_length: int, provenance_body: bytes,
                  path: str) -> list[BlockInfo]:
    """Parses the footer; checks the index tiles the data region and numbers sequences contiguously."""
    at = trailer.footer_offset

    def fail(reason: str, offset: int = at) -> ShardError:
        return ShardError(path, f"footer: {reason}", offset=offset)
    r = ByteReader(data, path, "footer", base=at)
    if r.u32() != FOOTER_MAGIC:
        raise fail("magic mismatch")
    r.skip(4)
    block_count, sequences, positions, candidates = r.u64(), r.u64(), r.u64(), r.u64()
    prov_length = r.u32()
    r.skip(4)
    if block_count != trailer.block_count or sequences != trailer.sequence_count:
        raise fail(f"counts ({block_count} blocks, {sequences} sequences) disagree with the trailer "
                   f"({trailer.block_count}, {trailer.sequence_count})", at + 8)
    data_bytes = trailer.footer_offset - header_length
    if block_count > data_bytes // 128:
        raise fail(f"declares {block_count} blocks, the {data_bytes}-byte data region holds at most {data_bytes // 128}",
                   at + 8)
    expected = FOOTER_FIXED_BYTES + block_count * INDEX_ENTRY_BYTES + prov_length
    if expected != len(data):
        raise fail(f"length {len(data)} but {block_count} index entries and a {prov_length}-byte provenance need "
                   f"{expected}", at + 40)
    blocks = _decode_index(data, block_count, trailer, header_length, path)
    if (blocks[-1].first_sequence + blocks[-1].sequence_count if blocks else 0) != sequences \
            or sum(b.positions for b in blocks) != positions or sum(b.candidates for b in blocks) != candidates:
        raise fail("totals disagree with the sum of the index entries", at + 16)
    body_at = FOOTER_FIXED_BYTES + block_count * INDEX_ENTRY_BYTES
    if bytes(data[body_at:body_at + prov_length]) != provenance_body:
        raise fail("provenance copy differs from the header's", at + body_at)
    return blocks


def _decode_index(data: memoryview, count: int, trailer: Trailer, header_length: int, path: str) -> list[BlockInfo]:
    blocks: list[BlockInfo] = []
    next_offset, next_sequence = header_length, 0
    for i in range(count):
        entry_at = FOOTER_FIXED_BYTES + i * INDEX_ENTRY_BYTES
        file_at = trailer.footer_offset + entry_at
        offset, stored, raw, checksum, first, pos, cand, seqs, codec = _INDEX_ENTRY.unpack_from(data, entry_at)
        b = validated_block(offset, stored, raw, codec, checksum, first, seqs, pos, cand, path, i, file_at)
        if b.offset != next_offset:
            raise ShardError(path, f"index offset {b.offset}, expected {next_offset} (blocks must be contiguous)", i, file_at)
        if b.first_sequence != next_sequence:
            raise ShardError(path, f"index first sequence {b.first_sequence}, expected {next_sequence}", i, file_at)
        next_offset = b.end
        if next_offset > trailer.footer_offset:
            raise ShardError(path, f"block ends at {next_offset}, past the footer at {trailer.footer_offset}", i, file_at)
        next_sequence += b.sequence_count
        blocks.append(b)
    if next_offset != trailer.footer_offset:
        raise ShardError(path, f"footer: blocks end at {next_offset}, but the footer starts at {trailer.footer_offset}",
                         offset=trailer.footer_offset)
    return blocks
