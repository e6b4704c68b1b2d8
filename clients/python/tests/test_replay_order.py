"""logitd.replay (numpy only, no torch): the order of schema/REPLAY_ORDER.md against the order
pinned by Tests/ReplayTests/ReplayDatasetTests.swift, the PRNG, shares, the resume state, and the
tail loss's negative draw. (test_torch_parity.py compares with the Swift loader on a real cache.)"""

from __future__ import annotations

import json
import unittest
import uuid

import support  # noqa: F401

from logitd.replay import (ReplayError, ReplayOptions, ReplayState, Snapshot, SnapshotShard, SplitMix64, below,
                           draw_negatives, epoch_order, global_index, mix, share_size, shuffle, stream_seed)


def pinned_snapshot() -> Snapshot:
    """The synthetic snapshot of ReplayDatasetTests.testOrderIsPinnedAcrossMachines."""
    return Snapshot(tuple(SnapshotShard("d", uuid.UUID(bytes=bytes([s]) + bytes(15)), s + 1, s * 77, (3, 2, 4), 90)
                          for s in range(3)))


class PinnedOrder(unittest.TestCase):
    # Copied from Tests/ReplayTests/ReplayDatasetTests.swift.
    pinned_hash = "df306317213402b0"
    pinned_order = ("2.1.0 2.2.0 2.2.2 2.2.1 2.1.1 0.1.0 2.0.0 2.2.3 2.0.2 2.0.1 0.2.0 0.0.1 0.0.0 0.1.1 0.0.2 0.2.2 "
                    "1.1.1 0.2.1 1.1.0 0.2.3 1.2.0 1.2.2 1.2.3 1.0.0 1.2.1 1.0.2 1.0.1")

    def test_order_and_hash_equal_the_swift_pin(self) -> None:
        snapshot = pinned_snapshot()
        self.assertEqual(snapshot.hash_hex, self.pinned_hash)
        order = epoch_order(snapshot, seed=7, epoch=1, window=5)
        self.assertEqual(" ".join(f"{s}.{b}.{o}" for s, b, o in order.tolist()), self.pinned_order)

    def test_order_properties(self) -> None:
        snapshot = pinned_snapshot()
        a = epoch_order(snapshot, 42, 3, 4).tolist()
        self.assertEqual(a, epoch_order(snapshot, 42, 3, 4).tolist())
        self.assertEqual(sorted(map(tuple, a)), sorted((s, b, o) for s in range(3) for b, n in enumerate((3, 2, 4))
                                                       for o in range(n)))
        self.assertNotEqual(a, epoch_order(snapshot, 42, 4, 4).tolist(), "epochs differ")
        self.assertNotEqual(a, epoch_order(snapshot, 43, 3, 4).tolist(), "seeds differ")
        plain = epoch_order(snapshot, 42, 3, 4, shuffle_=False).tolist()
        self.assertEqual(plain, sorted(plain))
        # Window 1: no shuffle inside windows, so each block's sequences stay in ordinal order.
        w1 = epoch_order(snapshot, 42, 3, 1).tolist()
        for i in range(1, len(w1)):
            if w1[i][:2] == w1[i - 1][:2]:
                self.assertEqual(w1[i][2], w1[i - 1][2] + 1)


class Generator(unittest.TestCase):
    def test_splitmix64_reference_values(self) -> None:
        # SplitMix64 with state 0: the published first outputs of Vigna's splitmix64.c.
        rng = SplitMix64(0)
        self.assertEqual([rng.next() for _ in range(3)],
                         [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F])
        self.assertEqual(mix(0), 0)
        self.assertLess(stream_seed(2**64 - 1, -1), 2**64)

    def test_below_is_lemire_multiply_high(self) -> None:
        rng, copy = SplitMix64(99), SplitMix64(99)
        for bound in (1, 2, 3, 10, 2**31, 2**63):
            v = below(bound, rng)
            self.assertEqual(v, (copy.next() * bound) >> 64)
            self.assertTrue(0 <= v < bound)

    def test_shuffle_is_fisher_yates_high_to_low(self) -> None:
        a = list(range(10))
        rng = SplitMix64(5)
        shuffle(a, 2, 8, rng)
        self.assertEqual(a[:2] + a[8:], [0, 1, 8, 9])
        self.assertEqual(sorted(a[2:8]), list(range(2, 8)))
        b = list(range(10))
        rng = SplitMix64(5)
        for i in range(7, 2, -1):
            j = 2 + below(i - 2 + 1, rng)
            b[i], b[j] = b[j], b[i]
        self.assertEqual(a, b)


class SharesAndState(unittest.TestCase):
    def test_shares(self) -> None:
        self.assertEqual(share_size(62, 4, "pad"), 16)
        self.assertEqual(share_size(62, 4, "drop"), 15)
        self.assertEqual([global_index(k, 3, 16, 62) for k in range(14, 16)], [0, 1], "padding repeats the start")
        with self.assertRaises(ReplayError):
            share_size(3, 2, "wrap")  # type: ignore[arg-type]
        for bad in (ReplayOptions(rank=2, world_size=2), ReplayOptions(window=0),
                    ReplayOptions(max_tokens=10, max_sequence_length=11), ReplayOptions(seed=-1)):
            with self.assertRaises(ReplayError):
                bad.validate()

    def test_state_uses_the_swift_json_keys(self) -> None:
        swift = ('{"snapshotHash":"df306317213402b0","seed":18446744073709551615,"epoch":2,"sequencesConsumed":5,'
                 '"chunksConsumed":1,"rank":1,"worldSize":3,"maxSequenceLength":2048}')
        state = ReplayState.from_dict(json.loads(swift))
        self.assertEqual(state.seed, 2**64 - 1)
        self.assertEqual(state.to_dict(), json.loads(swift))
        with self.assertRaises(ReplayError):
            ReplayState.from_dict({"seed": 1})


class NegativeDraw(unittest.TestCase):
    def test_draws_are_distinct_sorted_and_reproducible(self) -> None:
        for count, vocab in [(1, 1), (8, 40), (40, 40), (256, 49152), (1000, 151936)]:
            ids = draw_negatives(count, vocab, 3, 7)
            self.assertEqual(len(ids), count)
            self.assertEqual(ids, sorted(set(ids)))
            self.assertTrue(0 <= ids[0] and ids[-1] < vocab)
            self.assertEqual(ids, draw_negatives(count, vocab, 3, 7))
        self.assertEqual(draw_negatives(40, 40, 1, 2), list(range(40)))
        self.assertNotEqual(draw_negatives(8, 1000, 3, 7), draw_negatives(8, 1000, 3, 8), "draws differ by step")
        self.assertNotEqual(draw_negatives(8, 1000, 3, 7), draw_negatives(8, 1000, 4, 7), "and by seed")
        with self.assertRaises(ValueError):
            draw_negatives(41, 40, 0, 0)

    def test_draw_is_roughly_uniform(self) -> None:
        counts = [0] * 20
        for draw in range(2000):
            for i in draw_negatives(5, 20, 11, draw):
                counts[i] += 1
        self.assertLess(max(counts) - min(counts), 150, counts)   # mean 500 per id


if __name__ == "__main__":
    unittest.main()
