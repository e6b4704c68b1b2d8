#!/usr/bin/env python3
"""Writes the GGUF fuzz seed: one small tensor of every type the reader dequantizes (random
payloads, sane scales) and metadata of several value types. Generated, not committed, so that no
model-like binary lives in git; `make fuzz` and DequantizeReferenceTests run it. Deterministic."""
import struct
import sys

import numpy as np


def string(x: str) -> bytes:
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def half(x: float) -> bytes:
    return np.float16(x).tobytes()


def main(out: str) -> None:
    rng = np.random.default_rng(7)

    def raw(n: int) -> bytes:
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    meta = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("llama.block_count") + struct.pack("<II", 4, 1),
        string("llama.rope.freq_base") + struct.pack("<I", 6) + struct.pack("<f", 10000.0),
        string("general.flag") + struct.pack("<I", 7) + b"\x01",
        string("general.big") + struct.pack("<I", 10) + struct.pack("<Q", 1 << 40),
        string("general.ratio") + struct.pack("<I", 12) + struct.pack("<d", 0.5),
        string("tokenizer.ggml.tokens") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 3)
        + string("a") + string("b") + string("ab"),
        string("tokenizer.ggml.scores") + struct.pack("<I", 9) + struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, -1, -2),
    ]
    # name: (ggml type id, elements per block, block maker)
    types = {
        "f32": (0, 1, lambda: struct.pack("<f", rng.normal())),
        "f16": (1, 1, lambda: half(rng.normal())),
        "bf16": (30, 1, lambda: struct.pack("<f", rng.normal())[2:]),
        "q4_0": (2, 32, lambda: half(0.01) + raw(16)),
        "q4_1": (3, 32, lambda: half(0.01) + half(-0.05) + raw(16)),
        "q5_0": (6, 32, lambda: half(0.01) + raw(20)),
        "q5_1": (7, 32, lambda: half(0.01) + half(-0.05) + raw(20)),
        "q8_0": (8, 32, lambda: half(0.01) + raw(32)),
        "q4_K": (12, 256, lambda: half(0.01) + half(0.002) + raw(140)),
        "q5_K": (13, 256, lambda: half(0.01) + half(0.002) + raw(172)),
        "q6_K": (14, 256, lambda: raw(208) + half(0.01)),
    }
    infos, data = b"", b""
    for name, (type_id, elements, block) in types.items():
        rows, blocks = 2, (2 if elements > 1 else 64)
        payload = b"".join(block() for _ in range(rows * blocks))
        data += b"\0" * (-len(data) % 32)
        infos += string(name) + struct.pack("<I", 2) + struct.pack("<QQ", elements * blocks, rows) \
            + struct.pack("<I", type_id) + struct.pack("<Q", len(data))
        data += payload
    header = b"GGUF" + struct.pack("<IQQ", 3, len(types), len(meta)) + b"".join(meta) + infos
    header += b"\0" * (-len(header) % 32)
    with open(out, "wb") as f:
        f.write(header + data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_gguf_seed.py OUT.gguf")
    main(sys.argv[1])
