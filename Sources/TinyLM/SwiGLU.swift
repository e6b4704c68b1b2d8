import Foundation

/// The SwiGLU MLP: `out = (silu(x·W_gateᵀ) ⊙ x·W_upᵀ) · W_downᵀ`, silu(g) = g·σ(g).
///
/// Forward keeps g = x·W_gateᵀ and u = x·W_upᵀ ([n × ffn] each); h = silu(g) ⊙ u goes through
/// a scratch buffer and backward recomputes it (an elementwise pass) rather than every layer
/// keeping a third [n × ffn] activation. Backward:
///   dh = dout·W_down,  dW_down += doutᵀ·h,
///   dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))),  du = dh ⊙ silu(g),
///   dx = dg·W_gate + du·W_up,  dW_gate += dgᵀ·x,  dW_up += duᵀ·x.
enum SwiGLU {
    /// Adds the MLP output into `out` (the residual stream).
    static func forward(x: UnsafePointer<Float>, wGate: UnsafePointer<Float>, wUp: UnsafePointer<Float>,
                        wDown: UnsafePointer<Float>, g: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>,
                        h: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, n: Int, d: Int, ffn: Int) {
        Gemm.linear(x, wGate, g, n: n, inFeatures: d, outFeatures: ffn)
        Gemm.linear(x, wUp, u, n: n, inFeatures: d, outFeatures: ffn)
        gatedProduct(g: g, u: u, into: h, n: n, ffn: ffn)
        Gemm.linear(h, wDown, out, n: n, inFeatures: ffn, outFeatures: d, accumulate: true)
    }

    /// h = silu(g) ⊙ u over [n × ffn], split across the cores by rows.
    static func gatedProduct(g: UnsafePointer<Float>, u: UnsafePointer<Float>, into h: UnsafeMutablePointer<Float>, n: Int, ffn: Int) {
        nonisolated(unsafe) let g = g, u = u, h = h
        let tasks = taskCount(items: n, work: n * ffn)
        parallelTasks(tasks) { task in
            let range = share(task, of: tasks, n)
            for i in (range.lowerBound * ffn)..<(range.upperBound * ffn) {
                let gi = g[i]
                h[i] = gi / (1 + expf(-gi)) * u[i]
            }
        }
    }

    /// `dx` is overwritten. `dh` and `du` are [n × ffn] scratch.
    static func backward(dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, g: UnsafePointer<Float>,
                         u: UnsafePointer<Float>,
                         wGate: UnsafePointer<Float>, wUp: UnsafePointer<Float>, wDown: UnsafePointer<Float>,
                         dWGate: UnsafeMutablePointer<Float>, dWUp: UnsafeMutablePointer<Float>, dWDown: UnsafeMutablePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, dh: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>,
                         n: Int, d: Int, ffn: Int) {
        nonisolated(unsafe) let g = g, u = u, dh = dh, du = du
        let tasks = taskCount(items: n, work: n * ffn)
        // h again, in du (free until the pass below), for dW_down.
        gatedProduct(g: g, u: u, into: du, n: n, ffn: ffn)
        Gemm.linearInputGrad(dOut, wDown, dh, n: n, inFeatures: ffn, outFeatures: d, accumulate: false)
        Gemm.linearWeightGrad(dOut, du, dWDown, n: n, inFeatures: ffn, outFeatures: d)
        parallelTasks(tasks) { task in
            let range = share(task, of: tasks, n)
            for i in (range.lowerBound * ffn)..<(range.upperBound * ffn) {
                let gi = g[i], sig = 1 / (1 + expf(-gi))
                let d = dh[i]
                du[i] = d * gi * sig
                dh[i] = d * u[i] * sig * (1 + gi * (1 - sig))   // dh becomes dg
            }
        }
        Gemm.linearInputGrad(dh, wGate, dx, n: n, inFeatures: d, outFeatures: ffn, accumulate: false)
        Gemm.linearInputGrad(du, wUp, dx, n: n, inFeatures: d, outFeatures: ffn, accumulate: true)
        Gemm.linearWeightGrad(dh, x, dWGate, n: n, inFeatures: d, outFeatures: ffn)
        Gemm.linearWeightGrad(du, x, dWUp, n: n, inFeatures: d, outFeatures: ffn)
    }
}
