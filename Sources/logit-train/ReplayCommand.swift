import ArgumentParser
import Catalog
import Foundation
import Optim
import Replay
import Losses
import TinyLM
import Training

/// Stage 1: fine-tune a model from the cache alone — tokens and teacher candidate sets both come
/// from the shards — with the restricted softmax (the method) or the full softmax (the usual
/// recipe), and MoClip, AdamW or Adam-atan2.
struct ReplayTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Stage 1: train a model on a cache's sequences and candidate sets (resumable).")

    @Option(help: "Cache directory.") var cache: String
    @Option(help: "Dataset name in the cache.") var dataset: String
    @Option(name: .customLong("init"), help: "Model to start from: a checkpoint or run directory.") var initModel: String
    @Option(help: "Run directory (created; resumed when it holds a checkpoint).") var out: String
    @Option(help: "moclip, adamw or adam-atan2.") var optimizer: OptimizerChoice = .moclip
    @Option(help: "tail (each stored set plus a tail bucket held down by sampled negatives; the default: it forgot least in docs/results/experiment), restricted (softmax over each set alone, the paper's literal loss) or full (whole vocabulary).")
    var loss: LossChoice = .tail
    @Option(help: "Weight α of the KD term on the stored teacher log-probs (default: 0.5 with the tail loss, 0 with the restricted one; none with full).")
    var kdAlpha: Float?
    @Option(help: "KD temperature (restricted loss; the tail loss's KD is at 1).") var kdTemperature: Float = 1
    @Option(help: "Vocabulary ids drawn per step to estimate the tail (tail loss).") var negatives: Int = 256
    @Option(help: "This process's rank (data parallel).") var rank: Int = 0
    @Option(help: "Number of ranks.") var worldSize: Int = 1
    @Option(help: "Optimizer steps.") var steps: Int = 300
    @Option(help: "Positions per batch, at most.") var batchTokens: Int = 2048
    @Option(help: "Positions per row, at most (longer sequences are cut).") var seqLen: Int = 256
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Warmup steps.") var warmup: Int = 20
    @Option(help: "Decoupled weight decay on matrices.") var weightDecay: Float = 0
    @Option(help: "Global gradient-norm clip (default: 1 for adamw, off for moclip and adam-atan2, which bound updates themselves).")
    var gradClip: Float?
    @Option(help: "Replay order seed.") var seed: UInt64 = 0
    @Option(name: .customLong("eval"), help: "NAME=FILE: held-out text scored every --eval-every steps (repeatable).")
    var evals: [String] = []
    @Option(help: "Held-out perplexity every N steps (0: only at start and end).") var evalEvery: Int = 100
    @Option(help: "Base model (checkpoint or run directory): evaluations also report KL(base ‖ model).") var klBase: String?
    @Option(help: "NAME of an --eval text that gets the KL (repeatable; default: every one).") var klEval: [String] = []
    @Option(help: "Held-out tokens scored per evaluation (0: all).") var evalTokens: Int = 16_384
    @Flag(inversion: .prefixedNo, help: "Score the --eval texts before the first step.") var initialEval = true
    @Option(help: "Checkpoint every N steps (always at the end).") var checkpointEvery: Int = 100

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1") }
        guard seqLen >= 2, batchTokens >= seqLen else { throw ValidationError("--seq-len ≥ 2 and --batch-tokens ≥ --seq-len") }
        guard warmup >= 0, warmup < steps else { throw ValidationError("--warmup must be 0…steps−1") }
        guard (0...1).contains(alpha), kdTemperature > 0 else { throw ValidationError("--kd-alpha must be 0…1 and --kd-temperature > 0") }
        guard alpha == 0 || loss != .full else { throw ValidationError("--kd-alpha needs --loss restricted or tail (the KD term uses the stored sets)") }
        guard kdTemperature == 1 || loss == .restricted else {
            throw ValidationError("--kd-temperature needs --loss restricted: the tail loss's KD is at T = 1, where the stored log-probs give the teacher's outside mass")
        }
        guard negatives >= 1 else { throw ValidationError("--negatives must be ≥ 1") }
        for e in evals where !e.contains("=") { throw ValidationError("--eval '\(e)': expected NAME=FILE") }
        let names = Set(evals.map { String($0.prefix { $0 != "=" }) })
        for k in klEval where !names.contains(k) { throw ValidationError("--kl-eval \(k): no --eval text has that name") }
        guard klEval.isEmpty || klBase != nil else { throw ValidationError("--kl-eval needs --kl-base") }
    }

    /// The KD weight in force: the option, else the loss's default (the tail loss's recipe is
    /// CE + KD over S ∪ {tail} at α 0.5; the restricted loss stays paper-literal, pure CE_S).
    var alpha: Float { kdAlpha ?? (loss == .tail ? 0.5 : 0) }

    func run() throws {
        try reported {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let data: ReplayDataset
            do { data = try ReplayDataset(directory: cache, datasets: [dataset]) } catch {
                throw TrainingError.invalid("cannot replay \(cache) dataset \(dataset): \(error)")
            }
            let checkpoint = RunCheckpoint.path(inRun: out)
            let resuming = FileManager.default.fileExists(atPath: checkpoint + "/trainer.json")
            let (model, tok, _) = try RunCheckpoint.loadModel(resuming ? checkpoint : initModel)
            let spec = data.datasets[0].spec
            guard spec.vocabSize == model.config.vocabSize else {
                throw TrainingError.invalid("dataset \(dataset) has vocab \(spec.vocabSize), the model \(model.config.vocabSize)")
            }
            guard spec.tokenizerHash == tok.hash else {
                throw TrainingError.invalid("dataset \(dataset) was recorded with tokenizer \(spec.tokenizerHash.prefix(16)), the model uses \(tok.hash.prefix(16))")
            }
            try checkRunSettings(run: out, settings: [
                "command": "replay", "cache_snapshot": data.snapshot.hashHex, "dataset": dataset,
                "init_sha256": try ModelCheckpoint.hash(of: RunCheckpoint.resolve(initModel)),
                "optimizer": optimizer.rawValue, "loss": loss.rawValue, "kd_alpha": "\(alpha)", "kd_temperature": "\(kdTemperature)",
                "negatives": "\(negatives)",
                "rank": "\(rank)", "world_size": "\(worldSize)", "steps": "\(steps)", "batch_tokens": "\(batchTokens)",
                "seq_len": "\(seqLen)", "lr": "\(lr)", "warmup": "\(warmup)", "seed": "\(seed)", "weight_decay": "\(weightDecay)",
            ], mustMatch: ["cache_snapshot", "dataset", "init_sha256", "optimizer", "loss", "kd_alpha", "negatives", "rank", "world_size",
                           "steps", "batch_tokens", "seq_len", "lr", "warmup", "seed"])
            let options = ReplayOptions(seed: seed, rank: rank, worldSize: worldSize, maxTokens: batchTokens, maxSequenceLength: seqLen)
            let schedule = LRSchedule.training(peak: lr, warmup: warmup, steps: steps)
            let opt = try optimizer.make(store: model.store, schedule: schedule, weightDecay: weightDecay)
            var state = resuming ? try RunCheckpoint.loadTrainingState(checkpoint, into: opt)
                : TrainerState(phase: "replay", step: 0, totalSteps: steps, tokensSeen: 0, elapsedSeconds: 0)
            if state.replay == nil { state.replay = data.initialState(epoch: 0, options: options) }
            let trainer = Trainer(model: model, loss: loss.make(kdAlpha: alpha, temperature: kdTemperature, negatives: negatives, seed: seed), optimizer: opt,
                                  gradClip: gradClip ?? optimizer.defaultGradClip)
            var evalStreams: [(name: String, tokens: [UInt32])] = []
            for e in evals {
                let parts = e.split(separator: "=", maxSplits: 1).map(String.init)
                evalStreams.append((parts[0], try TokenCorpus.load(path: parts[1], tokenizer: tok).tokens))
            }
            let base = try klBase.map { try loadKLBase($0, option: "--kl-base", tokenizerHash: tok.hash) }
            print("replay: \(data.snapshot.sequences) sequences in \(dataset), \(optimizer.rawValue) + \(loss.rawValue) softmax, \(steps) steps of ≤ \(batchTokens) positions")
            let loop = try TrainingLoop(run: out, trainer: trainer, tokenizer: tok, state: state, settings: .init(
                totalSteps: steps, evalEvery: evalEvery, checkpointEvery: checkpointEvery, evalLength: seqLen,
                evalTokens: evalTokens, label: "replay \(optimizer.rawValue)/\(loss.rawValue)", evalAtStart: initialEval),
                evals: evalStreams, base: base, baseEvals: klEval.isEmpty ? nil : Set(klEval))
            var loader: ReplayLoader
            do { loader = try data.makeLoader(resuming: state.replay!, options: options) } catch {
                throw TrainingError.invalid("cannot resume the replay order: \(error)")
            }
            defer { loader.stop() }
            try loop.run { _ in
                var next: ReplayBatch?
                do {
                    next = try loader.next()
                    if next == nil {
                        loader.stop()
                        loader = try data.makeLoader(epoch: loader.epoch + 1, options: options)
                        next = try loader.next()
                    }
                } catch let e as ReplayError {
                    throw TrainingError.io("replay: \(e)")
                }
                guard let batch = next else { throw TrainingError.invalid("the dataset yields no batch (is it empty?)") }
                let result = try batch.withCandidateBatch { b in
                    try trainer.step(inputs: batch.inputs, rowOffsets: batch.rowOffsets, batch: b)
                }
                return .init(result: result, positions: batch.positions, replay: batch.stateAfter)
            }
            print("model written to \(checkpoint) (\(loop.state.step) steps, \(loop.state.tokensSeen) positions, \(String(format: "%.0f", loop.state.elapsedSeconds)) s)")
        }
    }
}

extension OptimizerChoice: ExpressibleByArgument {}
extension LossChoice: ExpressibleByArgument {}
