import ArgumentParser
import Foundation
import LogitCore
import Optim
import Losses
import TinyLM
import Training

/// Full cross-entropy + AdamW (warmup, cosine) on random windows of a corpus: the base model.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a model on text files (full softmax, AdamW with warmup and cosine decay).")

    @Option(name: .customLong("corpus"), parsing: .upToNextOption, help: "Training text files.") var corpora: [String]
    @Option(help: "Held-out text file for periodic perplexity (default: the last 5% of the training tokens, not trained on).")
    var heldout: String?
    @Option(help: "Vocabulary size of the tokenizer trained when none is given.") var vocabSize: Int = 8192
    @Option(help: "Use this tokenizer directory (vocab.json + merges.txt) instead of training one.") var tokenizer: String?
    @Option(help: "Model size: toy, small or base.") var size: String = "small"
    @Option(help: "Run directory (created; resumed when it holds a checkpoint).") var out: String
    @Option(help: "Optimizer steps.") var steps: Int = 2000
    @Option(help: "Windows per step.") var batch: Int = 8
    @Option(help: "Tokens per window.") var seqLen: Int = 256
    @Option(help: "Peak learning rate.") var lr: Float = 3e-3
    @Option(help: "Warmup steps.") var warmup: Int = 100
    @Option(help: "Decoupled weight decay on matrices.") var weightDecay: Float = 0.1
    @Option(help: "Seed for initialization and batches.") var seed: UInt64 = 0
    @Option(help: "Held-out perplexity every N steps (0: only at start and end).") var evalEvery: Int = 200
    @Option(help: "Held-out tokens scored per evaluation (0: all).") var evalTokens: Int = 32_768
    @Option(help: "Checkpoint every N steps (always at the end).") var checkpointEvery: Int = 200

    func validate() throws {
        guard !corpora.isEmpty else { throw ValidationError("give at least one --corpus file") }
        guard steps >= 1, batch >= 1, seqLen >= 2 else { throw ValidationError("--steps, --batch ≥ 1 and --seq-len ≥ 2") }
        guard ["toy", "small", "base"].contains(size) else { throw ValidationError("--size must be toy, small or base, not '\(size)'") }
        guard vocabSize >= 257 else { throw ValidationError("--vocab-size must be ≥ 257 (256 bytes + one special token)") }
        guard warmup >= 0, warmup < steps else { throw ValidationError("--warmup must be 0…steps−1") }
    }

    func run() throws {
        try reported {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let tok = try loadOrTrainTokenizer()
            print("tokenizer: \(tok.vocabSize) ids, hash \(tok.hash.prefix(16))")
            let clock = Date()
            var stream: [UInt32] = []
            var hashes: [String] = []
            let eot = tok.specialTokenID(Self.endOfText)
            for path in corpora {
                let corpus = try TokenCorpus.load(path: path, tokenizer: tok)
                stream += corpus.tokens
                if let eot { stream.append(eot) }
                hashes.append(corpus.fileHash)
            }
            var heldoutTokens: [UInt32]
            if let heldout {
                heldoutTokens = try TokenCorpus.load(path: heldout, tokenizer: tok).tokens
            } else {
                let cut = stream.count - stream.count / 20
                heldoutTokens = Array(stream[cut...])
                stream.removeLast(stream.count - cut)
            }
            print(String(format: "corpus: %d training tokens, %d held-out tokens (tokenized in %.1fs)",
                         stream.count, heldoutTokens.count, Date().timeIntervalSince(clock)))
            try checkRunSettings(run: out, settings: [
                "command": "pretrain", "size": size, "tokenizer_hash": tok.hash, "corpus_sha256": hashes.joined(separator: ","),
                "seq_len": "\(seqLen)", "batch": "\(batch)", "seed": "\(seed)", "steps": "\(steps)", "lr": "\(lr)",
                "warmup": "\(warmup)", "weight_decay": "\(weightDecay)",
            ], mustMatch: ["size", "tokenizer_hash", "corpus_sha256", "seq_len", "batch", "seed", "steps", "lr", "warmup"])

            let checkpoint = RunCheckpoint.path(inRun: out)
            let resuming = FileManager.default.fileExists(atPath: checkpoint + "/trainer.json")
            let model = resuming ? try RunCheckpoint.loadModel(checkpoint).model
                : try TinyLMModel(config: TinyLMConfig.preset(size, vocabSize: tok.vocabSize, maxSequenceLength: max(seqLen, 256)), seed: seed)
            let schedule = LRSchedule.training(peak: lr, warmup: warmup, steps: steps)
            let optimizer = try OptimizerChoice.adamw.make(store: model.store, schedule: schedule, weightDecay: weightDecay)
            let state = resuming ? try RunCheckpoint.loadTrainingState(checkpoint, into: optimizer)
                : TrainerState(phase: "pretrain", step: 0, totalSteps: steps, tokensSeen: 0, elapsedSeconds: 0)
            print("model: \(size), \(model.config.parameterCount) parameters (d \(model.config.dModel), \(model.config.layers) layers)")
            let trainer = Trainer(model: model, loss: FullSoftmaxLoss(), optimizer: optimizer, gradClip: 1)
            let sampler = try WindowSampler(tokenCount: stream.count, length: seqLen, batchSize: batch, seed: seed)
            let loop = try TrainingLoop(run: out, trainer: trainer, tokenizer: tok, state: state, settings: .init(
                totalSteps: steps, evalEvery: evalEvery, checkpointEvery: checkpointEvery, evalLength: seqLen,
                evalTokens: evalTokens, label: "pretrain"), evals: [(name: "heldout", tokens: heldoutTokens)])
            let batchBuffer = TokenBatch()
            try loop.run { step in
                batchBuffer.fill(tokens: stream, starts: sampler.starts(step: step), length: seqLen)
                let result = try batchBuffer.withCandidateBatch { b in
                    try trainer.step(inputs: batchBuffer.inputs, rowOffsets: batchBuffer.rowOffsets, batch: b)
                }
                return .init(result: result, positions: batchBuffer.positions)
            }
            print("model written to \(checkpoint) (\(loop.state.step) steps, \(loop.state.tokensSeen) tokens, \(String(format: "%.0f", loop.state.elapsedSeconds)) s)")
        }
    }

    static let endOfText = "<|endoftext|>"

    func loadOrTrainTokenizer() throws -> ByteLevelBPE {
        let saved = out + "/tokenizer"
        if let tokenizer { return try ByteLevelBPE.load(from: URL(fileURLWithPath: tokenizer)) }
        if FileManager.default.fileExists(atPath: saved + "/vocab.json") { return try ByteLevelBPE.load(from: URL(fileURLWithPath: saved)) }
        let clock = Date()
        print("training a \(vocabSize)-id byte-level BPE tokenizer on \(corpora.count) file(s)…")
        let tok = try ByteLevelBPE.train(files: corpora.map { URL(fileURLWithPath: $0) }, vocabSize: vocabSize,
                                         specialTokens: [Self.endOfText])
        try tok.save(to: URL(fileURLWithPath: saved))
        print(String(format: "tokenizer trained in %.1fs", Date().timeIntervalSince(clock)))
        return tok
    }
}
