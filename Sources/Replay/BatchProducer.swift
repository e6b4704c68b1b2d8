import LogitCore
import ShardFormat

/// Builds the batches of one rank's share of one epoch, in order, on the calling thread. The
/// prefetcher runs one of these on its own thread; tests and the file-order benchmark can drive
/// it directly.
///
/// Decompression: a window of the shuffled order touches a few consecutive (shuffled) blocks, so
/// each touched block is decoded whole, once, into a reused array of records, kept while the
/// window is current and one window longer (a block can straddle two windows), then recycled.
final class BatchProducer {
    let readers: [ShardReader]
    let order: [SequenceRef]
    let options: ReplayOptions
    let shareSize: Int
    var state: ReplayState

    private var current: [Int64: [SequenceRecord]] = [:]
    private var previous: [Int64: [SequenceRecord]] = [:]
    private var pool: [[SequenceRecord]] = []
    private var currentWindow = -1

    init(readers: [ShardReader], order: [SequenceRef], options: ReplayOptions, state: ReplayState) {
        self.readers = readers
        self.order = order
        self.options = options
        self.shareSize = ReplayOrder.shareSize(total: order.count, worldSize: options.worldSize, remainder: options.remainder)
        self.state = state
    }

    var finished: Bool { state.sequencesConsumed >= shareSize }

    /// Fills `batch` with the next chunks; returns false (batch empty) at the end of the share.
    func fill(_ batch: ReplayBatch) throws(ReplayError) -> Bool {
        batch.reset()
        let maxLen = options.maxSequenceLength
        while state.sequencesConsumed < shareSize {
            let g = ReplayOrder.globalIndex(state.sequencesConsumed, rank: options.rank, shareSize: shareSize, total: order.count)
            let ref = order[g]
            let window = g / options.window
            let (key, index) = try locate(ref, window: window)
            // A struct copy of the record only retains its arrays.
            let record = current[key]![index]
            let p = record.positions
            let chunks = (p + maxLen - 1) / maxLen
            guard state.chunksConsumed < chunks else {
                throw .stateMismatch("sequence \(state.sequencesConsumed) of the share has \(chunks) chunks, state says \(state.chunksConsumed) consumed")
            }
            var done = false
            while state.chunksConsumed < chunks {
                let start = state.chunksConsumed * maxLen, end = min(start + maxLen, p)
                if batch.positions + (end - start) > options.maxTokens { done = true; break }
                batch.appendChunk(record, start: start, end: end, source: ref)
                state.chunksConsumed += 1
            }
            if done { break }
            state.sequencesConsumed += 1
            state.chunksConsumed = 0
        }
        batch.stateAfter = state
        return batch.positions > 0
    }

    /// Decodes (or finds) the block holding `ref`; returns its cache key and the record index.
    private func locate(_ ref: SequenceRef, window: Int) throws(ReplayError) -> (Int64, Int) {
        if window != currentWindow {
            for (_, records) in previous { pool.append(records) }
            previous = current
            current = [:]
            currentWindow = window
        }
        let key = Int64(ref.shard) << 32 | Int64(ref.block)
        if current[key] == nil {
            if let kept = previous.removeValue(forKey: key) {
                current[key] = kept
            } else {
                var records = pool.popLast() ?? []
                do { try readers[Int(ref.shard)].decodeBlock(Int(ref.block), into: &records) } catch {
                    throw .corrupt(error.description)
                }
                current[key] = records
            }
        }
        let index = Int(ref.ordinal)
        guard index < current[key]!.count else {
            throw .corrupt("\(readers[Int(ref.shard)].path) block \(ref.block) has \(current[key]!.count) sequences, snapshot expects ordinal \(ref.ordinal)")
        }
        return (key, index)
    }
}
