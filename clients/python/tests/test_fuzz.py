"""Random damage never escapes as anything but the package's own error, and never hangs:
byte flips, truncations and overwritten fields of a real shard file; and, past the checksums,
mutated raw block payloads and block counts fed straight to the decoder."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import time
import unittest

import numpy as np

from support import TempDir, sealed_shards, teach

from logitd.cache import CacheError, Shard
from logitd.cache.block import BlockDecoder
from logitd.cache.codecs import decompress

ROUNDS = int(os.environ.get("LOGITD_FUZZ_ROUNDS", "300"))


class Fuzz(TempDir):
    def setUp(self) -> None:
        super().setUp()
        cache = os.path.join(self.tmp, "c")
        teach(cache, "syn", positions=600, vocab=70000, seq_len=64)   # 3-byte ids, several width classes
        self.original = sealed_shards(cache)[0]
        with open(self.original, "rb") as f:
            self.data = f.read()
        self.path = os.path.join(self.tmp, "victim.lgs")

    def survive(self, what: str, action: object) -> None:
        started = time.monotonic()
        try:
            action()  # type: ignore[operator]
        except CacheError:
            pass
        except Exception as e:  # noqa: BLE001 - the point of the test
            self.fail(f"{what}: {type(e).__name__} escaped: {e}")
        self.assertLess(time.monotonic() - started, 5, f"{what}: took too long")

    def read_sealed(self) -> None:
        with Shard.sealed(self.path) as s:
            for i in range(len(s.blocks)):
                s.block(i)

    def mutate(self, rng: random.Random) -> bytes:
        data = bytearray(self.data)
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[rng.randrange(len(data)):]
        elif kind == 2:
            at = rng.randrange(len(data))
            data[at:at + rng.randint(1, 256)] = bytes(min(256, len(data) - at))
        else:
            at = rng.randrange(max(1, len(data) - 8)) & ~7
            data[at:at + 8] = rng.getrandbits(64).to_bytes(8, "little")
        return bytes(data)

    def test_file_mutations(self) -> None:
        rng = random.Random(20261205)
        for round_ in range(ROUNDS):
            with open(self.path, "wb") as f:
                f.write(self.mutate(rng))
            self.survive(f"file round {round_}", self.read_sealed)

    def test_open_prefix_walks(self) -> None:
        rng = random.Random(7)
        for round_ in range(ROUNDS // 3):
            with open(self.path, "wb") as f:
                f.write(self.mutate(rng) if round_ % 2 else self.data)
            committed = rng.randrange(0, len(self.data) + 128)
            committed -= committed % (64 if round_ % 3 else 1)

            def read_open() -> None:
                with Shard.open_prefix(self.path, committed) as s:
                    for i in range(len(s.blocks)):
                        s.block(i)
            self.survive(f"open-prefix round {round_} (committed {committed})", read_open)

    def test_decoder_past_the_checksum(self) -> None:
        shutil.copyfile(self.original, self.path)
        with Shard.sealed(self.path) as s:
            prov = s.provenance
            cases = []
            for info in s.blocks:
                stored = memoryview(self.data)[info.offset + 64:info.offset + 64 + info.stored_bytes]
                cases.append((info, decompress(stored, info.codec, info.raw_bytes, self.path, 0, info.offset)))
        decoder = BlockDecoder(prov, self.path)
        rng = random.Random(99)
        for round_ in range(ROUNDS * 2):
            info, raw = cases[rng.randrange(len(cases))]
            data = bytearray(raw)
            for _ in range(rng.choice([1, 1, 2, 8])):
                at = rng.randrange(min(len(data), 15 * info.sequence_count + 64)) if rng.random() < 0.4 \
                    else rng.randrange(len(data))
                data[at] = rng.randrange(256)
            if rng.random() < 0.2:
                del data[rng.randrange(len(data)):]
            if rng.random() < 0.2:
                info = dataclasses.replace(info, raw_bytes=len(data), positions=max(1, info.positions + rng.randint(-3, 3)),
                                           candidates=max(1, info.candidates + rng.randint(-3, 3)))
            array = np.frombuffer(bytes(data), dtype=np.uint8)
            self.survive(f"decoder round {round_}", lambda: decoder.decode(array, info, 0))

    def test_unmutated_decoder_input_still_decodes(self) -> None:
        with Shard.sealed(self.original) as s:
            total = sum(len(s.block(i).ids) for i in range(len(s.blocks)))
        self.assertGreater(total, 0)


if __name__ == "__main__":
    unittest.main()
