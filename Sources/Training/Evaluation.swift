import Dispatch
import Foundation
import TinyLM

/// Full-softmax perplexity of a model on a token stream: consecutive non-overlapping windows,
/// every next token scored against the whole vocabulary (the honest measure, whatever loss the
/// model was trained with).
public struct PerplexityResult: Sendable, Codable, Equatable {
    public var tokens: Int
    /// Mean cross-entropy in nats per token.
    public var crossEntropy: Double
    public var perplexity: Double
    public var tokensPerSecond: Double
}

public enum Evaluation {
    /// Scores at most `maxTokens` predicted tokens (0: all), `rows` windows of `length` per forward.
    public static func perplexity(model: TinyLMModel, tokens: [UInt32], length: Int, maxTokens: Int = 0,
                                  rows: Int = 8) throws -> PerplexityResult {
        guard length >= 2, length <= model.config.maxSequenceLength else {
            throw TrainingError.invalid("evaluation length \(length), expected 2…\(model.config.maxSequenceLength)")
        }
        guard tokens.count >= 2 else { throw TrainingError.invalid("evaluation needs at least 2 tokens, got \(tokens.count)") }
        let vocab = model.config.vocabSize
        if let bad = tokens.firstIndex(where: { Int($0) >= vocab }) {
            throw TrainingError.invalid("token \(tokens[bad]) at index \(bad) is outside the model's vocabulary of \(vocab)")
        }
        let budget = maxTokens > 0 ? min(maxTokens, tokens.count - 1) : tokens.count - 1
        var starts: [Int] = []
        var s = 0
        while s < budget { starts.append(s); s += length }
        let clock = Date()
        var total = 0.0
        var scored = 0
        let batch = TokenBatch()
        // Logits are scored this many positions at a time, in one reused buffer.
        let chunkPositions = 128
        let logitBuffer = UnsafeMutablePointer<Float>.allocate(capacity: chunkPositions * vocab)
        defer { logitBuffer.deallocate() }
        for first in stride(from: 0, to: starts.count, by: rows) {
            let chunk = Array(starts[first..<min(first + rows, starts.count)])
            batch.fill(tokens: tokens, starts: chunk, length: length)
            // Clip the last window to the budget.
            let n = min(batch.positions, budget - scored)
            let hidden = try batch.inputs.withUnsafeBufferPointer { tok in
                try batch.rowOffsets.withUnsafeBufferPointer { r in try model.forward(tokens: tok, rowOffsets: r, keepActivations: false) }
            }
            let parts = 8
            nonisolated(unsafe) var partial = [Double](repeating: 0, count: parts)
            for chunkStart in stride(from: 0, to: n, by: chunkPositions) {
                let m = min(chunkPositions, n - chunkStart)
                model.logits(hidden: hidden.baseAddress! + chunkStart * model.config.dModel, count: m, into: logitBuffer)
                nonisolated(unsafe) let z = UnsafeBufferPointer(start: logitBuffer, count: m * vocab)
                batch.targets.withUnsafeBufferPointer { g in
                    nonisolated(unsafe) let g = UnsafeBufferPointer(rebasing: g[chunkStart...])
                    partial.withUnsafeMutableBufferPointer { out in
                        nonisolated(unsafe) let out = out
                        DispatchQueue.concurrentPerform(iterations: parts) { p in
                            var sum = 0.0
                            for i in (m * p / parts)..<(m * (p + 1) / parts) {
                                let row = UnsafeBufferPointer(rebasing: z[(i * vocab)..<((i + 1) * vocab)])
                                var mx = -Float.infinity
                                for v in row { mx = max(mx, v) }
                                var e = 0.0
                                for v in row { e += Double(expf(v - mx)) }
                                sum += Double(mx) + log(e) - Double(row[Int(g[i])])
                            }
                            out[p] += sum
                        }
                    }
                }
            }
            total += partial.reduce(0, +)
            scored += n
            if scored >= budget { break }
        }
        let ce = total / Double(max(scored, 1))
        guard ce.isFinite else { throw TrainingError.diverged("evaluation cross-entropy is \(ce)") }
        return PerplexityResult(tokens: scored, crossEntropy: ce, perplexity: exp(ce),
                                tokensPerSecond: Double(scored) / max(Date().timeIntervalSince(clock), 1e-9))
    }
}
