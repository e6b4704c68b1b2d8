import ArgumentParser
import Foundation
import TinyLM
import Training

/// Full-softmax perplexity, top-1 accuracy and (with --base) KL(base ‖ model) of a model on a
/// text file, and how fast it was scored.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Full-softmax perplexity, next-token top-1 accuracy and KL to a base model, on a text file.")

    @Option(help: "Checkpoint or run directory.") var model: String
    @Option(help: "Text file to score.") var corpus: String
    @Option(help: "Tokens per window.") var seqLen: Int = 256
    @Option(help: "Score at most this many tokens (0: all).") var maxTokens: Int = 0
    @Option(help: "Base model (checkpoint or run directory): also report KL(base ‖ model) per position.") var base: String?
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try reported {
            let (m, tok, _) = try RunCheckpoint.loadModel(model)
            let tokens = try TokenCorpus.load(path: corpus, tokenizer: tok).tokens
            let baseModel = try base.map { try loadKLBase($0, option: "--base", tokenizerHash: tok.hash) }
            let r = try Evaluation.score(model: m, base: baseModel, tokens: tokens, length: min(seqLen, m.config.maxSequenceLength),
                                         maxTokens: maxTokens)
            if json {
                let report = EvalReport(model: model, corpus: corpus, base: base, tokens: r.tokens, crossEntropy: r.crossEntropy,
                                        perplexity: r.perplexity, top1: r.top1, klToBase: r.klToBase, tokensPerS: r.tokensPerSecond)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                encoder.keyEncodingStrategy = .convertToSnakeCase
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                let kl = r.klToBase.map { String(format: ", KL(base ‖ model) %.5f nats", $0) } ?? ""
                print(String(format: "%@ on %@: perplexity %.3f (%.4f nats/token), top-1 %.4f%@ over %d tokens, %.0f tokens/s",
                             model, corpus, r.perplexity, r.crossEntropy, r.top1, kl, r.tokens, r.tokensPerSecond))
            }
        }
    }
}

/// `logit-train eval --json`'s one line (snake_case keys; `kl_to_base` only with --base).
struct EvalReport: Encodable {
    var model: String
    var corpus: String
    var base: String?
    var tokens: Int
    var crossEntropy: Double
    var perplexity: Double
    var top1: Double
    var klToBase: Double?
    var tokensPerS: Double
}

/// The base model KL(base ‖ model) is measured against: it must share the model's tokenizer, or
/// the two distributions are over different vocabularies.
func loadKLBase(_ path: String, option: String, tokenizerHash: String) throws -> TinyLMModel {
    let (model, tokenizer, _) = try RunCheckpoint.loadModel(path)
    guard tokenizer.hash == tokenizerHash else {
        throw TrainingError.invalid("\(option) \(path) uses tokenizer \(tokenizer.hash.prefix(16)), the model \(tokenizerHash.prefix(16)): KL needs the same vocabulary")
    }
    return model
}
