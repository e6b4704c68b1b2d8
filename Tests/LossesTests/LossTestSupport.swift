import LogitCore
import XCTest
@testable import Losses

/// Tiny loss problems (V = 13, d = 5, N = 4 by default) and a runner, shared by the loss tests.
class LossTestCase: XCTestCase {
    struct Problem {
        var n: Int, d: Int, vocab: Int
        var hidden: [Float], weight: [Float]
        var setOffsets: [UInt32], ids: [UInt32], logprobs: [Float], gold: [UInt32], mask: [UInt8]
    }

    /// Random H, W; per position a random subset (or the whole vocabulary) containing the gold.
    func makeProblem(seed: UInt64, n: Int = 4, d: Int = 5, vocab: Int = 13, wholeVocab: Bool = false,
                     mask: [UInt8]? = nil) -> Problem {
        var rng = SplitMix64(seed: seed)
        func unit() -> Float { Float(rng.nextUnit() * 2 - 1) }
        let hidden = (0..<(n * d)).map { _ in unit() }
        let weight = (0..<(vocab * d)).map { _ in 1.5 * unit() }
        var offsets: [UInt32] = [0], ids: [UInt32] = [], lps: [Float] = [], gold: [UInt32] = []
        for _ in 0..<n {
            var perm = (0..<UInt32(vocab)).map { $0 }
            for i in stride(from: vocab - 1, to: 0, by: -1) { perm.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            let k = wholeVocab ? vocab : 2 + Int(rng.next() % 5)
            let set = Array(perm[0..<k])
            let g = set[Int(rng.next() % UInt64(k))]
            gold.append(g)
            ids += set
            // Teacher log-probs: a log-softmax over the vocabulary, restricted to the set.
            lps += set.map { _ in Float(log(0.9 * rng.nextUnit() / Double(k) + 1e-3)) }
            offsets.append(UInt32(ids.count))
        }
        return Problem(n: n, d: d, vocab: vocab, hidden: hidden, weight: weight, setOffsets: offsets, ids: ids,
                       logprobs: lps, gold: gold, mask: mask ?? [UInt8](repeating: 1, count: n))
    }

    func run(_ loss: any LMHeadLoss, _ p: Problem, initialDW: Float = 0,
             negativeDraw: UInt64 = 0) throws -> (LossResult, dH: [Float], dW: [Float]) {
        var dH = [Float](repeating: 7, count: p.n * p.d)
        var dW = [Float](repeating: initialDW, count: p.vocab * p.d)
        let r = try p.hidden.withUnsafeBufferPointer { h in
            try p.weight.withUnsafeBufferPointer { w in
                try p.setOffsets.withUnsafeBufferPointer { so in
                    try p.ids.withUnsafeBufferPointer { id in
                        try p.logprobs.withUnsafeBufferPointer { lp in
                            try p.gold.withUnsafeBufferPointer { g in
                                try p.mask.withUnsafeBufferPointer { m in
                                    try dH.withUnsafeMutableBufferPointer { dh in
                                        try dW.withUnsafeMutableBufferPointer { dw in
                                            try loss.forwardBackward(
                                                hidden: h, n: p.n, d: p.d, weight: w, vocab: p.vocab,
                                                batch: CandidateBatch(setOffsets: so, ids: id, logprobs: lp, gold: g, mask: m,
                                                                      negativeDraw: negativeDraw),
                                                dHidden: dh, dWeight: dw)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (r, dH, dW)
    }

    func assertClose(_ a: [Float], _ b: [Float], tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > tol {
            XCTFail("\(what)[\(i)]: \(a[i]) vs \(b[i]) (tol \(tol))", file: file, line: line)
            return
        }
    }
}
