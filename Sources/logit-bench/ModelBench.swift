import ArgumentParser
import COpenBLAS
import Foundation
import Optim
import Losses
import TinyLM
import Training

/// `logit-bench model`: a real checkpoint (SmolLM2-135M from `make model` + `import-gguf`) at
/// teacher and trainer speed — forward + LM head tokens/s, and one optimizer step of each recipe —
/// with the achieved GFLOP/s set against sgemm of the same shapes measured in the same run.
/// Peak RSS is read per phase (VmHWM, reset through /proc/self/clear_refs).
struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Forward and train-step speed of a real checkpoint against sgemm of the same shapes.")

    @Option(help: "Checkpoint or run directory (make model, then logit-train import-gguf).") var model = "models/smollm2/base"
    @Option(help: "Rows per batch.") var batch = 4
    @Option(help: "Tokens per row.") var seqLen = 512
    @Option(help: "Timed train steps per recipe (the median is reported) after one warm-up step.") var steps = 2
    @Flag(help: "Print only the JSON line.") var json = false

    /// Multiply-adds ×2 of one forward over `n` tokens in rows of `rowLength`, without the LM
    /// head: the projections and MLP, and causal attention (QKᵀ and PV over the keys before each query).
    static func bodyFLOPs(_ c: TinyLMConfig, n: Int, rowLength: Int) -> Double {
        let perToken = 2.0 * Double(c.dModel * c.dModel * 2 + 2 * c.dModel * c.kvDim + 3 * c.dModel * c.ffnHidden)
        let attention = 2.0 * 2.0 * Double(c.dModel) * Double(rowLength + 1) / 2  // per query: keys ≈ (L+1)/2
        return Double(n) * Double(c.layers) * (perToken + attention)
    }

    /// GFLOP/s of cblas_sgemm over the model's matrix shapes for `n` tokens (forward products and
    /// the LM head), best of three.
    static func sgemmFLOPsPerSecond(_ c: TinyLMConfig, n: Int) -> Double {
        let d = c.dModel
        let shapes: [(m: Int, k: Int, n: Int)] = [(n, d, d), (n, d, c.kvDim), (n, d, c.kvDim), (n, d, d),
                                                  (n, d, c.ffnHidden), (n, d, c.ffnHidden), (n, c.ffnHidden, d), (n, d, c.vocabSize)]
        let maxA = shapes.map { $0.m * $0.k }.max()!, maxB = shapes.map { $0.k * $0.n }.max()!, maxC = shapes.map { $0.m * $0.n }.max()!
        let a = [Float](repeating: 0.01, count: maxA), b = [Float](repeating: 0.02, count: maxB)
        var out = [Float](repeating: 0, count: maxC)
        var flops = 0.0
        for s in shapes { flops += 2.0 * Double(s.m * s.k * s.n) }
        let seconds = bestTime {
            out.withUnsafeMutableBufferPointer { o in
                for s in shapes {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s.m), Int32(s.n), Int32(s.k), 1, a, Int32(s.k), b,
                                Int32(s.k), 0, o.baseAddress!, Int32(s.n))
                }
            }
        }
        return flops / seconds
    }

    /// Peak resident set since the last reset, MB; resetting needs Linux's clear_refs "5".
    static func resetPeakRSS() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }
    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
        return kb / 1024
    }

    func run() throws {
        guard batch >= 1, seqLen >= 2, steps >= 1 else { throw ValidationError("need --batch ≥ 1, --seq-len ≥ 2, --steps ≥ 1") }
        let n = batch * seqLen
        let config = try RunCheckpoint.loadModel(model).model.config
        guard seqLen <= config.maxSequenceLength else {
            throw ValidationError("--seq-len \(seqLen) exceeds the model's maxSequenceLength \(config.maxSequenceLength)")
        }
        let sgemm = Self.sgemmFLOPsPerSecond(config, n: n)
        let sets = try SyntheticTrainBatch(rows: batch, length: seqLen, vocab: config.vocabSize)
        let inputs = sets.inputs, rowOffsets = sets.rowOffsets
        let body = Self.bodyFLOPs(config, n: n, rowLength: seqLen)
        let head = 2.0 * Double(n) * Double(config.dModel) * Double(config.vocabSize)

        // Forward + full LM head, as a teacher or an evaluation runs it.
        Self.resetPeakRSS()
        var forwardSeconds = 0.0
        do {
            let m = try RunCheckpoint.loadModel(model).model
            let logits = UnsafeMutablePointer<Float>.allocate(capacity: 128 * config.vocabSize)
            defer { logits.deallocate() }
            forwardSeconds = try bestTime(repeats: 2) {
                let h = try inputs.withUnsafeBufferPointer { t in
                    try rowOffsets.withUnsafeBufferPointer { try m.forward(tokens: t, rowOffsets: $0, keepActivations: false) }
                }
                for start in stride(from: 0, to: n, by: 128) {
                    m.logits(hidden: h.baseAddress! + start * config.dModel, count: min(128, n - start), into: logits)
                }
            }
        }
        let forwardRSS = Self.peakRSSMegabytes()
        if !json { print(String(format: "forward + LM head: %.0f tokens/s, %.1f GFLOP/s (sgemm %.1f)", Double(n) / forwardSeconds,
                                (body + head) / forwardSeconds / 1e9, sgemm / 1e9)) }

        var stepSeconds: [String: Double] = [:], stepRSS: [String: Double] = [:]
        // The paper-literal recipe, logit-train replay's default (tail + KD 0.5 + MoClip), the usual one.
        for (recipe, loss, alpha, optimizer) in [("restricted", LossChoice.restricted, Float(0), OptimizerChoice.moclip),
                                                 ("tail", LossChoice.tail, Float(0.5), OptimizerChoice.moclip),
                                                 ("full", LossChoice.full, Float(0), OptimizerChoice.adamw)] {
            Self.resetPeakRSS()
            let m = try RunCheckpoint.loadModel(model).model
            let opt = try optimizer.make(store: m.store, schedule: .constant(1e-5), weightDecay: 0)
            let trainer = Trainer(model: m, loss: loss.make(kdAlpha: alpha, temperature: 1), optimizer: opt, gradClip: optimizer.defaultGradClip)
            var times: [Double] = []
            for s in 0...steps {
                let t0 = now()
                _ = try sets.step(trainer)
                if s > 0 { times.append(now() - t0) }
            }
            stepSeconds[recipe] = times.sorted()[times.count / 2]
            stepRSS[recipe] = Self.peakRSSMegabytes()
            if !json { print(String(format: "step, %@ + %@: %.2f s (%.0f tokens/s), peak RSS %.0f MB", loss.rawValue, optimizer.rawValue,
                                    stepSeconds[recipe]!, Double(n) / stepSeconds[recipe]!, stepRSS[recipe]!)) }
        }
        // A step is forward + backward: three times the forward's products. The restricted head
        // costs Σ|S|·d per pass instead of V·d per token.
        let stepFull = 3 * (body + head), stepRestricted = 3 * (body + 2.0 * Double(sets.ids.count) * Double(config.dModel))
        printJSONLine([
            "bench": "model", "model": model, "parameters": config.parameterCount, "layers": config.layers,
            "batch": batch, "seq_len": seqLen, "tokens": n, "steps": steps, "mean_k": sets.meanK,
            "threads": ProcessInfo.processInfo.activeProcessorCount,
            "sgemm_gflop_per_s": sgemm / 1e9,
            "forward_tokens_per_s": Double(n) / forwardSeconds,
            "forward_gflop_per_s": (body + head) / forwardSeconds / 1e9,
            "forward_fraction_of_sgemm": (body + head) / forwardSeconds / sgemm,
            "step_tokens_per_s_restricted": Double(n) / stepSeconds["restricted"]!,
            "step_tokens_per_s_tail": Double(n) / stepSeconds["tail"]!,
            "step_cost_reduction_tail": 1 - stepSeconds["tail"]! / stepSeconds["full"]!,
            "peak_rss_mb_tail": stepRSS["tail"]!,
            "step_tokens_per_s_full": Double(n) / stepSeconds["full"]!,
            "step_fraction_of_sgemm": stepFull / stepSeconds["full"]! / sgemm,
            "step_fraction_of_sgemm_restricted": stepRestricted / stepSeconds["restricted"]! / sgemm,
            "step_cost_reduction": 1 - stepSeconds["restricted"]! / stepSeconds["full"]!,
            "peak_rss_mb": stepRSS.values.max()!,
            "peak_rss_mb_forward": forwardRSS, "peak_rss_mb_restricted": stepRSS["restricted"]!, "peak_rss_mb_full": stepRSS["full"]!,
        ])
    }
}
