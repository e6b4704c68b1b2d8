import ArgumentParser
import Dispatch
import Foundation
import LogitCore
import Losses

/// `logit-bench loss`: forward + backward of the fused LM head + loss — the restricted softmax
/// over the stored candidate sets, the tail-aware loss (sets + sampled negatives) and the
/// full-vocabulary cross-entropy (sgemm, the baseline) — same H, W and golds, in the same run. Candidate sets: the synthetic teacher rows of `logit-bench format`
/// (V = 151,936, τ = 0.95, K in 1…64) with ids folded into the model's vocabulary by `id mod V`
/// (a folded duplicate keeps its first, more probable, occurrence; the gold stays in its set).
struct LossBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss", abstract: "Restricted, tail-aware and full-vocabulary LM head + loss, forward + backward.")

    @Option(help: "Hidden size d.") var hidden = 576
    @Option(help: "Student vocabulary V.") var vocab = 49_152
    @Option(help: "Positions N.") var positions = 4_096
    @Option(help: "KD weight α for the restricted loss (0 = CE_S only).") var alpha: Float = 0
    @Option(help: "KD temperature.") var temperature: Float = 1
    @Option(help: "Ids drawn per call by the tail-aware loss.") var negatives = 256
    @Option(help: "Timing repetitions of the restricted and tail losses (best is reported).") var repeats = 5
    @Option(help: "Timing repetitions of the full loss (best is reported).") var fullRepeats = 2
    @Flag(help: "Print only the JSON line.") var json = false

    func run() throws {
        guard hidden >= 1, vocab >= 2, positions >= 1, negatives >= 1 else { throw ValidationError("need d ≥ 1, V ≥ 2, N ≥ 1, negatives ≥ 1") }
        let t0 = now()
        // The format benchmark's candidate sets, folded into V by id mod V (first occurrence kept).
        let (offsets, ids, lps, gold) = try SyntheticSets.folded(positions: positions, vocab: vocab)
        let meanK = Double(ids.count) / Double(positions)
        let mask = [UInt8](repeating: 1, count: positions)
        var rng = SplitMix64(seed: 0x105_5BE4C)
        let hiddenValues = (0..<(positions * hidden)).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let weightScale = Float(3 / Double(hidden).squareRoot())
        let weight = (0..<(vocab * hidden)).map { _ in Float(rng.nextUnit() * 2 - 1) * weightScale }
        var dH = [Float](repeating: 0, count: positions * hidden)
        var dW = [Float](repeating: 0, count: vocab * hidden)
        if !json {
            print(String(format: "sets for %d positions (mean K %.2f) and weights in %.1f s; d=%d V=%d",
                         positions, meanK, now() - t0, hidden, vocab))
        }

        func measure(_ loss: any LMHeadLoss, repeats: Int) throws -> (Double, LossResult) {
            var result = LossResult(loss: 0, crossEntropy: 0, distillation: 0, supervised: 0)
            let seconds = try bestTime(repeats: repeats) {
                result = try hiddenValues.withUnsafeBufferPointer { h in
                    try weight.withUnsafeBufferPointer { w in
                        try offsets.withUnsafeBufferPointer { so in
                            try ids.withUnsafeBufferPointer { id in
                                try lps.withUnsafeBufferPointer { lp in
                                    try gold.withUnsafeBufferPointer { g in
                                        try mask.withUnsafeBufferPointer { m in
                                            try dH.withUnsafeMutableBufferPointer { dh in
                                                try dW.withUnsafeMutableBufferPointer { dw in
                                                    try loss.forwardBackward(
                                                        hidden: h, n: positions, d: hidden, weight: w, vocab: vocab,
                                                        batch: CandidateBatch(setOffsets: so, ids: id, logprobs: lp, gold: g, mask: m),
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
            }
            return (seconds, result)
        }
        let (restricted, rResult) = try measure(RestrictedSoftmaxLoss(kdAlpha: alpha, temperature: temperature), repeats: repeats)
        if !json { print(String(format: "restricted: %.2f ms (loss %.4f)", restricted * 1e3, rResult.loss)) }
        let (tail, tResult) = try measure(SampledTailLoss(negatives: negatives, kdAlpha: alpha), repeats: repeats)
        if !json { print(String(format: "tail:       %.2f ms (loss %.4f, %d negatives)", tail * 1e3, tResult.loss, negatives)) }
        let (full, fResult) = try measure(FullSoftmaxLoss(), repeats: fullRepeats)
        if !json {
            print(String(format: "full:       %.1f ms (CE %.4f)  speedup %.1f× restricted, %.1f× tail",
                         full * 1e3, fResult.crossEntropy, full / restricted, full / tail))
        }
        // Useful work of each, for context: 3 passes of 2·d flops per (position, logit).
        let restrictedFlops = 6 * Double(ids.count) * Double(hidden)
        let tailFlops = restrictedFlops + 6 * Double(positions) * Double(min(negatives, vocab)) * Double(hidden)
        let fullFlops = 6 * Double(positions) * Double(vocab) * Double(hidden)
        printJSONLine([
            "bench": "loss", "positions": positions, "d": hidden, "vocab": vocab, "mean_k": meanK,
            "kd_alpha": Double(alpha), "temperature": Double(temperature),
            "threads": ProcessInfo.processInfo.activeProcessorCount,
            "restricted_ms": restricted * 1e3, "full_ms": full * 1e3, "speedup": full / restricted,
            "tail_ms": tail * 1e3, "tail_speedup": full / tail, "negatives": negatives,
            "restricted_gflops": restrictedFlops / restricted / 1e9, "full_gflops": fullFlops / full / 1e9,
            "tail_gflops": tailFlops / tail / 1e9,
            "restricted_ce": rResult.crossEntropy, "tail_ce": tResult.crossEntropy, "full_ce": fResult.crossEntropy,
        ])
    }
}
