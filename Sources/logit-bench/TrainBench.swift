import ArgumentParser
import Foundation
import LogitCore
import Optim
import Losses
import TinyLM
import Training

/// `logit-bench train`: the cost of one optimizer step of a real TinyLM model — forward,
/// LM head + loss, backward, update — with the method (restricted softmax + MoClip) against the
/// usual recipe (full softmax + AdamW), same model, batch and sets, in the same run.
/// Two configs: small (V 8,192, d 256, 4 layers) and large (V 49,152, d 576, 4 layers); batch
/// 8 × 256 tokens; candidate sets are the synthetic teacher rows folded into V (`logit-bench loss`).
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Optimizer-step time: restricted softmax + MoClip vs full softmax + AdamW on TinyLM.")

    @Option(help: "Rows per batch.") var batch = 8
    @Option(help: "Tokens per row.") var seqLen = 256
    @Option(help: "Timed steps per recipe (the median is reported) after one warm-up step.") var steps = 5
    @Flag(help: "Print only the JSON line.") var json = false

    struct Config { let name: String; let preset: String; let vocab: Int }

    func run() throws {
        guard batch >= 1, seqLen >= 2, steps >= 1 else { throw ValidationError("need --batch ≥ 1, --seq-len ≥ 2, --steps ≥ 1") }
        var results: [String: Double] = [:]
        var meanK: [String: Double] = [:]
        for config in [Config(name: "small", preset: "small", vocab: 8192), Config(name: "large", preset: "base", vocab: 49_152)] {
            let sets = try SyntheticTrainBatch(rows: batch, length: seqLen, vocab: config.vocab)
            meanK[config.name] = sets.meanK
            for (recipe, loss, optimizer) in [("restricted", LossChoice.restricted, OptimizerChoice.moclip),
                                              ("full", LossChoice.full, OptimizerChoice.adamw)] {
                let model = try TinyLMModel(config: TinyLMConfig.preset(config.preset, vocabSize: config.vocab,
                                                                         maxSequenceLength: seqLen), seed: 1)
                let opt = try optimizer.make(store: model.store, schedule: .constant(1e-4), weightDecay: 0)
                let trainer = Trainer(model: model, loss: loss.make(kdAlpha: 0, temperature: 1), optimizer: opt,
                                      gradClip: optimizer.defaultGradClip)
                var times: [Double] = []
                var lastLoss = 0.0
                for s in 0...steps {
                    let t0 = now()
                    let r = try sets.step(trainer)
                    if s > 0 { times.append(now() - t0) }
                    lastLoss = r.loss.loss
                }
                let median = times.sorted()[times.count / 2]
                results["\(config.name)_step_ms_\(recipe)"] = median * 1e3
                if !json {
                    print(String(format: "%@ (%@, %d params) %@ + %@: %.1f ms/step (loss %.3f)", config.name, config.preset,
                                 model.config.parameterCount, loss.rawValue, optimizer.rawValue, median * 1e3, lastLoss))
                }
            }
        }
        let small = 1 - results["small_step_ms_restricted"]! / results["small_step_ms_full"]!
        let large = 1 - results["large_step_ms_restricted"]! / results["large_step_ms_full"]!
        printJSONLine([
            "bench": "train", "batch": batch, "seq_len": seqLen, "steps": steps,
            "threads": ProcessInfo.processInfo.activeProcessorCount,
            "small_step_ms_restricted": results["small_step_ms_restricted"]!, "small_step_ms_full": results["small_step_ms_full"]!,
            "large_step_ms_restricted": results["large_step_ms_restricted"]!, "large_step_ms_full": results["large_step_ms_full"]!,
            "small_cost_reduction": small, "large_cost_reduction": large,
            "small_mean_k": meanK["small"]!, "large_mean_k": meanK["large"]!,
        ])
    }
}
