/// Shape of a TinyLM decoder. Everything the weights' shapes depend on lives here, so a
/// checkpoint's `config.json` alone says which tensors its safetensors file must hold.
public struct TinyLMConfig: Codable, Sendable, Equatable {
    public var vocabSize: Int
    public var dModel: Int
    public var layers: Int
    /// Query heads.
    public var heads: Int
    /// Key/value heads (grouped-query attention): each serves `heads / kvHeads` query heads.
    public var kvHeads: Int
    /// Hidden width of the SwiGLU MLP.
    public var ffnHidden: Int
    /// Longest row `forward` accepts; sizes the rotary tables.
    public var maxSequenceLength: Int
    /// RoPE base θ: pair i of a head rotates by position · θ^(−2i/headDim).
    public var ropeTheta: Float
    /// ε inside RMSNorm's square root.
    public var normEpsilon: Float

    public init(vocabSize: Int, dModel: Int, layers: Int, heads: Int, kvHeads: Int, ffnHidden: Int,
                maxSequenceLength: Int, ropeTheta: Float, normEpsilon: Float) {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.ffnHidden = ffnHidden
        self.maxSequenceLength = maxSequenceLength
        self.ropeTheta = ropeTheta
        self.normEpsilon = normEpsilon
    }

    /// Caps: far above anything a CPU trains, low enough that every product below fits an
    /// `Int32` sgemm dimension and a hostile config.json cannot ask for terabytes.
    public static let maxVocab = 1 << 20
    public static let maxDModel = 8192
    public static let maxLayers = 256
    public static let maxHeads = 256
    public static let maxFFN = 65536
    public static let maxSequence = 1 << 16

    /// "toy" (d 64, 2 layers, 4 heads, 2 kv heads, ffn 176), "small" (d 256, 4 layers, 4 heads,
    /// 2 kv heads, ffn 688), "base" (d 576, 4 layers, 9 heads, 3 kv heads, ffn 1536).
    /// θ = 10000, ε = 1e-5.
    public static func preset(_ name: String, vocabSize: Int, maxSequenceLength: Int = 1024) throws -> TinyLMConfig {
        let c: TinyLMConfig
        switch name {
        case "toy":
            c = TinyLMConfig(vocabSize: vocabSize, dModel: 64, layers: 2, heads: 4, kvHeads: 2, ffnHidden: 176,
                             maxSequenceLength: maxSequenceLength, ropeTheta: 10000, normEpsilon: 1e-5)
        case "small":
            c = TinyLMConfig(vocabSize: vocabSize, dModel: 256, layers: 4, heads: 4, kvHeads: 2, ffnHidden: 688,
                             maxSequenceLength: maxSequenceLength, ropeTheta: 10000, normEpsilon: 1e-5)
        case "base":
            c = TinyLMConfig(vocabSize: vocabSize, dModel: 576, layers: 4, heads: 9, kvHeads: 3, ffnHidden: 1536,
                             maxSequenceLength: maxSequenceLength, ropeTheta: 10000, normEpsilon: 1e-5)
        default:
            throw ModelError.invalidConfig("unknown preset '\(name)', expected toy, small or base")
        }
        try c.validate()
        return c
    }

    /// Width of one attention head.
    public var headDim: Int { dModel / heads }
    /// Width of the key (and value) projection: kvHeads · headDim.
    public var kvDim: Int { kvHeads * headDim }

    public func validate() throws {
        func check(_ name: String, _ value: Int, _ cap: Int) throws {
            guard value >= 1, value <= cap else {
                throw ModelError.invalidConfig("\(name) is \(value), expected 1...\(cap)")
            }
        }
        try check("vocabSize", vocabSize, Self.maxVocab)
        try check("dModel", dModel, Self.maxDModel)
        try check("layers", layers, Self.maxLayers)
        try check("heads", heads, Self.maxHeads)
        try check("kvHeads", kvHeads, Self.maxHeads)
        try check("ffnHidden", ffnHidden, Self.maxFFN)
        try check("maxSequenceLength", maxSequenceLength, Self.maxSequence)
        guard heads % kvHeads == 0 else {
            throw ModelError.invalidConfig("heads \(heads) is not a multiple of kvHeads \(kvHeads)")
        }
        guard dModel % heads == 0 else {
            throw ModelError.invalidConfig("dModel \(dModel) is not a multiple of heads \(heads)")
        }
        guard headDim % 2 == 0 else {
            throw ModelError.invalidConfig("head dimension dModel/heads = \(headDim) is odd; rotary positions rotate pairs, expected even")
        }
        guard ropeTheta.isFinite, ropeTheta > 1 else {
            throw ModelError.invalidConfig("ropeTheta \(ropeTheta), expected finite and > 1")
        }
        guard normEpsilon.isFinite, normEpsilon > 0, normEpsilon < 1 else {
            throw ModelError.invalidConfig("normEpsilon \(normEpsilon), expected finite and in (0, 1)")
        }
    }

    /// Weights per layer: two norm vectors, Q/K/V/O projections and the three MLP matrices.
    public var parametersPerLayer: Int {
        2 * dModel + dModel * dModel * 2 + 2 * dModel * kvDim + 3 * dModel * ffnHidden
    }

    /// Total weights: tied embedding, the layers, the final norm.
    public var parameterCount: Int { vocabSize * dModel + layers * parametersPerLayer + dModel }
}
