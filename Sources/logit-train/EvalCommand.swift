import ArgumentParser
import Foundation
import TinyLM
import Training

/// Full-softmax perplexity of a model on a text file, and how fast it was scored.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Full-softmax perplexity and tokens/s of a model on a text file.")

    @Option(help: "Checkpoint or run directory.") var model: String
    @Option(help: "Text file to score.") var corpus: String
    @Option(help: "Tokens per window.") var seqLen: Int = 256
    @Option(help: "Score at most this many tokens (0: all).") var maxTokens: Int = 0
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try reported {
            let (m, tok, _) = try RunCheckpoint.loadModel(model)
            let tokens = try TokenCorpus.load(path: corpus, tokenizer: tok).tokens
            let r = try Evaluation.perplexity(model: m, tokens: tokens, length: min(seqLen, m.config.maxSequenceLength), maxTokens: maxTokens)
            if json {
                let object: [String: Any] = ["model": model, "corpus": corpus, "tokens": r.tokens, "cross_entropy": r.crossEntropy,
                                             "perplexity": r.perplexity, "tokens_per_s": r.tokensPerSecond]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "%@ on %@: perplexity %.3f (%.4f nats/token) over %d tokens, %.0f tokens/s",
                             model, corpus, r.perplexity, r.crossEntropy, r.tokens, r.tokensPerSecond))
            }
        }
    }
}
