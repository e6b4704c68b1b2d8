import Foundation
import LogitCore
import Losses
import Training

/// The candidate sets of the benchmarks: `SyntheticTeacher` rows (V = 151,936 by default),
/// selected with `TopKSelector`, rows generated in parallel chunks of 64.
enum SyntheticSets {
    static func select(teacher: SyntheticTeacher, policy: SelectionPolicy, positions: Int) throws -> ([SelectedSet], [UInt32]) {
        let selector = try TopKSelector(policy: policy)
        let vocab = teacher.vocabSize
        let chunk = 64
        let rows = UnsafeMutableBufferPointer<Float>.allocate(capacity: chunk * vocab)
        defer { rows.deallocate() }
        var sets: [SelectedSet] = []
        var golds: [UInt32] = []
        var start = 0
        while start < positions {
            let n = min(chunk, positions - start)
            let g = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: n)
            defer { g.deallocate() }
            // Each iteration writes its own row and gold slot: disjoint, so no race.
            nonisolated(unsafe) let base = rows.baseAddress!, gp = g.baseAddress!
            let first = start
            DispatchQueue.concurrentPerform(iterations: n) { i in
                gp[i] = teacher.fillRow(position: first + i, into: UnsafeMutableBufferPointer(start: base + i * vocab, count: vocab))
            }
            let chunkGolds = Array(g)
            sets += try selector.selectBatch(rows: UnsafeBufferPointer(start: base, count: n * vocab), vocab: vocab, golds: chunkGolds)
            golds += chunkGolds
            start += n
        }
        return (sets, golds)
    }

    /// The sets in flat CSR form with ids folded into a smaller vocabulary by `id mod vocab` (a
    /// folded duplicate keeps its first, more probable, occurrence; the gold stays in its set):
    /// how the benchmarks give a student of vocabulary V realistic teacher sets.
    static func folded(positions: Int, vocab: Int) throws -> (offsets: [UInt32], ids: [UInt32], logprobs: [Float], golds: [UInt32]) {
        let (selected, golds) = try select(teacher: SyntheticTeacher(), policy: .default, positions: positions)
        var offsets: [UInt32] = [0], ids: [UInt32] = [], lps: [Float] = [], gold: [UInt32] = []
        var seen = [Bool](repeating: false, count: vocab)
        for (set, g) in zip(selected, golds) {
            let first = ids.count
            for (id, lp) in zip(set.ids, set.logprobs) {
                let v = Int(id) % vocab
                if seen[v] { continue }
                seen[v] = true
                ids.append(UInt32(v))
                lps.append(lp)
            }
            for j in first..<ids.count { seen[Int(ids[j])] = false }
            offsets.append(UInt32(ids.count))
            gold.append(g % UInt32(vocab))
        }
        return (offsets, ids, lps, gold)
    }
}

/// One batch of folded synthetic sets and the token rows that read like them (each input is the
/// previous target), ready for `Trainer.step`: what `train` and `model` time.
struct SyntheticTrainBatch {
    let setOffsets: [UInt32], ids: [UInt32], logprobs: [Float], golds: [UInt32]
    let inputs: [UInt32], rowOffsets: [Int32], mask: [UInt8]
    var meanK: Double { Double(ids.count) / Double(inputs.count) }

    init(rows: Int, length: Int, vocab: Int) throws {
        let n = rows * length
        (setOffsets, ids, logprobs, golds) = try SyntheticSets.folded(positions: n, vocab: vocab)
        var inputs = [UInt32](repeating: 0, count: n)
        for i in 1..<n { inputs[i] = golds[i - 1] }
        self.inputs = inputs
        rowOffsets = (0...rows).map { Int32($0 * length) }
        mask = [UInt8](repeating: 1, count: n)
    }

    func step(_ trainer: Trainer) throws -> Trainer.Result {
        try setOffsets.withUnsafeBufferPointer { so in
            try ids.withUnsafeBufferPointer { id in
                try logprobs.withUnsafeBufferPointer { lp in
                    try golds.withUnsafeBufferPointer { g in
                        try mask.withUnsafeBufferPointer { m in
                            try trainer.step(inputs: inputs, rowOffsets: rowOffsets,
                                             batch: CandidateBatch(setOffsets: so, ids: id, logprobs: lp, gold: g, mask: m))
                        }
                    }
                }
            }
        }
    }
}
