import Dispatch
import Foundation
import TinyLM

/// A model scored on held-out text with the full softmax (the honest measure, whatever loss the
/// model was trained with): consecutive non-overlapping windows, every next token against the
/// whole vocabulary.
public struct EvalScore: Sendable, Codable, Equatable {
    public var tokens: Int
    /// Mean cross-entropy in nats per token.
    public var crossEntropy: Double
    public var perplexity: Double
    /// Fraction of positions whose argmax is the next token.
    public var top1: Double
    /// Mean KL(base ‖ model) in nats per position over the whole vocabulary — how far the
    /// model's next-token distribution moved from the base's. Nil without a base model.
    public var klToBase: Double?
    public var tokensPerSecond: Double
}

public enum Evaluation {
    /// Scores at most `maxTokens` predicted tokens (0: all), `rows` windows of `length` per
    /// forward; with `base`, also KL(base ‖ model) (the base runs the same windows, chunk by
    /// chunk, so no N×V matrix is ever held).
    public static func score(model: TinyLMModel, base: TinyLMModel? = nil, tokens: [UInt32], length: Int, maxTokens: Int = 0,
                             rows: Int = 8) throws -> EvalScore {
        guard length >= 2, length <= model.config.maxSequenceLength else {
            throw TrainingError.invalid("evaluation length \(length), expected 2…\(model.config.maxSequenceLength)")
        }
        guard tokens.count >= 2 else { throw TrainingError.invalid("evaluation needs at least 2 tokens, got \(tokens.count)") }
        let vocab = model.config.vocabSize, d = model.config.dModel
        if let base {
            guard base.config.vocabSize == vocab, length <= base.config.maxSequenceLength else {
                throw TrainingError.invalid("the base model has vocab \(base.config.vocabSize) and context \(base.config.maxSequenceLength); the model vocab \(vocab), windows of \(length)")
            }
        }
        if let bad = tokens.firstIndex(where: { Int($0) >= vocab }) {
            throw TrainingError.invalid("token \(tokens[bad]) at index \(bad) is outside the model's vocabulary of \(vocab)")
        }
        let budget = maxTokens > 0 ? min(maxTokens, tokens.count - 1) : tokens.count - 1
        let starts = Array(stride(from: 0, to: budget, by: length))
        let clock = Date()
        var totals = PositionSums()
        var scored = 0
        let batch = TokenBatch()
        // Logits are scored this many positions at a time, in reused buffers.
        let chunkPositions = 128
        let logitBuffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkPositions * vocab)
        let baseBuffer = UnsafeMutablePointer<Float>.allocate(capacity: base == nil ? 1 : chunkPositions * vocab)
        defer { logitBuffer.deallocate(); baseBuffer.deallocate() }
        for first in stride(from: 0, to: starts.count, by: rows) {
            batch.fill(tokens: tokens, starts: Array(starts[first..<min(first + rows, starts.count)]), length: length)
            let n = min(batch.positions, budget - scored)  // the last window clipped to the budget
            func hiddenStates(_ m: TinyLMModel) throws -> UnsafeBufferPointer<Float> {
                try batch.inputs.withUnsafeBufferPointer { tok in
                    try batch.rowOffsets.withUnsafeBufferPointer { r in try m.forward(tokens: tok, rowOffsets: r, keepActivations: false) }
                }
            }
            let hidden = try hiddenStates(model)
            let baseHidden = try base.map(hiddenStates)
            for chunkStart in stride(from: 0, to: n, by: chunkPositions) {
                let m = min(chunkPositions, n - chunkStart)
                model.logits(hidden: hidden.baseAddress! + chunkStart * d, count: m, into: logitBuffer)
                if let base, let baseHidden {
                    base.logits(hidden: baseHidden.baseAddress! + chunkStart * d, count: m, into: baseBuffer)
                }
                let targets = Array(batch.targets[chunkStart..<(chunkStart + m)])
                totals.add(scoreRows(logits: logitBuffer, base: base == nil ? nil : baseBuffer, targets: targets, vocab: vocab))
            }
            scored += n
            if scored >= budget { break }
        }
        let count = Double(max(scored, 1))
        let ce = totals.crossEntropy / count
        guard ce.isFinite else { throw TrainingError.diverged("evaluation cross-entropy is \(ce)") }
        return EvalScore(tokens: scored, crossEntropy: ce, perplexity: exp(ce), top1: Double(totals.correct) / count,
                         klToBase: base == nil ? nil : totals.kl / count,
                         tokensPerSecond: Double(scored) / max(Date().timeIntervalSince(clock), 1e-9))
    }

    /// Sums over positions, in Double.
    struct PositionSums {
        var crossEntropy = 0.0, kl = 0.0, correct = 0
        mutating func add(_ o: PositionSums) { crossEntropy += o.crossEntropy; kl += o.kl; correct += o.correct }
    }

    /// CE, argmax hits and KL(base ‖ model) of `targets.count` logit rows, rows split over the cores.
    static func scoreRows(logits: UnsafeMutablePointer<Float>, base: UnsafeMutablePointer<Float>?, targets: [UInt32],
                          vocab: Int) -> PositionSums {
        let m = targets.count, parts = min(8, max(m, 1))
        nonisolated(unsafe) var partial = [PositionSums](repeating: PositionSums(), count: parts)
        nonisolated(unsafe) let z = logits, zb = base
        partial.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                var sums = PositionSums()
                for i in (m * p / parts)..<(m * (p + 1) / parts) {
                    let row = z + i * vocab
                    let (lse, argmax) = logSumExpAndArgmax(row, vocab)
                    let g = Int(targets[i])
                    sums.crossEntropy += lse - Double(row[g])
                    if argmax == g { sums.correct += 1 }
                    guard let zb else { continue }
                    // KL(b ‖ m) = Σ_v p_b(v)·(log p_b(v) − log p_m(v))
                    let brow = zb + i * vocab
                    let (lseB, _) = logSumExpAndArgmax(brow, vocab)
                    let lseBF = Float(lseB), lseF = Float(lse)
                    var kl = 0.0
                    for v in 0..<vocab {
                        let logPB = brow[v] - lseBF
                        kl += Double(expf(logPB) * (logPB - (row[v] - lseF)))
                    }
                    sums.kl += max(kl, 0)
                }
                out[p] = sums
            }
        }
        return partial.reduce(into: PositionSums()) { $0.add($1) }
    }

    static func logSumExpAndArgmax(_ row: UnsafePointer<Float>, _ vocab: Int) -> (Double, Int) {
        var mx = -Float.infinity, arg = 0
        for v in 0..<vocab where row[v] > mx { mx = row[v]; arg = v }
        var e = 0.0
        for v in 0..<vocab { e += Double(expf(row[v] - mx)) }
        return (Double(mx) + log(e), arg)
    }
}
