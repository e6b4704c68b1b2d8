import Foundation
import GGUF

/// A pretrained Llama model from a GGUF file as a TinyLM model and tokenizer. Everything is
/// checked against what TinyLM computes — architecture, tied head, full-width rotary, no rope
/// scaling, the exact tensor set and shapes — and anything else is refused by name rather than
/// run wrongly. The mapping: schema/GGUF.md.
public enum GGUFImport {
    /// Opens and validates a GGUF file, its errors as `ModelError.gguf`.
    public static func open(_ path: String) throws -> GGUFFile {
        do throws(GGUFError) { return try GGUFFile(path: path) } catch { throw ModelError.gguf(error) }
    }

    /// The TinyLM shape of the file's model. `maxSequenceLength` caps the file's context length.
    public static func config(of file: GGUFFile, maxSequenceLength: Int? = nil) throws -> TinyLMConfig {
        do {
            let arch = try file.string("general.architecture")
            guard arch == "llama" else {
                throw GGUFError(path: file.path, item: "general.architecture", reason: "architecture \"\(arch)\"; TinyLM imports \"llama\"")
            }
            let embedding = try file.tensor("token_embd.weight")
            guard embedding.dimensions.count == 2 else {
                throw GGUFError(path: file.path, item: embedding.name, reason: "shape \(embedding.rowMajorShape), expected [vocab, d]")
            }
            if file.tensors.contains(where: { $0.name == "output.weight" }) {
                throw GGUFError(path: file.path, item: "output.weight", reason: "an untied LM head; TinyLM ties the head to token_embd")
            }
            for key in ["llama.rope.scaling.type", "llama.rope.scaling.factor"] where file.value(key) != nil {
                if key.hasSuffix("type"), try file.string(key) == "none" { continue }
                throw GGUFError(path: file.path, item: key, reason: "rope scaling is not implemented in TinyLM")
            }
            let heads = try file.integer("llama.attention.head_count")
            let dModel = try file.integer("llama.embedding_length")
            let context = try file.integer("llama.context_length")
            let config = TinyLMConfig(
                vocabSize: embedding.dimensions[1], dModel: dModel, layers: try file.integer("llama.block_count"),
                heads: heads, kvHeads: file.value("llama.attention.head_count_kv") == nil ? heads : try file.integer("llama.attention.head_count_kv"),
                ffnHidden: try file.integer("llama.feed_forward_length"),
                maxSequenceLength: min(context, maxSequenceLength ?? context, TinyLMConfig.maxSequence),
                ropeTheta: Float(file.value("llama.rope.freq_base") == nil ? 10000 : try file.float("llama.rope.freq_base")),
                normEpsilon: Float(try file.float("llama.attention.layer_norm_rms_epsilon")))
            if file.value("llama.rope.dimension_count") != nil {
                let rotary = try file.integer("llama.rope.dimension_count")
                guard dModel % max(heads, 1) == 0, rotary == dModel / heads else {
                    throw GGUFError(path: file.path, item: "llama.rope.dimension_count",
                                    reason: "rotary width \(rotary); TinyLM rotates the whole head (\(heads > 0 ? dModel / heads : 0))")
                }
            }
            if file.value("llama.vocab_size") != nil, try file.integer("llama.vocab_size") != config.vocabSize {
                throw GGUFError(path: file.path, item: "llama.vocab_size", reason: "differs from token_embd's \(config.vocabSize) rows")
            }
            try config.validate()
            return config
        } catch let e as GGUFError { throw ModelError.gguf(e) }
    }

    /// GGUF name of each TinyLM tensor.
    static func ggufName(_ name: String) -> String {
        switch name {
        case "embedding": return "token_embd.weight"
        case "final_norm": return "output_norm.weight"
        default:
            let parts = name.split(separator: ".", maxSplits: 2)  // layers, i, rest
            let rest: String
            switch parts[2] {
            case "attn_norm": rest = "attn_norm"
            case "attn.wq": rest = "attn_q"
            case "attn.wk": rest = "attn_k"
            case "attn.wv": rest = "attn_v"
            case "attn.wo": rest = "attn_output"
            case "mlp_norm": rest = "ffn_norm"
            case "mlp.w_gate": rest = "ffn_gate"
            case "mlp.w_up": rest = "ffn_up"
            default: rest = "ffn_down"
            }
            return "blk.\(parts[1]).\(rest).weight"
        }
    }

    /// The model with the file's weights, dequantized to f32. Q and K rows are put back from
    /// llama.cpp's interleaved-pair order into the rotate-half order TinyLM's RoPE uses.
    public static func model(from file: GGUFFile, config: TinyLMConfig) throws -> TinyLMModel {
        let model = try TinyLMModel(config: config, initialize: false, seed: 0)
        var used = Set<String>()
        do {
            for tensor in model.store.tensors {
                let name = ggufName(tensor.name)
                let info = try file.tensor(name)
                guard info.rowMajorShape == tensor.shape else {
                    throw GGUFError(path: file.path, offset: info.fileOffset, item: name,
                                    reason: "shape \(info.rowMajorShape), expected \(tensor.shape) for TinyLM's \(tensor.name)")
                }
                let values = try file.dequantize(info)
                if tensor.name.hasSuffix("attn.wq") || tensor.name.hasSuffix("attn.wk") {
                    let heads = tensor.name.hasSuffix("attn.wq") ? config.heads : config.kvHeads
                    unpermuteRotaryRows(values, into: tensor.value, heads: heads, headDim: config.headDim, columns: config.dModel)
                } else {
                    _ = tensor.value.update(from: values)
                }
                used.insert(name)
            }
            if let extra = file.tensors.first(where: { !used.contains($0.name) }) {
                throw GGUFError(path: file.path, offset: extra.fileOffset, item: extra.name,
                                reason: "tensor TinyLM has no place for; refusing to drop it silently")
            }
        } catch let e as GGUFError { throw ModelError.gguf(e) }
        return model
    }

    /// llama.cpp's converter stores row `h·hd + 2i + j` of a Q/K projection where Hugging Face
    /// has row `h·hd + j·hd/2 + i` (j ∈ {0, 1}): pairs are adjacent for ggml's RoPE. Undo it.
    static func unpermuteRotaryRows(_ src: [Float], into dst: UnsafeMutableBufferPointer<Float>, heads: Int, headDim: Int, columns: Int) {
        let half = headDim / 2
        src.withUnsafeBufferPointer { s in
            for h in 0..<heads {
                for i in 0..<half {
                    for j in 0..<2 {
                        let from = (h * headDim + 2 * i + j) * columns, to = (h * headDim + j * half + i) * columns
                        UnsafeMutableBufferPointer(rebasing: dst[to..<(to + columns)])
                            .baseAddress!.update(from: s.baseAddress! + from, count: columns)
                    }
                }
            }
        }
    }

    /// The file's byte-level BPE tokenizer (`tokenizer.ggml.model` "gpt2"), with its
    /// pre-tokenizer rule from `tokenizer.ggml.pre`.
    public static func tokenizer(from file: GGUFFile) throws -> ByteLevelBPE {
        do {
            let model = try file.string("tokenizer.ggml.model")
            guard model == "gpt2" else {
                throw GGUFError(path: file.path, item: "tokenizer.ggml.model", reason: "tokenizer \"\(model)\"; TinyLM reads byte-level BPE (\"gpt2\")")
            }
            let pre = file.value("tokenizer.ggml.pre") == nil ? "default" : try file.string("tokenizer.ggml.pre")
            let rules: [String: PreTokenizerRule] = ["default": .gpt2, "gpt2": .gpt2, "smollm": .gpt2Digits]
            guard let rule = rules[pre] else {
                throw GGUFError(path: file.path, item: "tokenizer.ggml.pre",
                                reason: "pre-tokenizer \"\(pre)\" is not implemented; known: \(rules.keys.sorted().joined(separator: ", "))")
            }
            let strings = try file.strings("tokenizer.ggml.tokens")
            var tokens: [[UInt8]] = []
            tokens.reserveCapacity(strings.count)
            var idOf: [String: UInt32] = [:]
            for (id, s) in strings.enumerated() {
                guard let bytes = BPEByteMapping.bytes(fromString: s), !bytes.isEmpty else {
                    throw GGUFError(path: file.path, item: "tokenizer.ggml.tokens[\(id)]", reason: "token \"\(s)\" is empty or outside GPT-2's byte mapping")
                }
                if idOf[s] == nil { idOf[s] = UInt32(id) }
                tokens.append(bytes)
            }
            var merges: [(UInt32, UInt32)] = []
            for (rank, m) in try file.strings("tokenizer.ggml.merges").enumerated() {
                let parts = m.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, let a = idOf[String(parts[0])], let b = idOf[String(parts[1])] else {
                    throw GGUFError(path: file.path, item: "tokenizer.ggml.merges[\(rank)]", reason: "\"\(m)\" is not two known tokens separated by one space")
                }
                merges.append((a, b))
            }
            return try ByteLevelBPE(tokens: tokens, merges: merges, preTokenizer: rule, source: file.path)
        } catch let e as GGUFError { throw ModelError.gguf(e) }
    }
}
