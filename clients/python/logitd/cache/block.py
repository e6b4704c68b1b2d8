"""Decoding of one raw block payload (schema/SHARD_FORMAT.md, "Block payload") into CSR arrays
for all its sequences at once, with numpy: byte planes are combined with shifts over whole
columns, the sets of the id width classes are put in place by one gather, log-prob codes come
from one running sum over the delta column and one gather. No Python loop runs per position or
per candidate; the only per-sequence work is the key. Work arrays are reused from block to block,
and the storage of ids and log-probs once no record refers to it (page faults on fresh
multi-megabyte arrays cost as much as the arithmetic).

Validation follows Sources/ShardFormat/DecodedBlock.swift: the sequence table, every K and
width class and the section sizes are checked before any array is sized from them; decoding
checks ids and tokens < V, gold indexes < K, escape counts and the code range. Because a block
is decoded as a whole, a bad sequence fails the whole block (the Swift reader decodes sequences
one at a time). When several sequences are bad, the first one is reported, with the check the
Swift reader would have hit first."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from .errors import ShardError
from .layout import MAX_KEY_BYTES, MAX_TOKENS, BlockInfo, Provenance

U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
I64 = NDArray[np.int64]
F32 = NDArray[np.float32]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class DecodedBlock:
    """Every sequence of one block, as block-wide CSR arrays.

    Sequence ``i`` has positions ``pos_start[i]:pos_start[i+1]`` (indexes into ``set_offsets``,
    ``gold_forced``), candidates ``cand_start[i]:cand_start[i+1]`` (into ``ids``, ``logprobs``),
    tokens ``tok_start[i]:tok_start[i+1]`` (into ``tokens``) and, when ``has_mask[i]``, mask
    values ``mask_start[i]:mask_start[i+1]`` (into ``loss_mask``). ``set_offsets`` has P + 1
    entries and is block-global (``set_offsets[pos_start[i]] == cand_start[i]``)."""

    keys: list[str]
    pos_start: I64
    cand_start: I64
    tok_start: I64
    mask_start: I64
    has_mask: Bools
    tokens: U32
    loss_mask: U8
    set_offsets: I64
    ids: U32
    logprobs: F32
    gold_forced: Bools

    @property
    def sequence_count(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class _Sections:
    """Section starts (byte offsets into the raw payload) and per-sequence prefix sums."""

    n: int
    p: int
    c: int
    pos_start: I64
    cand_start: I64
    esc_start: I64
    key_start: I64
    mask_start: I64
    has_mask: Bools
    k: I64
    widths: U8
    class_count: list[int]
    keys_at: int
    first_token_at: int
    gold_index_at: int
    gold_at: int
    mask_at: int
    class_at: list[int]
    lp_first_at: int
    lp_delta_at: int
    esc_at: int


class _CodeRange(Exception):
    """A set's last log-prob code passes 2^32 − 1 (``sequence`` is the first such sequence)."""

    def __init__(self, sequence: int) -> None:
        super().__init__(sequence)
        self.sequence = sequence


class _Failures:
    """Collects the first failing sequence of each check; reports the one the Swift reader,
    decoding sequence by sequence and check by check, would have met first."""

    def __init__(self) -> None:
        self.found: list[tuple[int, int, Callable[[], str]]] = []

    def add(self, sequence: int, order: int, message: Callable[[], str]) -> None:
        self.found.append((sequence, order, message))

    def first(self) -> str | None:
        if not self.found:
            return None
        return min(self.found, key=lambda f: (f[0], f[1]))[2]()


def _first(mask: Bools) -> int:
    """Index of the first True (caller knows there is one)."""
    return int(np.argmax(mask))


def _planes(raw: U8, at: int, count: int, planes: int, out: U32 | None = None) -> U32:
    """``count`` values stored as ``planes`` byte planes starting at ``raw[at]`` (into ``out``)."""
    value = np.empty(count, dtype=np.uint32) if out is None else out
    grid = raw[at:at + planes * count].reshape(planes, count)
    np.left_shift(grid[planes - 1], 8 * (planes - 1), out=value, dtype=np.uint32)
    for j in range(planes - 2, -1, -1):
        value |= grid[j] << np.uint32(8 * j) if j else grid[j]
    return value


class _Scratch:
    """Work arrays reused from block to block. Fresh multi-megabyte temporaries cost more in page
    faults than the arithmetic done in them; outputs handed to callers are never scratch."""

    def __init__(self) -> None:
        self._arrays: dict[str, NDArray[Any]] = {}
        self._iota = np.zeros(0, dtype=np.int64)

    def get(self, name: str, size: int, dtype: type[np.generic]) -> NDArray[Any]:
        array = self._arrays.get(name)
        if array is None or len(array) < size:
            array = np.empty(max(size, 2 * (0 if array is None else len(array))), dtype=dtype)
            self._arrays[name] = array
        return array[:size]

    def iota(self, size: int) -> I64:
        """``arange(size)`` as a view of one cached array."""
        if len(self._iota) < size:
            self._iota = np.arange(max(size, 2 * len(self._iota)), dtype=np.int64)
        return self._iota[:size]

    def per_candidate(self, name: str, values: NDArray[Any], k: I64, set_offsets: I64,
                      dtype: type[np.generic]) -> NDArray[Any]:
        """``values[t]`` on every candidate of set t, i.e. ``np.repeat(values, K)``. numpy's repeat
        is fast for long runs but slow for runs of one or two; with small K the scratch array is
        filled with the differences of ``values`` at the set starts and one running sum instead
        (exact for int64 and, modulo 2^32, for uint32)."""
        c = int(set_offsets[-1])
        if c >= 8 * len(k):
            return np.repeat(values.astype(dtype, copy=False), k)
        out = self.get(name, c, dtype)
        out.fill(0)
        out[set_offsets[:-1]] = np.diff(values.astype(dtype), prepend=dtype(0))
        np.cumsum(out, out=out)
        return out


def _planes16(raw: U8, at: int, count: int) -> I64:
    """Two byte planes as one little-endian u16 column, widened to int64."""
    out = np.empty(count, dtype=np.int64)
    np.left_shift(raw[at + count:at + 2 * count], 8, out=out, dtype=np.int64)
    out |= raw[at:at + count]
    return out


def _bits(raw: U8, at: int, count: int) -> U8:
    """A bitmap of ``count`` bits, least significant first."""
    return np.unpackbits(raw[at:at + (count + 7) // 8], count=count, bitorder="little")


class _OutputPool:
    """Storage for the per-candidate outputs (ids, log-probs), recycled once nothing refers to it.

    Records are views into their block's arrays, so a block's storage lives as long as any of its
    records. A fresh multi-megabyte array per block costs page faults on every page (a quarter of
    the decode time, measured); instead the last few buffers are kept and one is reused only when
    the pool holds the sole reference to it — no array or view the caller still has can see it
    change."""

    KEEP = 4
    LARGEST = 32 << 20  # bigger outputs (blocks far above the default 1 MiB) are not kept

    def __init__(self) -> None:
        self._buffers: list[NDArray[np.uint8]] = []

    def candidates(self, count: int) -> tuple[U32, F32]:
        buffer = self._free(8 * count)
        return buffer[:4 * count].view(np.uint32), buffer[4 * count:8 * count].view(np.float32)

    def _free(self, nbytes: int) -> NDArray[np.uint8]:
        for i in range(len(self._buffers)):
            # References: the list and getrefcount's argument. Any view adds one.
            if len(self._buffers[i]) >= nbytes and sys.getrefcount(self._buffers[i]) == 2:
                buffer = self._buffers.pop(i)
                self._buffers.append(buffer)
                return buffer
        buffer = np.empty(max(nbytes, 64), dtype=np.uint8)
        if nbytes <= self.LARGEST:
            self._buffers.append(buffer)
            if len(self._buffers) > self.KEEP:
                self._buffers.pop(0)
        return buffer


_LOCAL = threading.local()


def _thread_outputs() -> _OutputPool:
    pool = getattr(_LOCAL, "outputs", None)
    if pool is None:
        pool = _LOCAL.outputs = _OutputPool()
    assert isinstance(pool, _OutputPool)
    return pool


def _thread_scratch() -> _Scratch:
    """One scratch per thread, shared by every decoder the thread uses (a decoder is used by one
    thread at a time; a block's scratch is dead once ``decode`` returns)."""
    scratch = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = _LOCAL.scratch = _Scratch()
    assert isinstance(scratch, _Scratch)
    return scratch


def _prefix(values: I64) -> I64:
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=out[1:])
    return out


_RUN_COST = 256
"""Candidates one slice copy per run of same-class sets must cover to beat the per-candidate gather
(a run costs about a microsecond of Python; the gather about 1 ns a candidate, measured)."""


def _sequence_of(starts: I64, index: int) -> int:
    """Which sequence a block-wide position or candidate index belongs to."""
    return int(np.searchsorted(starts, index, side="right")) - 1


class BlockDecoder:
    """Decodes raw payloads of one shard's blocks (provenance fixed per shard)."""

    def __init__(self, provenance: Provenance, path: str) -> None:
        self.prov = provenance
        self.path = path
        self.id_bytes = provenance.id_bytes
        self.k_low = provenance.k_low
        self.k_high = provenance.k_high
        self.vocab = provenance.vocab_size
        self.negative_inverse = -(np.float32(1) / np.float32(provenance.logprob_scale))

    @property
    def scratch(self) -> _Scratch:
        return _thread_scratch()

    @property
    def outputs(self) -> _OutputPool:
        return _thread_outputs()

    def decode(self, raw: U8, info: BlockInfo, block: int) -> DecodedBlock:
        def fail(reason: str) -> ShardError:
            return ShardError(self.path, reason, block, info.offset)
        s = self._sections(raw, info, fail)
        keys = self._keys(raw, s, fail)
        set_offsets = _prefix(s.k)
        ids, logprobs = self.outputs.candidates(s.c)
        self._ids(raw, s, set_offsets, out=ids)
        first_tokens = _planes(raw, s.first_token_at, s.n, self.id_bytes)
        gold_index = _planes16(raw, s.gold_index_at, s.p)
        try:
            codes, escape_problem = self._codes(raw, s, set_offsets)
            code_problem = None
        except _CodeRange as e:
            codes, escape_problem, code_problem = np.zeros(0, dtype=np.uint32), None, e.sequence
        self._check_decoded(s, ids, first_tokens, gold_index, escape_problem, code_problem, fail)
        gold_ids = ids[set_offsets[:-1] + gold_index]
        tokens = np.insert(gold_ids, s.pos_start[:-1], first_tokens)
        logprobs[:] = codes
        logprobs *= self.negative_inverse
        return DecodedBlock(
            keys=keys, pos_start=s.pos_start, cand_start=s.cand_start,
            tok_start=s.pos_start + np.arange(s.n + 1, dtype=np.int64), mask_start=s.mask_start,
            has_mask=s.has_mask, tokens=tokens, loss_mask=_bits(raw, s.mask_at, int(s.mask_start[-1])),
            set_offsets=set_offsets, ids=ids, logprobs=logprobs,
            gold_forced=_bits(raw, s.gold_at, s.p).view(np.bool_))

    # -- sequence table, K, width classes, section sizes ------------------------------------

    def _sections(self, raw: U8, info: BlockInfo, fail: Callable[[str], ShardError]) -> _Sections:
        n, size = info.sequence_count, len(raw)
        if 15 * n > size:
            raise fail(f"sequence table of {n} sequences exceeds the {size}-byte payload")
        lengths = raw[0:4 * n].view("<u4").astype(np.int64)
        cands = raw[4 * n:8 * n].view("<u4").astype(np.int64)
        escapes = raw[8 * n:12 * n].view("<u4").astype(np.int64)
        key_bytes = raw[12 * n:14 * n].view("<u2").astype(np.int64)
        flags = raw[14 * n:15 * n]
        self._check_table(lengths, cands, escapes, key_bytes, flags, fail)
        positions = lengths - 1
        has_mask = flags == 1
        pos_start, cand_start = _prefix(positions), _prefix(cands)
        esc_start, key_start = _prefix(escapes), _prefix(key_bytes)
        mask_start = _prefix(np.where(has_mask, positions, 0))
        p, c = int(pos_start[-1]), int(cand_start[-1])
        if p != info.positions or c != info.candidates:
            raise fail(f"sequence table sums to {p} positions and {c} candidates, block header says "
                       f"{info.positions} and {info.candidates}")
        b, m, e = self.id_bytes, int(mask_start[-1]), int(esc_start[-1])
        fixed = 15 * n + int(key_start[-1]) + b * n + 7 * p + (p + 7) // 8 + (m + 7) // 8 + (c - p) + 4 * e
        if fixed > size:
            raise fail(f"section sizes need at least {fixed} bytes, payload has {size}")
        keys_at = 15 * n
        first_token_at = keys_at + int(key_start[-1])
        k_at = first_token_at + b * n
        width_at = k_at + 2 * p
        k = _planes16(raw, k_at, p)
        widths = raw[width_at:width_at + p]
        class_count = self._check_sets(k, widths, pos_start, cand_start, fail)
        id_total = sum((w + 1) * class_count[w] for w in range(b))
        if fixed + id_total != size:
            raise fail(f"section sizes add up to {fixed + id_total} bytes, payload has {size}")
        gold_index_at = width_at + p
        gold_at = gold_index_at + 2 * p
        mask_at = gold_at + (p + 7) // 8
        at = mask_at + (m + 7) // 8
        class_at = []
        for w in range(b):
            class_at.append(at)
            at += (w + 1) * class_count[w]
        return _Sections(n, p, c, pos_start, cand_start, esc_start, key_start, mask_start, has_mask, k, widths,
                         class_count, keys_at, first_token_at, gold_index_at, gold_at, mask_at, class_at,
                         lp_first_at=at, lp_delta_at=at + 2 * p, esc_at=at + 2 * p + (c - p))

    def _check_table(self, lengths: I64, cands: I64, escapes: I64, key_bytes: I64, flags: U8,
                     fail: Callable[[str], ShardError]) -> None:
        positions = lengths - 1
        bad_length = (lengths < 2) | (lengths > MAX_TOKENS)
        bad_cands = (cands < positions * self.k_low) | (cands > positions * self.k_high)
        bad = bad_length | bad_cands | (escapes > cands) | (key_bytes < 1) | (key_bytes > MAX_KEY_BYTES) | (flags > 1)
        if not bad.any():
            return
        i = _first(bad)
        l, c, e, kb = int(lengths[i]), int(cands[i]), int(escapes[i]), int(key_bytes[i])
        if bad_length[i]:
            raise fail(f"sequence {i} declares {l} tokens, expected 2…{MAX_TOKENS}")
        if bad_cands[i]:
            raise fail(f"sequence {i} declares {c} candidates for {l - 1} positions, expected K in "
                       f"{self.k_low}…{self.k_high}")
        if e > c:
            raise fail(f"sequence {i} declares {e} log-prob escapes for {c} candidates")
        if not 1 <= kb <= MAX_KEY_BYTES:
            raise fail(f"sequence {i} key of {kb} bytes, expected 1…{MAX_KEY_BYTES}")
        raise fail(f"sequence {i} has unknown flag bits 0x{int(flags[i]):x}")

    def _check_sets(self, k: I64, widths: U8, pos_start: I64, cand_start: I64,
                    fail: Callable[[str], ShardError]) -> list[int]:
        """Bounds of every K and width class, K sums per sequence; returns candidates per class."""
        failures = _Failures()
        bad_k = (k < self.k_low) | (k > self.k_high)
        bad_w = (widths < 1) | (widths > self.id_bytes)
        bad = bad_k | bad_w
        if bad.any():
            t = _first(bad)
            i = _sequence_of(pos_start, t)
            local = t - int(pos_start[i])
            if bad_k[t]:
                failures.add(i, 0, lambda: f"sequence {i} position {local}: K = {int(k[t])}, expected "
                                           f"{self.k_low}…{self.k_high}")
            else:
                failures.add(i, 0, lambda: f"sequence {i} position {local}: id width class {int(widths[t])}, "
                                           f"expected 1…{self.id_bytes}")
        if len(k):
            sums = np.add.reduceat(k, pos_start[:-1]) if len(pos_start) > 1 else np.zeros(0, np.int64)
        else:
            sums = np.zeros(len(pos_start) - 1, np.int64)
        declared = np.diff(cand_start)
        mismatch = sums != declared
        if mismatch.any():
            j = _first(mismatch)
            failures.add(j, 1, lambda: f"sequence {j}: K values sum to {int(sums[j])}, the sequence table declares "
                                       f"{int(declared[j])} candidates")
        message = failures.first()
        if message is not None:
            raise fail(message)
        counts = np.bincount(widths, weights=k, minlength=self.id_bytes + 1)
        return [int(counts[w + 1]) for w in range(self.id_bytes)]

    # -- decoding ------------------------------------------------------------------------------

    def _keys(self, raw: U8, s: _Sections, fail: Callable[[str], ShardError]) -> list[str]:
        blob = raw[s.keys_at:s.first_token_at].tobytes()
        starts = s.key_start.tolist()
        keys = []
        for i in range(s.n):
            try:
                keys.append(blob[starts[i]:starts[i + 1]].decode("utf-8"))
            except UnicodeDecodeError:
                raise fail(f"sequence {i}: key is not valid UTF-8") from None
        return keys

    def _ids(self, raw: U8, s: _Sections, set_offsets: I64, out: U32) -> U32:
        """Candidate ids in block order. Each width class holds its sets' ids back to back; one
        gather with a per-set source shift puts every set in place."""
        present = [w for w in range(self.id_bytes) if s.class_count[w] > 0]
        if len(present) == 1:
            w = present[0]
            return _planes(raw, s.class_at[w], s.class_count[w], w + 1, out=out)
        values = self.scratch.get("class values", s.c, np.uint32)
        at = 0
        for w in present:
            _planes(raw, s.class_at[w], s.class_count[w], w + 1, out=values[at:at + s.class_count[w]])
            at += s.class_count[w]
        # Consecutive sets of one class are one slice of that class's ids. Real blocks have few
        # such runs (sets of small ids are rare): copy run by run; else gather per candidate.
        edges = np.flatnonzero(s.widths[1:] != s.widths[:-1]) + 1
        if (len(edges) + 1) * _RUN_COST <= s.c:
            run_source = [0] * (self.id_bytes + 1)   # by width: where its class starts in values
            for w in range(1, self.id_bytes):
                run_source[w + 1] = run_source[w] + s.class_count[w - 1]
            run_starts = [0] + edges.tolist()
            cand = set_offsets[run_starts + [s.p]].tolist()
            run_widths = s.widths[run_starts].tolist()
            for r, width in enumerate(run_widths):
                lo, hi = cand[r], cand[r + 1]
                source = run_source[width]
                run_source[width] = source + hi - lo
                out[lo:hi] = values[source:source + hi - lo]
            return out
        # Start of each set within the concatenation: its class's base plus the K of the earlier
        # sets of the same class (one row of running sums per class).
        sets = np.arange(s.p)
        row = s.widths.astype(np.intp) - 1
        by_class = np.zeros((self.id_bytes, s.p), dtype=np.int64)
        by_class[row, sets] = s.k
        np.cumsum(by_class, axis=1, out=by_class)
        class_base = np.cumsum([0] + s.class_count[:-1])
        source = by_class[row, sets] - s.k + class_base[row]
        index = self.scratch.per_candidate("id index", source - set_offsets[:-1], s.k, set_offsets, np.int64)
        index += self.scratch.iota(s.c)
        return values.take(index, out=out, mode="clip")  # indexes are in range by construction

    def _codes(self, raw: U8, s: _Sections, set_offsets: I64) -> tuple[U32, int | None]:
        """Log-prob codes of every candidate. Set t's codes are ``first[t]`` plus running sums of its
        deltas, so one running sum over a per-candidate step column gives them all: the deltas sit
        at every candidate but the first of its set, and the first candidate of set t holds
        ``first[t]`` minus the last code of set t − 1 (``first[t − 1]`` plus that set's deltas).
        The sums run in uint32, exact modulo 2^32; a block whose codes could pass 2^32 − 1 is
        checked exactly first. Escapes are consumed in reading order (set by set, first code then
        deltas). Returns the codes and the first sequence whose escape count differs from the
        declared one."""
        first = _planes16(raw, s.lp_first_at, s.p)
        deltas = raw[s.lp_delta_at:s.lp_delta_at + (s.c - s.p)]
        starts = set_offsets[:-1]
        delta_start = set_offsets - np.arange(s.p + 1, dtype=np.int64)
        first_escaped = np.flatnonzero(first == 0xFFFF)
        delta_escaped = np.flatnonzero(deltas == 0xFF)
        # Candidate index of every escape: a set's first at set_offsets[t]; delta k of set t at k + t + 1.
        delta_sets = np.searchsorted(delta_start[1:], delta_escaped, side="right")
        events = np.concatenate([set_offsets[first_escaped], delta_escaped + delta_sets + 1])
        used = np.diff(np.searchsorted(np.sort(events), s.cand_start))
        declared = np.diff(s.esc_start)
        if not np.array_equal(used, declared):
            return np.zeros(0, dtype=np.uint32), _first(used != declared)
        steps: NDArray[Any] = deltas
        bound = int(first.max(initial=0)) + 0xFF * len(deltas)  # no code can exceed this
        if len(events):
            order = np.argsort(events, kind="stable")
            resolved = np.empty(len(events), dtype=np.int64)
            resolved[order] = raw[s.esc_at:s.esc_at + 4 * len(events)].view("<u4")
            first[first_escaped] = resolved[:len(first_escaped)]
            if len(delta_escaped):
                steps = self.scratch.get("steps", len(deltas), np.uint32)
                steps[:] = deltas
                steps[delta_escaped] = resolved[len(first_escaped):]
            bound += int(resolved.sum())
        if bound > 0xFFFFFFFF:
            self._check_code_range(first, steps, delta_start, s)
        # Each set's delta sum (modulo 2^32), over the sets that have deltas (K > 1): their
        # segments of the delta column are non-empty and in order, as reduceat needs.
        sums = np.zeros(s.p, dtype=np.uint32)
        several = s.k > 1
        if len(steps):
            sums[several] = np.add.reduceat(steps, delta_start[:-1][several], dtype=np.uint32)
        first32 = first.astype(np.uint32)
        last = first32 + sums                        # last code of every set, modulo 2^32
        codes = self.scratch.get("codes", s.c, np.uint32)
        later = self.scratch.get("later", s.c, np.bool_)
        later.fill(True)
        later[starts] = False
        codes[later] = steps
        codes[starts[:1]] = first32[:1]
        codes[starts[1:]] = first32[1:] - last[:-1]  # wraps modulo 2^32, as the running sum does
        np.cumsum(codes, out=codes)
        return codes, None

    @staticmethod
    def _check_code_range(first: I64, steps: NDArray[Any], delta_start: I64, s: _Sections) -> None:
        """Exact last code of every set (int64); raises the Swift reader's error past 2^32 − 1."""
        running = _prefix(steps.astype(np.int64))
        last = first + running[delta_start[1:]] - running[delta_start[:-1]]
        if int(last.max(initial=0)) > 0xFFFFFFFF:
            raise _CodeRange(_sequence_of(s.pos_start, _first(last > 0xFFFFFFFF)))

    def _check_decoded(self, s: _Sections, ids: U32, first_tokens: U32, gold_index: I64, escape_problem: int | None,
                       code_problem: int | None, fail: Callable[[str], ShardError]) -> None:
        failures = _Failures()
        if len(ids) and int(ids.max()) >= self.vocab:
            i = _sequence_of(s.cand_start, _first(ids >= self.vocab))
            top = int(ids[s.cand_start[i]:s.cand_start[i + 1]].max())
            failures.add(i, 0, lambda: f"sequence {i}: candidate id {top} ≥ vocab size {self.vocab}")
        if len(first_tokens) and int(first_tokens.max()) >= self.vocab:
            j = _first(first_tokens >= self.vocab)
            failures.add(j, 1, lambda: f"sequence {j}: first token {int(first_tokens[j])} ≥ vocab size {self.vocab}")
        bad_gold = gold_index >= s.k
        if bad_gold.any():
            g = _sequence_of(s.pos_start, _first(bad_gold))
            failures.add(g, 2, lambda: f"sequence {g}: a gold index lies outside its candidate set")
        if escape_problem is not None:
            declared = int(s.esc_start[escape_problem + 1] - s.esc_start[escape_problem])
            failures.add(escape_problem, 3,
                         lambda: f"sequence {escape_problem}: log-prob escapes do not match the declared {declared}")
        if code_problem is not None:
            h = code_problem
            failures.add(h, 3, lambda: f"sequence {h}: log-prob code exceeds 2^32 − 1")
        message = failures.first()
        if message is not None:
            raise fail(message)
