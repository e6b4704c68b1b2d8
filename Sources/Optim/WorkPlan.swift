import Dispatch

/// How one optimizer step is cut into parallel work, fixed at optimizer construction.
///
/// Each tensor is split into chunks of at most `chunkElements`; consecutive chunks are packed
/// into work items of roughly `chunkElements` elements so hundreds of small bias/norm vectors
/// do not cost one dispatch each. Reductions write one partial per chunk and are then summed in
/// chunk order, so results are bit-identical whatever the thread count or scheduling — which
/// the bit-identical resume guarantee relies on.
struct WorkPlan: Sendable {
    struct Chunk: Sendable {
        var tensor: Int
        var lower: Int
        var upper: Int
        var count: Int { upper - lower }
    }

    /// 16 Ki floats = 64 KiB per buffer: four buffers of a chunk stay in L2 while a worker
    /// streams through them, and a 10M-parameter step has ~600 items to balance on.
    static let defaultChunkElements = 16 * 1024
    /// Below this many elements a step runs on the calling thread: dispatch would cost more.
    static let serialThreshold = 64 * 1024

    let chunks: [Chunk]
    /// Ranges of `chunks` handled by one work item.
    let items: [Range<Int>]
    /// Ranges of `chunks` belonging to each tensor.
    let chunksOfTensor: [Range<Int>]
    let totalElements: Int

    init(tensorCounts: [Int], chunkElements: Int = WorkPlan.defaultChunkElements) {
        var chunks: [Chunk] = []
        var ofTensor: [Range<Int>] = []
        for (t, count) in tensorCounts.enumerated() {
            let first = chunks.count
            var lower = 0
            while lower < count {
                let upper = min(count, lower + chunkElements)
                chunks.append(Chunk(tensor: t, lower: lower, upper: upper))
                lower = upper
            }
            ofTensor.append(first..<chunks.count)
        }
        var items: [Range<Int>] = []
        var start = 0
        var size = 0
        for (i, chunk) in chunks.enumerated() {
            size += chunk.count
            if size >= chunkElements {
                items.append(start..<(i + 1))
                start = i + 1
                size = 0
            }
        }
        if start < chunks.count { items.append(start..<chunks.count) }
        self.chunks = chunks
        self.items = items
        self.chunksOfTensor = ofTensor
        self.totalElements = tensorCounts.reduce(0, +)
    }

    /// Calls `body(chunkIndex)` once for every chunk, in parallel across work items when the
    /// step is large enough. `body` must only write memory owned by its chunk.
    func forEachChunk(_ body: @Sendable (Int) -> Void) {
        if totalElements < WorkPlan.serialThreshold || items.count == 1 {
            for c in chunks.indices { body(c) }
            return
        }
        let items = self.items
        DispatchQueue.concurrentPerform(iterations: items.count) { i in
            for c in items[i] { body(c) }
        }
    }
}
