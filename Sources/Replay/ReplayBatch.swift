import LogitCore
import Losses

/// One training batch, packed: rows are sequence chunks laid end to end without padding
/// (row r = positions `rowOffsets[r] ..< rowOffsets[r+1]`), and everything per position is flat
/// over the batch's P positions:
///
/// - `inputs[p]` = x[t], `targets[p]` = x[t+1] (the gold id), `mask[p]` ∈ {0, 1} — positions
///   with mask 0 are delivered too, with mask 0;
/// - candidate set of position p: `ids[setOffsets[p] ..< setOffsets[p+1]]` with `logprobs`
///   (teacher full-vocabulary log-probs), ready for `CandidateBatch`.
///
/// A chunk keeps each position's set with its target: cutting a sequence of L tokens (L − 1
/// positions) at position c gives rows [0, c) and [c, L − 1), the second starting with input x[c].
/// Buffers are reused from batch to batch (no per-batch allocation once grown).
public final class ReplayBatch: @unchecked Sendable {
    public internal(set) var rowOffsets: [Int32] = [0]
    public internal(set) var inputs: [UInt32] = []
    public internal(set) var targets: [UInt32] = []
    public internal(set) var mask: [UInt8] = []
    public internal(set) var setOffsets: [UInt32] = [0]
    public internal(set) var ids: [UInt32] = []
    public internal(set) var logprobs: [Float] = []
    /// Per row: the sequence it comes from and the first position of the chunk in that sequence.
    public internal(set) var rowSources: [(sequence: SequenceRef, start: Int)] = []
    /// The state to store to resume right after this batch.
    public internal(set) var stateAfter: ReplayState

    init(state: ReplayState) { stateAfter = state }

    public var rows: Int { rowOffsets.count - 1 }
    public var positions: Int { inputs.count }

    func reset() {
        rowOffsets.removeAll(keepingCapacity: true); rowOffsets.append(0)
        inputs.removeAll(keepingCapacity: true)
        targets.removeAll(keepingCapacity: true)
        mask.removeAll(keepingCapacity: true)
        setOffsets.removeAll(keepingCapacity: true); setOffsets.append(0)
        ids.removeAll(keepingCapacity: true)
        logprobs.removeAll(keepingCapacity: true)
        rowSources.removeAll(keepingCapacity: true)
    }

    /// Appends positions [start, end) of `record` as one row.
    func appendChunk(_ record: SequenceRecord, start: Int, end: Int, source: SequenceRef) {
        let base = UInt32(ids.count)
        let lo = Int(record.setOffsets[start]), hi = Int(record.setOffsets[end])
        inputs.append(contentsOf: record.tokens[start..<end])
        targets.append(contentsOf: record.tokens[(start + 1)..<(end + 1)])
        if let m = record.lossMask { mask.append(contentsOf: m[start..<end]) } else {
            mask.append(contentsOf: repeatElement(1, count: end - start))
        }
        let first = record.setOffsets[start]
        for t in (start + 1)...end { setOffsets.append(base &+ (record.setOffsets[t] &- first)) }
        ids.append(contentsOf: record.ids[lo..<hi])
        logprobs.append(contentsOf: record.logprobs[lo..<hi])
        rowOffsets.append(Int32(inputs.count))
        rowSources.append((source, start))
    }

    /// The batch as the losses take it (valid inside `body` only).
    public func withCandidateBatch<R>(_ body: (CandidateBatch) throws -> R) rethrows -> R {
        try setOffsets.withUnsafeBufferPointer { so in
            try ids.withUnsafeBufferPointer { id in
                try logprobs.withUnsafeBufferPointer { lp in
                    try targets.withUnsafeBufferPointer { g in
                        try mask.withUnsafeBufferPointer { m in
                            try body(CandidateBatch(setOffsets: so, ids: id, logprobs: lp, gold: g, mask: m))
                        }
                    }
                }
            }
        }
    }
}
