import LogitCore
import Losses

/// Pretraining batches: `batchSize` windows of `length` + 1 tokens drawn uniformly from a token
/// stream. The starts of step s are a pure function of (seed, s), so a resumed run needs only
/// its step counter to see exactly the batches it would have seen.
public struct WindowSampler: Sendable {
    public let tokenCount: Int
    public let length: Int
    public let batchSize: Int
    public let seed: UInt64

    public init(tokenCount: Int, length: Int, batchSize: Int, seed: UInt64) throws {
        guard length >= 2 else { throw TrainingError.invalid("sequence length \(length), expected ≥ 2") }
        guard batchSize >= 1 else { throw TrainingError.invalid("batch size \(batchSize), expected ≥ 1") }
        guard tokenCount > length + 1 else {
            throw TrainingError.invalid("the corpus has \(tokenCount) tokens, fewer than one window of \(length + 1)")
        }
        self.tokenCount = tokenCount
        self.length = length
        self.batchSize = batchSize
        self.seed = seed
    }

    /// Window starts for 1-based step `step`.
    public func starts(step: Int) -> [Int] {
        let span = UInt64(tokenCount - length - 1)
        return (0..<batchSize).map { r in
            Int(SplitMix64.mix(seed &+ SplitMix64.mix(UInt64(step) &* 0x9E37_79B9 &+ UInt64(r))) % (span + 1))
        }
    }
}

/// One batch of token windows in the layout the model and the losses take: rows packed back to
/// back, every position supervised with the next token, no candidate sets (full softmax only).
public final class TokenBatch {
    public private(set) var inputs: [UInt32] = []
    public private(set) var targets: [UInt32] = []
    public private(set) var mask: [UInt8] = []
    public private(set) var rowOffsets: [Int32] = [0]
    private var emptySets: [UInt32] = [0]

    public init() {}

    public var positions: Int { inputs.count }

    /// Fills the batch with windows `tokens[s ..< s + length]` predicting `tokens[s+1 ..< s+length+1]`.
    public func fill(tokens: [UInt32], starts: [Int], length: Int) {
        inputs.removeAll(keepingCapacity: true)
        targets.removeAll(keepingCapacity: true)
        rowOffsets.removeAll(keepingCapacity: true)
        rowOffsets.append(0)
        for s in starts {
            let n = min(length, tokens.count - 1 - s)
            inputs.append(contentsOf: tokens[s..<(s + n)])
            targets.append(contentsOf: tokens[(s + 1)..<(s + n + 1)])
            rowOffsets.append(Int32(inputs.count))
        }
        if mask.count != inputs.count { mask = [UInt8](repeating: 1, count: inputs.count) }
        if emptySets.count != inputs.count + 1 { emptySets = [UInt32](repeating: 0, count: inputs.count + 1) }
    }

    public func withCandidateBatch<R>(_ body: (CandidateBatch) throws -> R) rethrows -> R {
        try emptySets.withUnsafeBufferPointer { so in
            try targets.withUnsafeBufferPointer { g in
                try mask.withUnsafeBufferPointer { m in
                    try body(CandidateBatch(setOffsets: so, ids: UnsafeBufferPointer(start: nil, count: 0),
                                            logprobs: UnsafeBufferPointer(start: nil, count: 0), gold: g, mask: m))
                }
            }
        }
    }
}
