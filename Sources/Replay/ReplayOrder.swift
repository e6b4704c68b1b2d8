import LogitCore

/// One sequence of a snapshot: shard index (in snapshot order), block, ordinal in the block.
public struct SequenceRef: Sendable, Hashable, Codable {
    public var shard: Int32
    public var block: Int32
    public var ordinal: Int32
    public init(shard: Int32, block: Int32, ordinal: Int32) {
        self.shard = shard
        self.block = block
        self.ordinal = ordinal
    }
}

/// The order of an epoch, a pure function of (snapshot, seed, epoch, window) — normative text in
/// schema/REPLAY_ORDER.md. Only SplitMix64 and integer arithmetic: the same order on every machine.
public enum ReplayOrder {
    /// The seed of the epoch's single SplitMix64 stream.
    public static func streamSeed(seed: UInt64, epoch: Int) -> UInt64 {
        SplitMix64.mix(seed ^ SplitMix64.mix(UInt64(truncatingIfNeeded: epoch) &+ 0x5245_504C_4159_0001))
    }

    /// Explicit Fisher–Yates, high index down to 1.
    static func shuffle<T>(_ a: inout [T], _ range: Range<Int>, _ rng: inout SplitMix64) {
        var i = range.upperBound - 1
        while i > range.lowerBound {
            let j = range.lowerBound + rng.below(i - range.lowerBound + 1)
            a.swapAt(i, j)
            i -= 1
        }
    }

    /// Every sequence of the snapshot once. `shuffle == false`: file order (shards in snapshot
    /// order, blocks and ordinals ascending). Otherwise: shards shuffled, then each shard's blocks
    /// (in the shuffled shard order), then the concatenated sequences in consecutive windows of
    /// `window` sequences, each shuffled on its own — all from one SplitMix64 stream.
    public static func epochOrder(_ snapshot: ReplaySnapshot, seed: UInt64, epoch: Int, window: Int,
                                  shuffle: Bool = true) -> [SequenceRef] {
        var out: [SequenceRef] = []
        out.reserveCapacity(snapshot.sequences)
        var rng = SplitMix64(seed: streamSeed(seed: seed, epoch: epoch))
        var shardOrder = Array(0..<snapshot.shards.count)
        if shuffle { Self.shuffle(&shardOrder, 0..<shardOrder.count, &rng) }
        for s in shardOrder {
            let perBlock = snapshot.shards[s].sequencesPerBlock
            var blockOrder = Array(0..<perBlock.count)
            if shuffle { Self.shuffle(&blockOrder, 0..<blockOrder.count, &rng) }
            for b in blockOrder {
                for o in 0..<perBlock[b] { out.append(SequenceRef(shard: Int32(s), block: Int32(b), ordinal: Int32(o))) }
            }
        }
        if shuffle {
            let w = max(1, window)
            var start = 0
            while start < out.count {
                let end = min(start + w, out.count)
                Self.shuffle(&out, start..<end, &rng)
                start = end
            }
        }
        return out
    }

    /// Sequences per rank: ⌈N/R⌉ when padding (the tail repeats the order from its start),
    /// ⌊N/R⌋ when dropping the remainder.
    public static func shareSize(total: Int, worldSize: Int, remainder: ReplayOptions.Remainder) -> Int {
        switch remainder {
        case .pad: (total + worldSize - 1) / worldSize
        case .drop: total / worldSize
        }
    }

    /// Index into the epoch order of the `k`-th sequence of `rank`'s share: rank r owns the
    /// contiguous slice [r·size, (r+1)·size) of the (padded) order, so each rank reads its own
    /// blocks and decompresses each about once.
    @inlinable public static func globalIndex(_ k: Int, rank: Int, shareSize: Int, total: Int) -> Int {
        (rank * shareSize + k) % total
    }
}
