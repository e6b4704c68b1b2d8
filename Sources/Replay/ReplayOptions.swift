/// How a training job replays a snapshot: order, data-parallel share, batch shape, prefetch.
public struct ReplayOptions: Sendable, Equatable {
    /// What to do when the sequence count is not a multiple of `worldSize`.
    public enum Remainder: String, Sendable, Codable {
        /// Every rank gets ⌈N/R⌉ sequences; the last ranks' tails repeat the epoch order from its start.
        case pad
        /// Every rank gets ⌊N/R⌋ sequences; the last N mod R of the order are skipped this epoch.
        case drop
    }

    public var seed: UInt64 = 0
    /// false: file order (benchmarks, evaluation). true: the shuffled order of REPLAY_ORDER.md.
    public var shuffle = true
    /// Sequences per shuffle window. Larger mixes more; memory is about two windows of decoded
    /// blocks (512 sequences of 2,048 positions at K ≈ 30 is ~250 MB per window).
    public var window = 512
    public var rank = 0
    public var worldSize = 1
    public var remainder = Remainder.pad
    /// Positions (input tokens) per batch, at most; a batch is cut before a chunk that would exceed it.
    public var maxTokens = 8192
    /// Positions per row, at most: longer sequences are cut into chunks of this many positions.
    public var maxSequenceLength = 2048
    /// Batches the background producer keeps ready.
    public var prefetchDepth = 4

    public init(seed: UInt64 = 0, shuffle: Bool = true, window: Int = 512, rank: Int = 0, worldSize: Int = 1,
                remainder: Remainder = .pad, maxTokens: Int = 8192, maxSequenceLength: Int = 2048, prefetchDepth: Int = 4) {
        self.seed = seed
        self.shuffle = shuffle
        self.window = window
        self.rank = rank
        self.worldSize = worldSize
        self.remainder = remainder
        self.maxTokens = maxTokens
        self.maxSequenceLength = maxSequenceLength
        self.prefetchDepth = prefetchDepth
    }

    func validate() throws(ReplayError) {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw .invalidOptions("rank \(rank) of world size \(worldSize), expected 0 ≤ rank < worldSize")
        }
        guard window >= 1 else { throw .invalidOptions("window \(window), expected ≥ 1") }
        guard maxSequenceLength >= 1 else { throw .invalidOptions("maxSequenceLength \(maxSequenceLength), expected ≥ 1") }
        guard maxTokens >= maxSequenceLength else {
            throw .invalidOptions("maxTokens \(maxTokens) must be ≥ maxSequenceLength \(maxSequenceLength) (a chunk must fit a batch)")
        }
        guard maxTokens <= 1 << 28 else { throw .invalidOptions("maxTokens \(maxTokens), expected ≤ 2^28") }
        guard prefetchDepth >= 1, prefetchDepth <= 64 else { throw .invalidOptions("prefetchDepth \(prefetchDepth), expected 1…64") }
    }
}

/// Where a rank is in an epoch: enough to resume exactly. Small and Codable so a trainer can
/// store it beside its checkpoint. `snapshotHash` is hex so that JSON readers in any language
/// keep all 64 bits.
public struct ReplayState: Sendable, Codable, Equatable {
    public var snapshotHash: String
    public var seed: UInt64
    public var epoch: Int
    /// Sequences of this rank's share fully delivered.
    public var sequencesConsumed: Int
    /// Chunks of the next sequence already delivered (a long sequence can straddle batches).
    public var chunksConsumed: Int
    public var rank: Int
    public var worldSize: Int
    /// Chunking depends on it, so a resume must use the same value.
    public var maxSequenceLength: Int

    public init(snapshotHash: String, seed: UInt64, epoch: Int, sequencesConsumed: Int, chunksConsumed: Int = 0,
                rank: Int, worldSize: Int, maxSequenceLength: Int) {
        self.snapshotHash = snapshotHash
        self.seed = seed
        self.epoch = epoch
        self.sequencesConsumed = sequencesConsumed
        self.chunksConsumed = chunksConsumed
        self.rank = rank
        self.worldSize = worldSize
        self.maxSequenceLength = maxSequenceLength
    }
}
