import Foundation
import XCTest
import Optim
import Losses
@testable import TinyLM

extension TestRNG {
    /// Uniform in [-1, 1).
    mutating func signed() -> Double { Double(next() >> 11) * 0x1.0p-52 - 1 }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in Float(signed()) * scale } }
}

/// Asserts |a − b| ≤ abs + rel·max(|a|, |b|) element-wise, reporting the worst index.
func assertClose(_ a: [Double], _ b: [Double], abs: Double, rel: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): lengths", file: file, line: line)
    var worst = -1, worstExcess = 0.0
    for i in 0..<min(a.count, b.count) {
        let tol = abs + rel * max(Swift.abs(a[i]), Swift.abs(b[i]))
        let excess = Swift.abs(a[i] - b[i]) - tol
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    if worst >= 0 {
        XCTFail("\(what): element \(worst) is \(a[worst]) vs \(b[worst])", file: file, line: line)
    }
}

/// Central-difference gradient of a Double function at x, at `indices` (default: every coordinate).
func numericGradient(_ x: [Double], indices: [Int]? = nil, eps: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    let indices = indices ?? Array(x.indices)
    var g = [Double](repeating: 0, count: indices.count)
    var y = x
    for (k, i) in indices.enumerated() {
        y[i] = x[i] + eps; let up = f(y)
        y[i] = x[i] - eps; let down = f(y)
        y[i] = x[i]
        g[k] = (up - down) / (2 * eps)
    }
    return g
}

func dotD(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// A toy-config model with a small vocabulary and short rows, for the model-level tests.
func toyModel(seed: UInt64 = 7, vocab: Int = 32, maxSequence: Int = 32) throws -> TinyLMModel {
    try TinyLMModel(config: try TinyLMConfig.preset("toy", vocabSize: vocab, maxSequenceLength: maxSequence), seed: seed)
}

/// H as an array for a packed batch.
func hidden(_ model: TinyLMModel, _ tokens: [UInt32], _ rows: [Int32]) throws -> [Float] {
    try tokens.withUnsafeBufferPointer { t in
        try rows.withUnsafeBufferPointer { r in Array(try model.forward(tokens: t, rowOffsets: r)) }
    }
}

/// Next-token supervision of a packed batch: position t predicts token t+1 of its row; the last
/// position of each row is unsupervised.
struct NextTokenTargets {
    var gold: [UInt32]
    var mask: [UInt8]
    init(tokens: [UInt32], rows: [Int32]) {
        gold = [UInt32](repeating: 0, count: tokens.count)
        mask = [UInt8](repeating: 0, count: tokens.count)
        for r in 0..<(rows.count - 1) {
            for t in Int(rows[r])..<(Int(rows[r + 1]) - 1) { gold[t] = tokens[t + 1]; mask[t] = 1 }
        }
    }
}

/// Forward, full-softmax CE over the tied embedding, and (when `backward`) the gradients
/// accumulated into the model's store. Returns the mean CE.
@discardableResult
func trainingLoss(_ model: TinyLMModel, tokens: [UInt32], rows: [Int32], targets: NextTokenTargets,
                  backward: Bool) throws -> Double {
    let d = model.config.dModel, v = model.config.vocabSize, n = tokens.count
    let h = try hidden(model, tokens, rows)
    var dH = [Float](repeating: 0, count: n * d)
    var scratchW = [Float](repeating: 0, count: backward ? 0 : v * d)
    let loss = FullSoftmaxLoss()
    let result: LossResult = try h.withUnsafeBufferPointer { hb in
        try targets.gold.withUnsafeBufferPointer { gold in
            try targets.mask.withUnsafeBufferPointer { mask in
                let empty = UnsafeBufferPointer<UInt32>(start: nil, count: 0)
                let batch = CandidateBatch(setOffsets: empty, ids: empty, logprobs: UnsafeBufferPointer(start: nil, count: 0),
                                           gold: gold, mask: mask)
                return try dH.withUnsafeMutableBufferPointer { dh in
                    if backward {
                        return try loss.forwardBackward(hidden: hb, n: n, d: d, weight: UnsafeBufferPointer(model.embedding.value),
                                                        vocab: v, batch: batch, dHidden: dh, dWeight: model.embedding.grad)
                    }
                    return try scratchW.withUnsafeMutableBufferPointer { sw in
                        try loss.forwardBackward(hidden: hb, n: n, d: d, weight: UnsafeBufferPointer(model.embedding.value),
                                                 vocab: v, batch: batch, dHidden: dh, dWeight: sw)
                    }
                }
            }
        }
    }
    if backward { try dH.withUnsafeBufferPointer { try model.backward(dHidden: $0) } }
    return result.loss
}
