import COpenBLAS
import Foundation
import LogitCore
import Parameters

/// What one decoder block keeps from forward for backward. Buffers grow to the largest batch
/// seen and are reused after that.
final class LayerActivations: @unchecked Sendable {
    /// Residual stream after attention (input of the MLP's norm).
    let mid = ActivationBuffer()
    let xn1 = ActivationBuffer(), rstd1 = ActivationBuffer()
    let q = ActivationBuffer(), k = ActivationBuffer(), v = ActivationBuffer()
    /// Attention output before W_o.
    let y = ActivationBuffer()
    let xn2 = ActivationBuffer(), rstd2 = ActivationBuffer()
    let g = ActivationBuffer(), u = ActivationBuffer()
}

/// A decoder-only Llama-style transformer in fp32: tied token embedding, pre-norm RMSNorm,
/// rotary positions, causal grouped-query attention, SwiGLU MLP, final RMSNorm.
///
/// The LM head is not part of the model: `forward` returns the final hidden states H and the
/// caller's `LMHeadLoss` multiplies them by `embedding.value` (W) and accumulates into
/// `embedding.grad`; `backward` then adds the input-embedding gradient into the same buffer.
/// Read it top to bottom: `forward` and `backward` walk the same blocks in opposite order.
public final class TinyLMModel: @unchecked Sendable {
    public let config: TinyLMConfig
    public let store: ParameterStore
    public let embedding: ParameterTensor
    let weights: ModelParameters
    let rotary: RotaryTable
    let shape: AttentionShape

    // Forward state: the batch and every activation backward needs.
    private var tokens: [UInt32] = []
    private var positions: [Int32] = []
    private var rowStarts: [Int32] = []
    private var maxRowLength = 0
    private var count = 0
    private var hasForward = false
    /// residual[l]: input of layer l; residual[layers]: input of the final norm.
    private let residual: [ActivationBuffer]
    private let acts: [LayerActivations]
    private let hidden = ActivationBuffer(), rstdFinal = ActivationBuffer()

    // Backward scratch.
    private let dResidual = ActivationBuffer(), dNormed = ActivationBuffer(), dAttnOut = ActivationBuffer()
    private let dq = ActivationBuffer(), dk = ActivationBuffer(), dv = ActivationBuffer()
    private let dh = ActivationBuffer(), du = ActivationBuffer()
    private let normScratch = ActivationBuffer(), attnScratch = ActivationBuffer(), probScratch = ActivationBuffer()
    /// h = silu(g) ⊙ u of the layer being computed (backward recomputes it).
    private let mlpScratch = ActivationBuffer()

    /// Largest packed batch accepted (tokens): keeps every buffer size and sgemm dimension sane.
    public static let maxBatchTokens = 1 << 20
    /// Largest attention work per layer (heads · Σ rows L² scores): 2^28. Long rows cost
    /// quadratically; past this the batch is refused instead of running for hours.
    public static let maxAttentionFloats = 1 << 28

    /// Builds the model with deterministic weights drawn from `seed` (see `ModelParameters`).
    public convenience init(config: TinyLMConfig, seed: UInt64) throws {
        try self.init(config: config, initialize: true, seed: seed)
    }

    init(config: TinyLMConfig, initialize: Bool, seed: UInt64) throws {
        try config.validate()
        self.config = config
        store = ParameterStore()
        weights = try ModelParameters(config: config, store: store)
        embedding = weights.embedding
        if initialize { weights.initialize(seed: seed, layerCount: config.layers) }
        rotary = RotaryTable(headDim: config.headDim, maxPositions: config.maxSequenceLength, theta: config.ropeTheta)
        shape = AttentionShape(heads: config.heads, kvHeads: config.kvHeads, headDim: config.headDim)
        residual = (0...config.layers).map { _ in ActivationBuffer() }
        acts = (0..<config.layers).map { _ in LayerActivations() }
    }

    // MARK: - Forward

    /// The final hidden states of a packed batch. With `keepActivations` false (evaluation,
    /// teaching, generation) every layer reuses one layer's buffers and two residual buffers:
    /// a 30-layer model then touches 1/15 of the memory, and `backward` is refused.
    public func forward(tokens: UnsafeBufferPointer<UInt32>, rowOffsets: UnsafeBufferPointer<Int32>,
                        keepActivations: Bool = true) throws -> UnsafeBufferPointer<Float> {
        try loadBatch(tokens: tokens, rowOffsets: rowOffsets)
        let n = count, d = config.dModel, kvd = config.kvDim, ffn = config.ffnHidden
        reserveActivations(layers: keepActivations ? config.layers : 1)
        /// Residual buffer feeding layer l (l = layers: the final norm's input).
        func stream(_ l: Int) -> ActivationBuffer { residual[keepActivations ? l : l % 2] }
        // Token embedding: residual[0][t] = E[token t].
        let x0 = residual[0].pointer, table = embedding.value.baseAddress!
        for t in 0..<n { (x0 + t * d).update(from: table + Int(self.tokens[t]) * d, count: d) }

        rowStarts.withUnsafeBufferPointer { starts in
            positions.withUnsafeBufferPointer { pos in
                let rows = PackedRows(rowStart: starts.baseAddress!, rows: starts.count - 1, maxLength: maxRowLength)
                for l in 0..<config.layers {
                    let w = weights.layers[l], a = acts[keepActivations ? l : 0]
                    let x = stream(l).pointer
                    // Attention block: mid = x + Attn(RMSNorm(x)) · W_oᵀ
                    RMSNorm.forward(x: x, weight: w.attnNorm.value.baseAddress!, y: a.xn1.pointer, rstd: a.rstd1.pointer,
                                    n: n, d: d, epsilon: config.normEpsilon)
                    Gemm.linear(a.xn1.pointer, w.wq.value.baseAddress!, a.q.pointer, n: n, inFeatures: d, outFeatures: d)
                    Gemm.linear(a.xn1.pointer, w.wk.value.baseAddress!, a.k.pointer, n: n, inFeatures: d, outFeatures: kvd)
                    Gemm.linear(a.xn1.pointer, w.wv.value.baseAddress!, a.v.pointer, n: n, inFeatures: d, outFeatures: kvd)
                    rotary.apply(a.q.pointer, positions: pos.baseAddress!, n: n, heads: config.heads, inverse: false)
                    rotary.apply(a.k.pointer, positions: pos.baseAddress!, n: n, heads: config.kvHeads, inverse: false)
                    Attention.forward(q: a.q.pointer, k: a.k.pointer, v: a.v.pointer, y: a.y.pointer,
                                      rows: rows, shape: shape, scratch: probScratch)
                    a.mid.pointer.update(from: x, count: n * d)
                    Gemm.linear(a.y.pointer, w.wo.value.baseAddress!, a.mid.pointer, n: n, inFeatures: d, outFeatures: d,
                                accumulate: true)
                    // MLP block: next = mid + SwiGLU(RMSNorm(mid))
                    RMSNorm.forward(x: a.mid.pointer, weight: w.mlpNorm.value.baseAddress!, y: a.xn2.pointer,
                                    rstd: a.rstd2.pointer, n: n, d: d, epsilon: config.normEpsilon)
                    let next = stream(l + 1).pointer
                    next.update(from: a.mid.pointer, count: n * d)
                    SwiGLU.forward(x: a.xn2.pointer, wGate: w.wGate.value.baseAddress!, wUp: w.wUp.value.baseAddress!,
                                   wDown: w.wDown.value.baseAddress!, g: a.g.pointer, u: a.u.pointer, h: mlpScratch.pointer,
                                   out: next, n: n, d: d, ffn: ffn)
                }
            }
        }
        RMSNorm.forward(x: stream(config.layers).pointer, weight: weights.finalNorm.value.baseAddress!, y: hidden.pointer,
                        rstd: rstdFinal.pointer, n: n, d: d, epsilon: config.normEpsilon)
        hasForward = keepActivations
        return UnsafeBufferPointer(start: hidden.pointer, count: n * d)
    }

    // MARK: - Backward

    public func backward(dHidden: UnsafeBufferPointer<Float>) throws {
        guard hasForward else { throw ModelError.invalidInput("backward called before a forward that kept its activations") }
        let n = count, d = config.dModel, kvd = config.kvDim, ffn = config.ffnHidden
        guard dHidden.count == n * d else {
            throw ModelError.invalidInput("dHidden has \(dHidden.count) floats, expected tokens·dModel = \(n)·\(d) = \(n * d)")
        }
        guard n > 0 else { return }
        dResidual.reserve(n * d); dNormed.reserve(n * d); dAttnOut.reserve(n * d)
        dq.reserve(n * d); dk.reserve(n * kvd); dv.reserve(n * kvd)
        dh.reserve(n * ffn); du.reserve(n * ffn)
        let dx = dResidual.pointer
        // Final norm: dResidual = ∂/∂residual[layers].
        RMSNorm.backward(dy: dHidden.baseAddress!, x: residual[config.layers].pointer, weight: weights.finalNorm.value.baseAddress!,
                         rstd: rstdFinal.pointer, dx: dx, dWeight: weights.finalNorm.grad.baseAddress!, n: n, d: d,
                         accumulate: false, scratch: normScratch)
        rowStarts.withUnsafeBufferPointer { starts in
            positions.withUnsafeBufferPointer { pos in
                let rows = PackedRows(rowStart: starts.baseAddress!, rows: starts.count - 1, maxLength: maxRowLength)
                for l in stride(from: config.layers - 1, through: 0, by: -1) {
                    let w = weights.layers[l], a = acts[l]
                    // MLP block (next = mid + SwiGLU(RMSNorm(mid))): dx flows through unchanged and
                    // through the MLP and its norm.
                    SwiGLU.backward(dOut: dx, x: a.xn2.pointer, g: a.g.pointer, u: a.u.pointer,
                                    wGate: w.wGate.value.baseAddress!, wUp: w.wUp.value.baseAddress!,
                                    wDown: w.wDown.value.baseAddress!, dWGate: w.wGate.grad.baseAddress!,
                                    dWUp: w.wUp.grad.baseAddress!, dWDown: w.wDown.grad.baseAddress!,
                                    dx: dNormed.pointer, dh: dh.pointer, du: du.pointer, n: n, d: d, ffn: ffn)
                    RMSNorm.backward(dy: dNormed.pointer, x: a.mid.pointer, weight: w.mlpNorm.value.baseAddress!,
                                     rstd: a.rstd2.pointer, dx: dx, dWeight: w.mlpNorm.grad.baseAddress!, n: n, d: d,
                                     accumulate: true, scratch: normScratch)
                    // Attention block (mid = x + Attn(RMSNorm(x)) · W_oᵀ).
                    Gemm.linearInputGrad(dx, w.wo.value.baseAddress!, dAttnOut.pointer, n: n, inFeatures: d, outFeatures: d,
                                         accumulate: false)
                    Gemm.linearWeightGrad(dx, a.y.pointer, w.wo.grad.baseAddress!, n: n, inFeatures: d, outFeatures: d)
                    Attention.backward(dy: dAttnOut.pointer, q: a.q.pointer, k: a.k.pointer, v: a.v.pointer,
                                       dq: dq.pointer, dk: dk.pointer, dv: dv.pointer,
                                       rows: rows, shape: shape, probScratch: probScratch, scratch: attnScratch)
                    rotary.apply(dq.pointer, positions: pos.baseAddress!, n: n, heads: config.heads, inverse: true)
                    rotary.apply(dk.pointer, positions: pos.baseAddress!, n: n, heads: config.kvHeads, inverse: true)
                    Gemm.linearInputGrad(dq.pointer, w.wq.value.baseAddress!, dNormed.pointer, n: n, inFeatures: d,
                                         outFeatures: d, accumulate: false)
                    Gemm.linearInputGrad(dk.pointer, w.wk.value.baseAddress!, dNormed.pointer, n: n, inFeatures: d,
                                         outFeatures: kvd, accumulate: true)
                    Gemm.linearInputGrad(dv.pointer, w.wv.value.baseAddress!, dNormed.pointer, n: n, inFeatures: d,
                                         outFeatures: kvd, accumulate: true)
                    Gemm.linearWeightGrad(dq.pointer, a.xn1.pointer, w.wq.grad.baseAddress!, n: n, inFeatures: d, outFeatures: d)
                    Gemm.linearWeightGrad(dk.pointer, a.xn1.pointer, w.wk.grad.baseAddress!, n: n, inFeatures: d, outFeatures: kvd)
                    Gemm.linearWeightGrad(dv.pointer, a.xn1.pointer, w.wv.grad.baseAddress!, n: n, inFeatures: d, outFeatures: kvd)
                    RMSNorm.backward(dy: dNormed.pointer, x: residual[l].pointer, weight: w.attnNorm.value.baseAddress!,
                                     rstd: a.rstd1.pointer, dx: dx, dWeight: w.attnNorm.grad.baseAddress!, n: n, d: d,
                                     accumulate: true, scratch: normScratch)
                }
            }
        }
        // Token embedding: scatter-add into the tied table (serial: tokens repeat).
        let dE = embedding.grad.baseAddress!
        for t in 0..<n { axpy(1, dx + t * d, dE + Int(tokens[t]) * d, d) }
    }

    // MARK: - Logits

    public func logits(hidden: UnsafeBufferPointer<Float>, count: Int) -> [Float] {
        let d = config.dModel, vocab = config.vocabSize
        precondition(count >= 0 && hidden.count >= count * d, "hidden holds \(hidden.count) floats, expected count·dModel = \(count * d)")
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count * vocab) { out, initialized in
            logits(hidden: hidden.baseAddress!, count: count, into: out.baseAddress!)
            initialized = count * vocab
        }
    }

    /// Logits of `count` hidden states into the caller's `count × vocab` buffer: callers that
    /// score in chunks reuse one buffer instead of faulting in fresh pages for every batch.
    public func logits(hidden: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        let d = config.dModel, vocab = config.vocabSize
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(vocab), Int32(d),
                    1, hidden, Int32(d), embedding.value.baseAddress!, Int32(d), 0, out, Int32(vocab))
    }

    // MARK: - Batch bookkeeping

    /// Validates the packed batch and copies what backward needs (tokens, positions, row layout).
    private func loadBatch(tokens input: UnsafeBufferPointer<UInt32>, rowOffsets: UnsafeBufferPointer<Int32>) throws {
        hasForward = false
        let n = input.count
        guard rowOffsets.count >= 2 else {
            throw ModelError.invalidInput("rowOffsets has \(rowOffsets.count) entries, expected rows + 1 ≥ 2")
        }
        guard n <= Self.maxBatchTokens else {
            throw ModelError.invalidInput("\(n) tokens in one batch, expected at most \(Self.maxBatchTokens)")
        }
        guard rowOffsets[0] == 0, Int(rowOffsets[rowOffsets.count - 1]) == n else {
            throw ModelError.invalidInput("rowOffsets must start at 0 and end at tokens.count = \(n); got \(rowOffsets[0]) … \(rowOffsets[rowOffsets.count - 1])")
        }
        for (t, id) in input.enumerated() where Int(id) >= config.vocabSize {
            throw ModelError.invalidInput("token \(t) is id \(id), expected < vocabSize \(config.vocabSize)")
        }
        rowStarts.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
        var probTotal = 0
        maxRowLength = 0
        for r in 0..<(rowOffsets.count - 1) {
            let len = Int(rowOffsets[r + 1]) - Int(rowOffsets[r])
            guard len >= 0 else { throw ModelError.invalidInput("rowOffsets decrease at row \(r): \(rowOffsets[r]) > \(rowOffsets[r + 1])") }
            guard len <= config.maxSequenceLength else {
                throw ModelError.invalidInput("row \(r) has \(len) tokens, expected at most maxSequenceLength \(config.maxSequenceLength)")
            }
            probTotal += config.heads * len * len
            guard probTotal <= Self.maxAttentionFloats else {
                throw ModelError.invalidInput("rows up to \(r) need \(probTotal) attention probabilities per layer (heads · Σ length²), expected at most \(Self.maxAttentionFloats); use fewer or shorter rows")
            }
            maxRowLength = max(maxRowLength, len)
            for p in 0..<len { positions.append(Int32(p)) }
        }
        rowStarts.append(contentsOf: rowOffsets)
        tokens.removeAll(keepingCapacity: true)
        tokens.append(contentsOf: input)
        count = n
    }


    private func reserveActivations(layers: Int) {
        let n = count, d = config.dModel, kvd = config.kvDim, ffn = config.ffnHidden
        for r in residual.prefix(max(2, layers + 1)) { r.reserve(n * d) }
        for a in acts.prefix(layers) {
            a.mid.reserve(n * d); a.xn1.reserve(n * d); a.rstd1.reserve(n)
            a.q.reserve(n * d); a.k.reserve(n * kvd); a.v.reserve(n * kvd)
            a.y.reserve(n * d)
            a.xn2.reserve(n * d); a.rstd2.reserve(n)
            a.g.reserve(n * ffn); a.u.reserve(n * ffn)
        }
        hidden.reserve(n * d); rstdFinal.reserve(n); mlpScratch.reserve(n * ffn)
    }
}
