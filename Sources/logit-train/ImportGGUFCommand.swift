import ArgumentParser
import Foundation
import GGUF
import TinyLM
import Training

/// A pretrained Llama model from a GGUF file (e.g. `make model`'s SmolLM2-135M) as an ordinary
/// checkpoint directory: every command's `--model`/`--init` and `logit-teach` then take it.
struct ImportGGUF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-gguf",
        abstract: "Convert a Llama GGUF file into a TinyLM checkpoint (f32 safetensors, config, tokenizer).")

    @Option(help: "The GGUF file.") var gguf: String
    @Option(help: "Checkpoint directory to write (replaced atomically).") var out: String
    @Option(help: "Cap on the sequence length (default: the file's context length).") var maxSeqLen: Int?

    func run() throws {
        try reported {
            let clock = Date()
            let file = try GGUFImport.open(gguf)
            let config = try GGUFImport.config(of: file, maxSequenceLength: maxSeqLen)
            let tokenizer = try GGUFImport.tokenizer(from: file)
            guard tokenizer.vocabSize == config.vocabSize else {
                throw TrainingError.invalid("\(gguf): the tokenizer has \(tokenizer.vocabSize) tokens, token_embd \(config.vocabSize) rows")
            }
            let model = try GGUFImport.model(from: file, config: config)
            let sha = try TokenizerSHA256.hexDigest(ofFile: gguf)
            var metadata = ["source_gguf": (gguf as NSString).lastPathComponent, "source_gguf_sha256": sha]
            if case .string(let name)? = file.value("general.name") { metadata["source_name"] = name }
            try RunCheckpoint.save(to: out, model: model, tokenizer: tokenizer, optimizer: nil, state: nil, metadata: metadata)
            print(String(format: "%@: %d layers, d %d, %d heads (%d kv), ffn %d, vocab %d, %.1fM parameters, pre-tokenizer %@ -> %@ (%.1f s)",
                         gguf, config.layers, config.dModel, config.heads, config.kvHeads, config.ffnHidden, config.vocabSize,
                         Double(config.parameterCount) / 1e6, tokenizer.preTokenizer.rawValue, out, Date().timeIntervalSince(clock)))
        }
    }
}
