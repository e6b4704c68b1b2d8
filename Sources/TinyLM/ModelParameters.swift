import Foundation
import LogitCore
import Parameters

/// Names and shapes of every weight, in registration order (the order of the store, of the
/// optimizer state and of the safetensors file). Linear weights are [out × in] as in PyTorch,
/// so `y = x · Wᵀ` and a checkpoint maps onto the usual Llama tensor layout.
extension TinyLMConfig {
    public var tensorLayout: [(name: String, shape: [Int])] {
        var list: [(String, [Int])] = [("embedding", [vocabSize, dModel])]
        for l in 0..<layers {
            let p = "layers.\(l)."
            list.append((p + "attn_norm", [dModel]))
            list.append((p + "attn.wq", [dModel, dModel]))
            list.append((p + "attn.wk", [kvDim, dModel]))
            list.append((p + "attn.wv", [kvDim, dModel]))
            list.append((p + "attn.wo", [dModel, dModel]))
            list.append((p + "mlp_norm", [dModel]))
            list.append((p + "mlp.w_gate", [ffnHidden, dModel]))
            list.append((p + "mlp.w_up", [ffnHidden, dModel]))
            list.append((p + "mlp.w_down", [dModel, ffnHidden]))
        }
        list.append(("final_norm", [dModel]))
        return list
    }
}

/// One decoder block's weights (views into the store's tensors).
struct LayerWeights {
    let attnNorm: ParameterTensor
    let wq: ParameterTensor, wk: ParameterTensor, wv: ParameterTensor, wo: ParameterTensor
    let mlpNorm: ParameterTensor
    let wGate: ParameterTensor, wUp: ParameterTensor, wDown: ParameterTensor
}

/// The whole model's weights, registered in `store` in `tensorLayout` order.
struct ModelParameters {
    let embedding: ParameterTensor
    let layers: [LayerWeights]
    let finalNorm: ParameterTensor

    init(config: TinyLMConfig, store: ParameterStore) throws {
        var byName: [String: ParameterTensor] = [:]
        for (name, shape) in config.tensorLayout { byName[name] = try store.add(name: name, shape: shape) }
        embedding = byName["embedding"]!
        finalNorm = byName["final_norm"]!
        layers = (0..<config.layers).map { l in
            let p = "layers.\(l)."
            return LayerWeights(attnNorm: byName[p + "attn_norm"]!, wq: byName[p + "attn.wq"]!, wk: byName[p + "attn.wk"]!,
                                wv: byName[p + "attn.wv"]!, wo: byName[p + "attn.wo"]!, mlpNorm: byName[p + "mlp_norm"]!,
                                wGate: byName[p + "mlp.w_gate"]!, wUp: byName[p + "mlp.w_up"]!, wDown: byName[p + "mlp.w_down"]!)
        }
    }

    /// GPT-2 style initialisation, deterministic in `seed`: norms 1, every matrix N(0, 0.02²),
    /// the two projections writing into the residual stream (wo, w_down) scaled by 1/√(2·layers)
    /// so the stream's variance does not grow with depth. Each tensor draws from its own
    /// SplitMix64 stream (seed mixed with the tensor's index), so adding a layer does not
    /// reshuffle the others.
    func initialize(seed: UInt64, layerCount: Int) {
        let std: Float = 0.02
        let residualStd = std / Float(2 * layerCount).squareRoot()
        var index: UInt64 = 0
        func fill(_ t: ParameterTensor, _ s: Float) {
            var rng = SplitMix64(seed: SplitMix64.mix(seed ^ SplitMix64.mix(index &+ 0x7F4A_7C15)))
            index += 1
            var i = 0
            let v = t.value
            while i < t.count {
                // Box–Muller: two normals per pair of uniforms; u1 in (0, 1] keeps log finite.
                let u1 = 1 - rng.nextUnit(), u2 = rng.nextUnit()
                let r = (-2 * log(u1)).squareRoot()
                v[i] = Float(r * cos(2 * Double.pi * u2)) * s
                if i + 1 < t.count { v[i + 1] = Float(r * sin(2 * Double.pi * u2)) * s }
                i += 2
            }
        }
        func ones(_ t: ParameterTensor) { t.value.update(repeating: 1); index += 1 }
        fill(embedding, std)
        for w in layers {
            ones(w.attnNorm)
            fill(w.wq, std); fill(w.wk, std); fill(w.wv, std); fill(w.wo, residualStd)
            ones(w.mlpNorm)
            fill(w.wGate, std); fill(w.wUp, std); fill(w.wDown, residualStd)
        }
        ones(finalNorm)
    }
}
