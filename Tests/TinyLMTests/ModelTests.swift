import Foundation
import XCTest
import Optim
import Losses
@testable import TinyLM

final class ModelTests: XCTestCase {
    let tokens: [UInt32] = [3, 17, 5, 9, 30, 1, 4, 22, 8, 8, 0, 31]
    let rows: [Int32] = [0, 5, 12]

    /// Whole model, toy config, full-softmax CE over the tied embedding: analytic gradients of
    /// every tensor against central differences of the fp32 forward, along two directions per
    /// tensor (the gradient's own and a random one mixed in) and on its largest coordinates.
    func testWholeModelGradientMatchesFiniteDifferences() throws {
        let model = try toyModel(seed: 5)
        // Larger weights than the init so every path carries a gradient well above fp32 noise.
        for t in model.store.tensors where t.rank == 2 { for i in 0..<t.count { t.value[i] *= 6 } }
        let targets = NextTokenTargets(tokens: tokens, rows: rows)
        model.store.zeroGrad()
        try trainingLoss(model, tokens: tokens, rows: rows, targets: targets, backward: true)
        func loss() throws -> Double { try trainingLoss(model, tokens: tokens, rows: rows, targets: targets, backward: false) }
        var rng = TestRNG(state: 99)
        for t in model.store.tensors {
            let g = Array(t.grad).map(Double.init)
            let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertGreaterThan(norm, 1e-4, "\(t.name): gradient is (near) zero")
            let original = Array(t.value)
            // Directional derivatives.
            let random = (0..<t.count).map { _ in rng.signed() }
            let rnorm = random.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for (label, direction) in [("gradient", g.map { $0 / norm }),
                                       ("mixed", zip(g, random).map { $0 / norm + $1 / rnorm })] {
                let eps = 1e-2
                for i in 0..<t.count { t.value[i] = Float(Double(original[i]) + eps * direction[i]) }
                let up = try loss()
                for i in 0..<t.count { t.value[i] = Float(Double(original[i]) - eps * direction[i]) }
                let down = try loss()
                for i in 0..<t.count { t.value[i] = original[i] }
                let numeric = (up - down) / (2 * eps), analytic = dotD(g, direction)
                XCTAssertEqual(numeric, analytic, accuracy: 2e-3 * norm + 1e-4, "\(t.name) along \(label)")
            }
            // The three largest coordinates one by one.
            for i in g.indices.sorted(by: { abs(g[$0]) > abs(g[$1]) }).prefix(3) {
                let eps: Float = 1e-2
                t.value[i] = original[i] + eps
                let up = try loss()
                t.value[i] = original[i] - eps
                let down = try loss()
                t.value[i] = original[i]
                let numeric = (up - down) / Double((original[i] + eps) - (original[i] - eps))
                XCTAssertEqual(numeric, g[i], accuracy: 0.02 * abs(g[i]) + 1e-4, "\(t.name)[\(i)]")
            }
        }
    }

    func testBackwardAccumulatesIntoGrads() throws {
        let model = try toyModel()
        let targets = NextTokenTargets(tokens: tokens, rows: rows)
        model.store.zeroGrad()
        try trainingLoss(model, tokens: tokens, rows: rows, targets: targets, backward: true)
        let once = model.store.tensors.map { Array($0.grad) }
        try trainingLoss(model, tokens: tokens, rows: rows, targets: targets, backward: true)
        for (t, g1) in zip(model.store.tensors, once) {
            for i in 0..<t.count { XCTAssertEqual(t.grad[i], 2 * g1[i], accuracy: 1e-5 + 1e-4 * abs(g1[i]), "\(t.name)[\(i)]") }
        }
    }

    /// Changing token t changes no H before t, and nothing in the other row.
    func testCausalityAndRowIsolation() throws {
        let model = try toyModel()
        let d = model.config.dModel
        let base = try hidden(model, tokens, rows)
        var changed = tokens
        changed[7] = (changed[7] + 1) % 32          // row 1, position 2
        let after = try hidden(model, changed, rows)
        XCTAssertEqual(Array(base[0..<(7 * d)]), Array(after[0..<(7 * d)]), "H before the changed token (and all of row 0) moved")
        XCTAssertNotEqual(Array(base[(7 * d)..<(8 * d)]), Array(after[(7 * d)..<(8 * d)]), "the changed token's own H did not move")
        XCTAssertNotEqual(Array(base[(11 * d)...]), Array(after[(11 * d)...]), "later tokens of the row did not see the change")

        changed = tokens
        changed[1] = (changed[1] + 5) % 32          // row 0, position 1
        let after2 = try hidden(model, changed, rows)
        XCTAssertEqual(Array(base[(5 * d)...]), Array(after2[(5 * d)...]), "row 1 saw a token of row 0")
        XCTAssertEqual(Array(base[0..<d]), Array(after2[0..<d]))
    }

    /// A row's H is the same packed with others as alone: positions restart in each row.
    /// Inference (one layer's buffers reused by every layer) computes exactly what training's
    /// forward computes, and a backward after it is refused instead of using stale activations.
    func testForwardWithoutActivationsIsBitIdenticalAndRefusesBackward() throws {
        let model = try toyModel()
        let kept = try hidden(model, tokens, rows)
        let inferred = try tokens.withUnsafeBufferPointer { t in
            try rows.withUnsafeBufferPointer { Array(try model.forward(tokens: t, rowOffsets: $0, keepActivations: false)) }
        }
        XCTAssertEqual(kept, inferred)
        let dHidden = [Float](repeating: 0.1, count: kept.count)
        XCTAssertThrowsError(try dHidden.withUnsafeBufferPointer { try model.backward(dHidden: $0) }) {
            XCTAssertTrue("\($0)".contains("backward called before a forward that kept its activations"), "\($0)")
        }
        // A training forward afterwards still gives the same states.
        XCTAssertEqual(try hidden(model, tokens, rows), kept)
    }

    func testPackedRowsEqualSeparateRows() throws {
        let model = try toyModel()
        let d = model.config.dModel
        let packed = try hidden(model, tokens, rows)
        let first = try hidden(model, Array(tokens[0..<5]), [0, 5])
        let second = try hidden(model, Array(tokens[5...]), [0, 7])
        assertClose(packed.map(Double.init), (first + second).map(Double.init), abs: 1e-5, rel: 1e-5, "packed vs separate")
        XCTAssertEqual(packed.count, tokens.count * d)
        // Same tokens at the start of two rows give the same H (position 0 in both).
        let twice = try hidden(model, [4, 9, 4, 9], [0, 2, 4])
        assertClose(Array(twice[0..<(2 * d)]).map(Double.init), Array(twice[(2 * d)...]).map(Double.init),
                    abs: 1e-6, rel: 1e-6, "identical rows")
    }

    func testSameSeedSameWeightsDifferentSeedDifferent() throws {
        let a = try toyModel(seed: 42), b = try toyModel(seed: 42), c = try toyModel(seed: 43)
        XCTAssertEqual(a.store.tensors.map(\.name), b.store.tensors.map(\.name))
        for (ta, tb) in zip(a.store.tensors, b.store.tensors) { XCTAssertEqual(Array(ta.value), Array(tb.value), ta.name) }
        for (ta, tc) in zip(a.store.tensors, c.store.tensors) where ta.rank == 2 {
            XCTAssertNotEqual(Array(ta.value), Array(tc.value), ta.name)
        }
        // Init statistics: matrices are N(0, 0.02²) (residual projections smaller), norms are 1.
        let e = Array(a.embedding.value)
        let mean = e.reduce(0, +) / Float(e.count)
        let std = (e.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(e.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.002)
        XCTAssertEqual(mean, 0, accuracy: 0.002)
        XCTAssertTrue(a.store["final_norm"]!.value.allSatisfy { $0 == 1 })
    }

    func testConfigValidationAndPresets() throws {
        let toy = try TinyLMConfig.preset("toy", vocabSize: 100)
        XCTAssertEqual(toy.maxSequenceLength, 1024)
        let base = try TinyLMConfig.preset("base", vocabSize: 8192, maxSequenceLength: 512)
        XCTAssertEqual([base.dModel, base.layers, base.heads, base.kvHeads, base.ffnHidden], [576, 4, 9, 3, 1536])
        let small = try TinyLMConfig.preset("small", vocabSize: 1000)
        let model = try TinyLMModel(config: small, seed: 1)
        XCTAssertEqual(small.parameterCount, model.store.parameterCount)
        XCTAssertEqual(model.store.tensors.map(\.name), small.tensorLayout.map(\.name))
        XCTAssertEqual(model.store.tensors[1].name, "layers.0.attn_norm")
        XCTAssertThrowsError(try TinyLMConfig.preset("huge", vocabSize: 10)) { e in
            XCTAssertTrue("\(e)".contains("unknown preset 'huge'"), "\(e)")
        }
        func rejects(_ mutate: (inout TinyLMConfig) -> Void, _ fragment: String, line: UInt = #line) {
            var c = toy
            mutate(&c)
            XCTAssertThrowsError(try c.validate(), line: line) { e in
                XCTAssertTrue("\(e)".contains(fragment), "\(e)", line: line)
            }
            XCTAssertThrowsError(try TinyLMModel(config: c, seed: 0), line: line)
        }
        rejects({ $0.kvHeads = 3 }, "not a multiple of kvHeads")
        rejects({ $0.heads = 3; $0.kvHeads = 1 }, "dModel 64 is not a multiple of heads 3")
        rejects({ $0.heads = 64; $0.kvHeads = 1 }, "is odd")
        rejects({ $0.vocabSize = 0 }, "vocabSize is 0")
        rejects({ $0.layers = 1000 }, "layers is 1000")
        rejects({ $0.normEpsilon = 0 }, "normEpsilon")
        rejects({ $0.ropeTheta = .nan }, "ropeTheta")
    }

    func testBadInputsAreRejected() throws {
        let model = try toyModel(maxSequence: 8)
        func rejects(_ t: [UInt32], _ r: [Int32], _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try hidden(model, t, r), line: line) { e in
                XCTAssertTrue("\(e)".contains(fragment), "\(e)", line: line)
            }
        }
        rejects([1, 2, 40], [0, 3], "token 2 is id 40, expected < vocabSize 32")
        rejects([1, 2, 3], [0, 2], "end at tokens.count = 3")
        rejects([1, 2, 3], [0, 2, 1, 3], "decrease at row 1")
        rejects([1, 2, 3], [0], "rows + 1")
        rejects(Array(repeating: 1, count: 9), [0, 9], "row 0 has 9 tokens, expected at most maxSequenceLength 8")
        // Attention probabilities are quadratic in row length: refused before allocation.
        let long = try toyModel(maxSequence: 8192)
        XCTAssertThrowsError(try hidden(long, Array(repeating: 1, count: 16384), [0, 8192, 16384])) { e in
            XCTAssertTrue("\(e)".contains("rows up to 1 need 536870912 attention probabilities"), "\(e)")
        }
        // An empty batch (and empty rows) is valid and yields no hidden states.
        XCTAssertEqual(try hidden(model, [], [0, 0, 0]), [])
        let h = try hidden(model, [1, 2], [0, 0, 2, 2])
        XCTAssertEqual(h.count, 2 * model.config.dModel)
        assertClose(h.map(Double.init), try hidden(model, [1, 2], [0, 2]).map(Double.init), abs: 1e-6, rel: 1e-6, "empty rows")
        let fresh = try toyModel()
        XCTAssertThrowsError(try fresh.backward(dHidden: UnsafeBufferPointer(start: nil, count: 0))) { e in
            XCTAssertTrue("\(e)".contains("before a forward that kept its activations"), "\(e)")
        }
        _ = try hidden(fresh, [1, 2], [0, 2])
        XCTAssertThrowsError(try [Float](repeating: 0, count: 5).withUnsafeBufferPointer { try fresh.backward(dHidden: $0) }) { e in
            XCTAssertTrue("\(e)".contains("expected tokens·dModel"), "\(e)")
        }
    }

    /// logits() equals H·Wᵀ computed by hand.
    func testLogitsAreHiddenTimesEmbedding() throws {
        let model = try toyModel()
        let h = try hidden(model, tokens, rows)
        let z = h.withUnsafeBufferPointer { model.logits(hidden: $0, count: tokens.count) }
        let d = model.config.dModel, v = model.config.vocabSize
        XCTAssertEqual(z.count, tokens.count * v)
        for (t, j) in [(0, 0), (3, 17), (11, 31)] {
            var s: Float = 0
            for i in 0..<d { s += h[t * d + i] * model.embedding.value[j * d + i] }
            XCTAssertEqual(z[t * v + j], s, accuracy: 1e-5)
        }
    }

    /// 2 rows × 16 random tokens, toy config, AdamW: the model memorises them.
    func testOverfitsTinyBatch() throws {
        let model = try toyModel(seed: 3, vocab: 32, maxSequence: 16)
        var rng = TestRNG(state: 2024)
        let batch = (0..<32).map { _ in UInt32(rng.below(32)) }
        let rowOffsets: [Int32] = [0, 16, 32]
        let targets = NextTokenTargets(tokens: batch, rows: rowOffsets)
        let optimizer = try AdamW(store: model.store, schedule: .constant(1e-2))
        var first = 0.0, last = 0.0
        for step in 0..<300 {
            model.store.zeroGrad()
            last = try trainingLoss(model, tokens: batch, rows: rowOffsets, targets: targets, backward: true)
            if step == 0 { first = last }
            try optimizer.step()
        }
        XCTAssertEqual(first, log(32), accuracy: 0.2, "a fresh model should be near uniform")
        XCTAssertLessThan(last, 0.05, "CE after 300 steps: \(last)")
    }
}
