#!/usr/bin/env python3
"""An independent numpy reference for a Llama model stored in a GGUF file.

Why this exists: the Swift suite imports real pretrained GGUF models (SmolLM2) into TinyLM and
needs numbers to compare against that come from code sharing nothing with the Swift side. This
file reads the GGUF itself (header, metadata, tensor infos, alignment, memory-mapped data),
dequantizes the block types with its own numpy code (the `gguf` PyPI package and llama.cpp are
deliberately not used), and runs the Llama forward pass.

One deliberate difference from the Swift import: llama.cpp's converter stores the rows of Q and K
reordered so that the two halves of every rotary pair are adjacent (row 2i+j of a head is the
Hugging Face row j*h/2+i). The Swift import puts the rows back and rotates halves; this reference
keeps the rows as stored and rotates adjacent pairs (x[2i], x[2i+1]) by pos * theta^(-2i/h).
The two agree only if both are right.

Subcommands (see --help of each): info, logits, ppl, generate. Only numpy and the standard
library are used. BLAS runs on one thread unless OPENBLAS_NUM_THREADS is set (see below).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

# One BLAS thread unless the caller says otherwise: on a 2-core machine that is also compiling,
# OpenBLAS's threads spin against the build and a 256-token window takes ~10 s instead of ~1 s.
# Must be set before numpy is first imported (export OPENBLAS_NUM_THREADS to override).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

F32Array = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]

MetaValue = Union[int, float, bool, str, list["MetaValue"]]

GGUF_MAGIC = 0x46554747  # "GGUF" read as a little-endian u32
DEFAULT_ALIGNMENT = 32

# ---------------------------------------------------------------------------------------------
# ggml element types: id -> name. Only some are readable (DEQUANTIZERS below); every other known
# id is refused with its name, an unknown id with its number.
GGML_TYPE_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# (elements per block, bytes per block) of the readable types.
BLOCK_LAYOUT: dict[str, tuple[int, int]] = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
}

# GGUF metadata value types.
_SCALAR_FORMATS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<B", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_NUMPY_FORMATS: dict[int, str] = {
    0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 10: "<u8", 11: "<i8",
    12: "<f8",
}
VT_BOOL, VT_STRING, VT_ARRAY = 7, 8, 9


class GGUFError(Exception):
    """A malformed or unsupported GGUF file."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # as stored: fastest-varying first (ggml ne0, ne1, ...)
    type_id: int
    offset: int  # relative to the data section

    @property
    def type_name(self) -> str:
        return GGML_TYPE_NAMES.get(self.type_id, f"unknown type {self.type_id}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Row-major (numpy) shape: the dims reversed."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self) -> int:
        return math.prod(self.dims)

    def n_bytes(self) -> int:
        layout = BLOCK_LAYOUT.get(self.type_name)
        if layout is None:
            raise GGUFError(f"tensor {self.name}: ggml type {self.type_name} is not supported")
        block_elems, block_bytes = layout
        if self.dims[0] % block_elems != 0:
            raise GGUFError(
                f"tensor {self.name}: row length {self.dims[0]} is not a multiple of "
                f"the {self.type_name} block ({block_elems})")
        return self.n_elements // block_elems * block_bytes


class _Reader:
    """Sequential little-endian reads over the memory-mapped header."""

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"truncated file: need {n} bytes at offset {self.pos}")

    def scalar(self, fmt: str, size: int) -> int | float:
        self._need(size)
        value: int | float = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        return int(self.scalar("<I", 4))

    def u64(self) -> int:
        return int(self.scalar("<Q", 8))

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GGUFError(f"string at offset {self.pos - n} is not UTF-8: {e}") from e

    def value(self, vtype: int) -> MetaValue:
        if vtype == VT_STRING:
            return self.string()
        if vtype == VT_BOOL:
            b = int(self.scalar("<B", 1))
            if b not in (0, 1):
                raise GGUFError(f"bool value {b} at offset {self.pos - 1}")
            return b == 1
        if vtype == VT_ARRAY:
            etype = self.u32()
            count = self.u64()
            if etype == VT_ARRAY:
                raise GGUFError(f"nested arrays are not read (offset {self.pos})")
            if etype in _NUMPY_FORMATS:
                size = _SCALAR_FORMATS[etype][1]
                self._need(count * size)
                arr = np.frombuffer(self.buf, dtype=_NUMPY_FORMATS[etype], count=count,
                                    offset=self.pos)
                self.pos += count * size
                out: list[MetaValue] = arr.tolist()
                return out
            return [self.value(etype) for _ in range(count)]
        if vtype in _SCALAR_FORMATS:
            fmt, size = _SCALAR_FORMATS[vtype]
            return self.scalar(fmt, size)
        raise GGUFError(f"unknown metadata value type {vtype} at offset {self.pos}")


class GGUFFile:
    """A parsed GGUF file; tensor data stays memory-mapped until dequantized."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: U8Array = np.memmap(self.path, dtype=np.uint8, mode="r")
        r = _Reader(self.data.data)  # ndarray.data: a memoryview of the mapping
        magic = r.u32()
        if magic != GGUF_MAGIC:
            raise GGUFError(f"{self.path}: bad magic 0x{magic:08x}")
        self.version = r.u32()
        if self.version not in (2, 3):
            raise GGUFError(f"{self.path}: GGUF version {self.version} is not read")
        n_tensors = r.u64()
        n_kv = r.u64()
        self.metadata: dict[str, MetaValue] = {}
        self.metadata_types: dict[str, int] = {}
        for _ in range(n_kv):
            key = r.string()
            vtype = r.u32()
            if key in self.metadata:
                raise GGUFError(f"{self.path}: duplicate key {key}")
            self.metadata[key] = r.value(vtype)
            self.metadata_types[key] = vtype
        self.tensors: dict[str, TensorInfo] = {}
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.u32()
            if not 1 <= n_dims <= 4:
                raise GGUFError(f"tensor {name}: {n_dims} dimensions")
            dims = tuple(r.u64() for _ in range(n_dims))
            type_id = r.u32()
            offset = r.u64()
            if name in self.tensors:
                raise GGUFError(f"{self.path}: duplicate tensor {name}")
            self.tensors[name] = TensorInfo(name, dims, type_id, offset)
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError(f"general.alignment {alignment!r} is not a power of two")
        self.alignment = alignment
        self.data_offset = (r.pos + alignment - 1) // alignment * alignment
        for t in self.tensors.values():
            if t.offset % alignment:
                raise GGUFError(f"tensor {t.name}: offset {t.offset} not aligned")
            if t.type_name in BLOCK_LAYOUT and \
                    self.data_offset + t.offset + t.n_bytes() > len(self.data):
                raise GGUFError(f"tensor {t.name}: data runs past the end of the file")

    def raw(self, name: str) -> U8Array:
        t = self.tensors[name]
        start = self.data_offset + t.offset
        return self.data[start:start + t.n_bytes()]

    def tensor(self, name: str) -> F32Array:
        """The tensor dequantized to float32, in row-major shape (dims reversed)."""
        t = self.tensors.get(name)
        if t is None:
            raise GGUFError(f"{self.path}: no tensor {name}")
        fn = DEQUANTIZERS.get(t.type_name)
        if fn is None:
            raise GGUFError(f"tensor {name}: ggml type {t.type_name} is not supported")
        out = fn(np.asarray(self.raw(name))).reshape(t.shape)
        if not np.all(np.isfinite(out)):
            raise GGUFError(f"tensor {name}: dequantizes to NaN or infinity")
        return out

    def meta_int(self, key: str, default: int | None = None) -> int:
        v = self.metadata.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool):
            raise GGUFError(f"{self.path}: metadata {key} is {v!r}, expected an integer")
        return v

    def meta_float(self, key: str, default: float | None = None) -> float:
        v = self.metadata.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise GGUFError(f"{self.path}: metadata {key} is {v!r}, expected a number")
        return float(v)

    def meta_strings(self, key: str) -> list[str]:
        v = self.metadata.get(key)
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise GGUFError(f"{self.path}: metadata {key} is not an array of strings")
        return [str(s) for s in v]


# ---------------------------------------------------------------------------------------------
# Dequantization. Each function takes the tensor's raw bytes and returns float32 values in
# storage order. Block layouts (all little-endian; "f16" is IEEE binary16):
#   Q4_0  [f16 d][16 B nibbles]                x = (q - 8) d
#   Q4_1  [f16 d][f16 m][16 B nibbles]         x = q d + m
#   Q5_0  [f16 d][u32 qh][16 B nibbles]        x = (q - 16) d, q = nibble | bit << 4
#   Q5_1  [f16 d][f16 m][u32 qh][16 B nibbles] x = q d + m
#   Q8_0  [f16 d][32 x i8]                     x = q d
# In the 32-element blocks byte j holds element j in its low nibble and element j + 16 in its
# high nibble; bit j of qh is the fifth bit of element j.
#   Q4_K  [f16 d][f16 dmin][12 B scales][128 B nibbles], 8 sub-blocks of 32
#   Q5_K  [f16 d][f16 dmin][12 B scales][32 B qh][128 B nibbles]
#   Q6_K  [128 B low nibbles][64 B 2-bit highs][16 x i8 scales][f16 d], 16 sub-blocks of 16


def _blocks(raw: U8Array, block_bytes: int) -> U8Array:
    if raw.size % block_bytes:
        raise GGUFError(f"{raw.size} bytes is not a whole number of {block_bytes}-byte blocks")
    return raw.reshape(-1, block_bytes)


def _f16(cols: U8Array) -> F32Array:
    """Little-endian binary16 from a [n, 2] byte slice -> float32 [n, 1]."""
    return np.ascontiguousarray(cols).view("<f2").astype(np.float32)


def _nibbles32(qs: U8Array) -> npt.NDArray[np.int32]:
    """[n, 16] bytes -> [n, 32] values: low nibbles are elements 0..15, high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)


def _fifth_bits(qh: U8Array) -> npt.NDArray[np.int32]:
    """[n, 4] bytes of a little-endian u32 -> [n, 32] of bit j of that u32 (0 or 1)."""
    word = np.ascontiguousarray(qh).view("<u4").astype(np.int64)  # [n, 1]
    return ((word >> np.arange(32, dtype=np.int64)) & 1).astype(np.int32)


def deq_f32(raw: U8Array) -> F32Array:
    return raw.view("<f4").astype(np.float32)


def deq_f16(raw: U8Array) -> F32Array:
    return raw.view("<f2").astype(np.float32)


def deq_bf16(raw: U8Array) -> F32Array:
    return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)


def deq_q4_0(raw: U8Array) -> F32Array:
    b = _blocks(raw, 18)
    d = _f16(b[:, 0:2])
    q = _nibbles32(b[:, 2:18])
    return ((q - 8).astype(np.float32) * d).reshape(-1)


def deq_q4_1(raw: U8Array) -> F32Array:
    b = _blocks(raw, 20)
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    q = _nibbles32(b[:, 4:20])
    return (q.astype(np.float32) * d + m).reshape(-1)


def deq_q5_0(raw: U8Array) -> F32Array:
    b = _blocks(raw, 22)
    d = _f16(b[:, 0:2])
    q = _nibbles32(b[:, 6:22]) | (_fifth_bits(b[:, 2:6]) << 4)
    return ((q - 16).astype(np.float32) * d).reshape(-1)


def deq_q5_1(raw: U8Array) -> F32Array:
    b = _blocks(raw, 24)
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    q = _nibbles32(b[:, 8:24]) | (_fifth_bits(b[:, 4:8]) << 4)
    return (q.astype(np.float32) * d + m).reshape(-1)


def deq_q8_0(raw: U8Array) -> F32Array:
    b = _blocks(raw, 34)
    d = _f16(b[:, 0:2])
    q = np.ascontiguousarray(b[:, 2:34]).view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def _k_scales_mins(s: U8Array) -> tuple[F32Array, F32Array]:
    """The 12 packed bytes of Q4_K/Q5_K -> 8 six-bit scales and 8 six-bit mins, each [n, 8].

    Sub-blocks 0..3: scale = s[j] & 63, min = s[j+4] & 63. Sub-blocks 4..7: the low four bits
    come from s[j+4] (scale: low nibble, min: high nibble) and the top two bits from the top
    two bits of s[j-4] (scale) and s[j] (min)."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.int32)
    mn = np.empty((s.shape[0], 8), dtype=np.int32)
    sc[:, 0:4] = s[:, 0:4] & 63
    mn[:, 0:4] = s[:, 4:8] & 63
    sc[:, 4:8] = (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:8] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc.astype(np.float32), mn.astype(np.float32)


def _k_nibbles(qs: U8Array) -> npt.NDArray[np.int32]:
    """[n, 128] bytes -> [n, 8, 32]: 32-byte group g gives sub-block 2g (low nibbles) and
    sub-block 2g+1 (high nibbles)."""
    g = qs.reshape(-1, 4, 32).astype(np.int32)
    return np.stack([g & 0x0F, g >> 4], axis=2).reshape(-1, 8, 32)


def deq_q4_k(raw: U8Array) -> F32Array:
    b = _blocks(raw, 144)
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _k_scales_mins(b[:, 4:16])
    q = _k_nibbles(b[:, 16:144]).astype(np.float32)
    x = (d * sc)[:, :, None] * q - (dmin * mn)[:, :, None]
    return x.reshape(-1).astype(np.float32)


def deq_q5_k(raw: U8Array) -> F32Array:
    b = _blocks(raw, 176)
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _k_scales_mins(b[:, 4:16])
    qh = b[:, 16:48].astype(np.int32)  # [n, 32]: bit s of byte l is the fifth bit of (s, l)
    high = (qh[:, None, :] >> np.arange(8, dtype=np.int32)[None, :, None]) & 1  # [n, 8, 32]
    q = (_k_nibbles(b[:, 48:176]) | (high << 4)).astype(np.float32)
    x = (d * sc)[:, :, None] * q - (dmin * mn)[:, :, None]
    return x.reshape(-1).astype(np.float32)


def deq_q6_k(raw: U8Array) -> F32Array:
    b = _blocks(raw, 210)
    n = b.shape[0]
    ql = b[:, 0:128].astype(np.int32).reshape(n, 2, 2, 32)  # [half, first/second 32 B, l]
    qh = b[:, 128:192].astype(np.int32).reshape(n, 2, 32)  # [half, l]
    scales = np.ascontiguousarray(b[:, 192:208]).view(np.int8).astype(np.float32)  # [n, 16]
    d = _f16(b[:, 208:210])
    # Within each 128-element half, element 32*k + l (k = 0..3) takes its low four bits from
    # ql[k % 2][l] (low nibble for k < 2, high nibble for k >= 2) and its top two bits from
    # bits 2k..2k+1 of qh[l].
    q = np.empty((n, 2, 4, 32), dtype=np.int32)
    for k in range(4):
        low = ql[:, :, k % 2, :]
        low = (low & 0x0F) if k < 2 else (low >> 4)
        q[:, :, k, :] = low | (((qh >> (2 * k)) & 3) << 4)
    vals = (q - 32).astype(np.float32).reshape(n, 16, 16)  # 16 sub-blocks of 16
    x = (d * scales)[:, :, None] * vals
    return x.reshape(-1).astype(np.float32)


DEQUANTIZERS: dict[str, Callable[[U8Array], F32Array]] = {
    "F32": deq_f32, "F16": deq_f16, "BF16": deq_bf16,
    "Q4_0": deq_q4_0, "Q4_1": deq_q4_1, "Q5_0": deq_q5_0, "Q5_1": deq_q5_1, "Q8_0": deq_q8_0,
    "Q4_K": deq_q4_k, "Q5_K": deq_q5_k, "Q6_K": deq_q6_k,
}


# ---------------------------------------------------------------------------------------------
# The Llama model.


@dataclass(frozen=True)
class LlamaConfig:
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab: int
    rope_base: float
    eps: float

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass
class LlamaLayer:
    attn_norm: F64Array
    wq: F32Array  # [d, d] rows as stored (adjacent rotary pairs)
    wk: F32Array  # [kv_heads*h, d]
    wv: F32Array
    wo: F32Array
    ffn_norm: F64Array
    w_gate: F32Array  # [ff, d]
    w_up: F32Array
    w_down: F32Array  # [d, ff]


class Llama:
    """Llama forward pass on weights dequantized once from a GGUF file.

    Matrix products run in `dtype` (float32 by default, float64 on request); RMSNorm, RoPE
    angles, softmax and log-softmax are computed in float64."""

    def __init__(self, gguf: GGUFFile, dtype: type[np.floating] = np.float32) -> None:
        self.dtype = dtype
        arch = gguf.metadata.get("general.architecture")
        if arch != "llama":
            raise GGUFError(f"general.architecture is {arch!r}, expected 'llama'")
        if any(k.startswith("llama.rope.scaling") for k in gguf.metadata):
            raise GGUFError("rope scaling is not implemented")
        a = "llama."
        n_heads = gguf.meta_int(a + "attention.head_count")
        emb = gguf.tensor("token_embd.weight")  # [vocab, d]
        self.cfg = LlamaConfig(
            n_layers=gguf.meta_int(a + "block_count"),
            d_model=gguf.meta_int(a + "embedding_length"),
            n_heads=n_heads,
            n_kv_heads=gguf.meta_int(a + "attention.head_count_kv", n_heads),
            d_ff=gguf.meta_int(a + "feed_forward_length"),
            vocab=emb.shape[0],
            rope_base=gguf.meta_float(a + "rope.freq_base", 10000.0),
            eps=gguf.meta_float(a + "attention.layer_norm_rms_epsilon"),
        )
        c = self.cfg
        rope_dims = gguf.metadata.get(a + "rope.dimension_count", c.head_dim)
        if rope_dims != c.head_dim:
            raise GGUFError(f"partial rotary ({rope_dims} of {c.head_dim}) is not implemented")
        if emb.shape[1] != c.d_model:
            raise GGUFError(f"token_embd.weight is {emb.shape}, d_model {c.d_model}")
        self.embedding: F32Array = emb.astype(dtype)
        # Tied head: the LM head is the embedding matrix unless the file has output.weight.
        if "output.weight" in gguf.tensors:
            self.lm_head: F32Array = gguf.tensor("output.weight").astype(dtype)
            self.tied = False
        else:
            self.lm_head = self.embedding
            self.tied = True
        self.final_norm = gguf.tensor("output_norm.weight").astype(np.float64)
        h = c.head_dim
        expect = {
            "attn_q": (c.n_heads * h, c.d_model), "attn_k": (c.n_kv_heads * h, c.d_model),
            "attn_v": (c.n_kv_heads * h, c.d_model), "attn_output": (c.d_model, c.n_heads * h),
            "ffn_gate": (c.d_ff, c.d_model), "ffn_up": (c.d_ff, c.d_model),
            "ffn_down": (c.d_model, c.d_ff),
        }
        self.layers: list[LlamaLayer] = []
        for i in range(c.n_layers):
            w: dict[str, F32Array] = {}
            for k, shape in expect.items():
                t = gguf.tensor(f"blk.{i}.{k}.weight")
                if t.shape != shape:
                    raise GGUFError(f"blk.{i}.{k}.weight is {t.shape}, expected {shape}")
                w[k] = t.astype(dtype)
            self.layers.append(LlamaLayer(
                attn_norm=gguf.tensor(f"blk.{i}.attn_norm.weight").astype(np.float64),
                wq=w["attn_q"], wk=w["attn_k"], wv=w["attn_v"], wo=w["attn_output"],
                ffn_norm=gguf.tensor(f"blk.{i}.ffn_norm.weight").astype(np.float64),
                w_gate=w["ffn_gate"], w_up=w["ffn_up"], w_down=w["ffn_down"]))
        # RoPE: pair i of a head (features 2i, 2i+1) turns at theta^(-2i/h) radians per position.
        self.inv_freq: F64Array = c.rope_base ** (-np.arange(0, h, 2, dtype=np.float64) / h)

    def _rmsnorm(self, x: npt.NDArray[np.floating], weight: F64Array) -> npt.NDArray[np.floating]:
        x64 = x.astype(np.float64)
        ms = np.mean(x64 * x64, axis=-1, keepdims=True)
        out: npt.NDArray[np.floating] = (x64 / np.sqrt(ms + self.cfg.eps) * weight).astype(
            self.dtype)
        return out

    def _rope(self, x: npt.NDArray[np.floating], cos: F64Array,
              sin: F64Array) -> npt.NDArray[np.floating]:
        """x: [T, heads, h] with adjacent rotary pairs; cos/sin: [T, h/2]."""
        x64 = x.astype(np.float64)
        even, odd = x64[..., 0::2], x64[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        out = np.empty_like(x64)
        out[..., 0::2] = even * c - odd * s
        out[..., 1::2] = even * s + odd * c
        return out.astype(self.dtype)

    def hidden(self, ids: I64Array) -> npt.NDArray[np.floating]:
        """Final-normed hidden states [T, d] of one sequence starting at position 0."""
        c = self.cfg
        T, h = ids.shape[0], c.head_dim
        if T == 0:
            return np.zeros((0, c.d_model), dtype=self.dtype)
        if ids.min() < 0 or ids.max() >= c.vocab:
            raise ValueError(f"token id outside 0..{c.vocab - 1}")
        group = c.n_heads // c.n_kv_heads
        angles = np.arange(T, dtype=np.float64)[:, None] * self.inv_freq[None, :]
        cos, sin = np.cos(angles), np.sin(angles)
        causal = np.triu(np.ones((T, T), dtype=bool), k=1)  # True above the diagonal = masked
        scale = 1.0 / math.sqrt(h)
        x = self.embedding[ids].astype(self.dtype)  # residual stream [T, d]
        for L in self.layers:
            a = self._rmsnorm(x, L.attn_norm)
            q = self._rope((a @ L.wq.T).reshape(T, c.n_heads, h), cos, sin)
            k = self._rope((a @ L.wk.T).reshape(T, c.n_kv_heads, h), cos, sin)
            v = (a @ L.wv.T).reshape(T, c.n_kv_heads, h)
            # Grouped-query attention: query head j reads KV head j // group.
            qh = q.transpose(1, 0, 2)  # [H, T, h]
            kh = np.repeat(k.transpose(1, 0, 2), group, axis=0)  # [H, T, h]
            vh = np.repeat(v.transpose(1, 0, 2), group, axis=0)
            scores = (qh @ kh.transpose(0, 2, 1)).astype(np.float64) * scale  # [H, T, T]
            scores[:, causal] = -np.inf
            scores -= scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=-1, keepdims=True)
            ctx = (p.astype(self.dtype) @ vh).transpose(1, 0, 2).reshape(T, c.n_heads * h)
            x = x + ctx @ L.wo.T
            f = self._rmsnorm(x, L.ffn_norm)
            gate = (f @ L.w_gate.T).astype(np.float64)
            up = f @ L.w_up.T
            act = (gate / (1.0 + np.exp(-gate))).astype(self.dtype) * up  # SiLU(gate) * up
            x = x + act @ L.w_down.T
        return self._rmsnorm(x, self.final_norm)

    def logits(self, ids: I64Array) -> F32Array:
        """Logits [T, vocab] (float32) of one sequence starting at position 0."""
        return np.asarray(self.hidden(ids) @ self.lm_head.T, dtype=np.float32)

    def generate(self, prompt: list[int], n_new: int, stop_id: int | None = None) -> list[int]:
        """Greedy continuation (recomputes the whole prefix each step; ties -> lowest id)."""
        ids = list(prompt)
        out: list[int] = []
        for _ in range(n_new):
            last = self.hidden(np.asarray(ids, dtype=np.int64))[-1]
            nxt = int(np.argmax(last @ self.lm_head.T))
            out.append(nxt)
            ids.append(nxt)
            if stop_id is not None and nxt == stop_id:
                break
        return out


def log_softmax64(logits: npt.NDArray[np.floating]) -> F64Array:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    out: F64Array = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return out


# ---------------------------------------------------------------------------------------------
# CLI.


def read_ids(path: str) -> I64Array:
    raw = Path(path).read_bytes()
    if len(raw) % 4:
        raise SystemExit(f"{path}: {len(raw)} bytes is not a whole number of u32 ids")
    return np.frombuffer(raw, dtype="<u4").astype(np.int64)


def _summarize(v: MetaValue, limit: int) -> object:
    if isinstance(v, list):
        if len(v) > limit:
            return {"array_length": len(v), "first": v[:5]}
        return v
    if isinstance(v, str) and len(v) > 2000:
        return v[:2000] + f"... ({len(v)} characters)"
    return v


def cmd_info(args: argparse.Namespace) -> int:
    g = GGUFFile(args.gguf)
    types: dict[str, int] = {}
    for t in g.tensors.values():
        types[t.type_name] = types.get(t.type_name, 0) + 1
    info = {
        "file": str(g.path), "version": g.version, "alignment": g.alignment,
        "data_offset": g.data_offset, "file_bytes": int(g.data.size),
        "metadata": {k: _summarize(v, args.max_array) for k, v in g.metadata.items()},
        "tensor_types": types,
        "tensors": [{"name": t.name, "type": t.type_name, "dims_ggml": list(t.dims),
                     "shape_row_major": list(t.shape), "offset": t.offset}
                    for t in g.tensors.values()],
    }
    print(json.dumps(info, indent=1, ensure_ascii=False))
    return 0


def _load(args: argparse.Namespace) -> Llama:
    t0 = time.perf_counter()
    model = Llama(GGUFFile(args.gguf), np.float64 if args.f64 else np.float32)
    print(f"loaded {args.gguf} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return model


def _windows(ids: I64Array, window: int, n: int | None, stride: int | None = None) -> list[I64Array]:
    """Window i is ids[i*stride : i*stride + window]; stride defaults to window."""
    if window < 2:
        raise SystemExit("--window must be at least 2")
    step = window if stride is None else stride
    if step < 1 or step > window:
        raise SystemExit(f"--stride {step}, expected 1..{window}")
    avail = (ids.size - window) // step + 1 if ids.size >= window else 0
    if n is None:
        n = avail
    if n < 1 or n > avail:
        raise SystemExit(f"need {n} windows of {window} ids, the file has {ids.size} ids "
                         f"({avail} full windows)")
    return [ids[i * step:i * step + window] for i in range(n)]


def cmd_dequant(args: argparse.Namespace) -> int:
    f = GGUFFile(args.gguf)
    values = f.tensor(args.tensor)
    with open(args.out, "wb") as out:
        out.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return 0


def cmd_logits(args: argparse.Namespace) -> int:
    ids = read_ids(args.tokens)
    wins = _windows(ids, args.window, args.windows)
    model = _load(args)
    t0 = time.perf_counter()
    with open(args.out, "wb") as f:
        for w in wins:
            f.write(model.logits(w).astype("<f4").tobytes())
    dt = time.perf_counter() - t0
    print(f"wrote {len(wins)} x {args.window} x {model.cfg.vocab} logits to {args.out} "
          f"in {dt:.1f} s", file=sys.stderr)
    return 0


def cmd_ppl(args: argparse.Namespace) -> int:
    ids = read_ids(args.tokens)
    wins = _windows(ids, args.window, args.windows, args.stride)
    model = _load(args)
    t0 = time.perf_counter()
    nll, count = 0.0, 0
    for w in wins:
        lp = log_softmax64(model.logits(w))
        nll -= float(lp[np.arange(w.size - 1), w[1:]].sum())
        count += w.size - 1
    mean = nll / count
    res = {"windows": len(wins), "window": args.window, "tokens_predicted": count,
           "mean_nll": mean, "ppl": math.exp(mean), "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"windows {len(wins)} x {args.window}: {count} targets, mean NLL {mean:.6f} nats, "
              f"ppl {math.exp(mean):.4f} ({res['seconds']:.1f} s)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    prompt = [int(s) for s in args.prompt_ids.replace(" ", "").split(",") if s]
    if not prompt:
        raise SystemExit("--prompt-ids is empty")
    model = _load(args)
    stop: int | None = None
    if args.stop_at_eos:
        stop = GGUFFile(args.gguf).meta_int("tokenizer.ggml.eos_token_id")
    print(json.dumps(model.generate(prompt, args.tokens, stop)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--gguf", required=True, help="the GGUF model file")
        sp.add_argument("--f64", action="store_true",
                        help="run the matrix products in float64 (default float32)")

    s = sub.add_parser("info", help="metadata (long arrays summarized) and tensors as JSON")
    s.add_argument("--gguf", required=True)
    s.add_argument("--max-array", type=int, default=16,
                   help="arrays longer than this are shown as length + first 5 (default 16)")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("dequant", help="one tensor dequantized to float32 (little-endian, row-major)")
    s.add_argument("--gguf", required=True)
    s.add_argument("--tensor", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_dequant)

    s = sub.add_parser(
        "logits", help="float32 logits of consecutive independent windows",
        description="Takes the first N*W ids of --tokens (little-endian u32), runs each "
                    "consecutive window of W ids on its own with positions 0..W-1, and writes "
                    "float32 little-endian logits [N*W, vocab], row t = logits after id t.")
    model_args(s)
    s.add_argument("--tokens", required=True, help="ids, little-endian uint32")
    s.add_argument("--window", type=int, required=True, help="W")
    s.add_argument("--windows", type=int, required=True, help="N")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_logits)

    s = sub.add_parser(
        "ppl", help="perplexity over non-overlapping windows",
        description="Splits the ids into consecutive non-overlapping windows of W ids (the "
                    "first N, default all full windows; a trailing partial window is dropped). "
                    "Each window is run on its own from position 0; the targets counted are "
                    "ids 1..W-1 of each window, each predicted from the ids before it in the "
                    "same window (id 0 of a window is never a target), so N*(W-1) targets. "
                    "Reports mean NLL (nats) and ppl = exp(mean NLL). With --stride S < W the "
                    "windows start every S ids and overlap: W = L+1, S = L scores exactly what "
                    "`logit-train eval --seq-len L` scores.")
    model_args(s)
    s.add_argument("--tokens", required=True, help="ids, little-endian uint32")
    s.add_argument("--window", type=int, required=True, help="W")
    s.add_argument("--windows", type=int, default=None, help="N (default: all full windows)")
    s.add_argument("--stride", type=int, default=None, help="S: ids between window starts (default W)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(fn=cmd_ppl)

    s = sub.add_parser("generate", help="greedy continuation ids as a JSON list")
    model_args(s)
    s.add_argument("--prompt-ids", required=True, help='comma-separated ids, e.g. "1,2,3"')
    s.add_argument("--tokens", type=int, default=20, help="how many ids to generate")
    s.add_argument("--stop-at-eos", action="store_true",
                   help="stop after tokenizer.ggml.eos_token_id (default: always --tokens ids)")
    s.set_defaults(fn=cmd_generate)

    args = p.parse_args(argv)
    try:
        rc: int = args.fn(args)
    except GGUFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
