import COpenBLAS
import Foundation

/// Causal multi-head attention with grouped-query heads over a packed batch of rows.
///
/// q: [n × heads·h], k and v: [n × kvHeads·h] (already rotated), y: [n × heads·h]. Query head
/// `hq` reads key/value head `hq / (heads / kvHeads)`. Token i of a row attends to tokens
/// 0...i of the same row only. The softmax probabilities P of one row (heads × L × L, zero
/// above the diagonal) live in a scratch buffer and are recomputed by backward instead of kept:
/// kept for every layer they were the largest activation of a 30-layer model (1.1 GB of a
/// 2,048-token step), and recomputing costs one more L×L×hd product per head.
///
/// Per row and head the two products (S = scale·Q·Kᵀ, Y = P·V) are `cblas_sgemm` calls on
/// strided views of q, k, v (leading dimension = the token stride), so OpenBLAS's threads do
/// the arithmetic; the full L×L square is computed and the masked half discarded, which costs
/// 2× the causal flops but runs several times faster than hand-written dot products. The
/// softmax in between runs in parallel over (head, query) rows with `concurrentPerform`.
struct AttentionShape: Sendable {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
    var group: Int { heads / kvHeads }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Where the rows of a packed batch are: row r is tokens rowStart[r] ..< rowStart[r+1].
struct PackedRows: @unchecked Sendable {
    let rowStart: UnsafePointer<Int32>
    let rows: Int
    /// Longest row: sizes the per-row scratch (heads · maxLength² floats).
    let maxLength: Int
    @inline(__always) func start(_ r: Int) -> Int { Int(rowStart[r]) }
    @inline(__always) func length(_ r: Int) -> Int { Int(rowStart[r + 1]) - Int(rowStart[r]) }
}

enum Attention {
    /// P of row r (heads × L × L, causal softmax of scale·Q·Kᵀ) into `p`.
    static func probabilities(q: UnsafePointer<Float>, k: UnsafePointer<Float>, row r: Int, rows: PackedRows,
                              shape: AttentionShape, into p: UnsafeMutablePointer<Float>) {
        let hd = shape.headDim, qw = Int32(shape.qWidth), kw = Int32(shape.kvWidth)
        let s0 = rows.start(r), len = rows.length(r), l = Int32(len)
        // S_h[L×L] = scale · Q_h[L×hd] · K_hkᵀ, written straight into the probability slot.
        for hq in 0..<shape.heads {
            let hk = hq / shape.group
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, Int32(hd), shape.scale,
                        q + s0 * shape.qWidth + hq * hd, qw, k + s0 * shape.kvWidth + hk * hd, kw,
                        0, p + hq * len * len, l)
        }
        // Causal softmax of every (head, query) row; the masked entries become exact zeros.
        nonisolated(unsafe) let p = p
        let items = shape.heads * len
        let tasks = taskCount(items: items, work: items * len)
        parallelTasks(tasks) { task in
            for item in share(task, of: tasks, items) {
                let i = item % len
                let pi = p + item * len
                var mx = -Float.infinity
                for j in 0...i { mx = max(mx, pi[j]) }
                var sum: Float = 0
                for j in 0...i { let e = expf(pi[j] - mx); pi[j] = e; sum += e }
                let inv = 1 / sum
                for j in 0...i { pi[j] *= inv }
                for j in (i + 1)..<len { pi[j] = 0 }
            }
        }
    }

    /// y = softmax(scale·q·kᵀ)·v per row and head. `scratch` grows to heads · maxLength² floats.
    static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        y: UnsafeMutablePointer<Float>, rows: PackedRows, shape: AttentionShape, scratch: ActivationBuffer) {
        let hd = shape.headDim, qw = Int32(shape.qWidth), kw = Int32(shape.kvWidth)
        let p = scratch.reserve(max(1, shape.heads * rows.maxLength * rows.maxLength))
        for r in 0..<rows.rows {
            let s0 = rows.start(r), len = rows.length(r)
            guard len > 0 else { continue }
            let l = Int32(len)
            probabilities(q: q, k: k, row: r, rows: rows, shape: shape, into: p)
            // Y_h[L×hd] = P_h · V_hk
            for hq in 0..<shape.heads {
                let hk = hq / shape.group
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, Int32(hd), l, 1,
                            p + hq * len * len, l, v + s0 * shape.kvWidth + hk * hd, kw,
                            0, y + s0 * shape.qWidth + hq * hd, qw)
            }
        }
    }

    /// Gradients of `forward`: dq, dk and dv are overwritten. `probScratch` (P, recomputed) and
    /// `scratch` (dP, then dS) each grow to heads · maxLength² floats: one row's heads.
    ///
    /// With S = scale·q·kᵀ, P = softmax(S) (causal), y = P·v:
    ///   dP = dy·vᵀ,  dv = Pᵀ·dy,  dS_ij = scale · P_ij (dP_ij − Σ_k P_ik dP_ik),
    ///   dq = dS·k,  dk = dSᵀ·q.
    /// Query heads sharing a kv head add into the same dk, dv slice (sgemm with β = 1, one
    /// call at a time, so there is a single writer).
    static func backward(dy: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                         v: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         rows: PackedRows, shape: AttentionShape, probScratch: ActivationBuffer, scratch: ActivationBuffer) {
        let hd = shape.headDim, qw = Int32(shape.qWidth), kw = Int32(shape.kvWidth)
        let total = rows.rows > 0 ? rows.start(rows.rows) : 0
        dk.update(repeating: 0, count: total * shape.kvWidth)
        dv.update(repeating: 0, count: total * shape.kvWidth)
        nonisolated(unsafe) let ds = scratch.reserve(max(1, shape.heads * rows.maxLength * rows.maxLength))
        nonisolated(unsafe) let probs = probScratch.reserve(max(1, shape.heads * rows.maxLength * rows.maxLength))
        for r in 0..<rows.rows {
            let s0 = rows.start(r), len = rows.length(r)
            guard len > 0 else { continue }
            let l = Int32(len)
            probabilities(q: q, k: k, row: r, rows: rows, shape: shape, into: probs)
            nonisolated(unsafe) let p = UnsafePointer(probs)
            let dyRow = dy + s0 * shape.qWidth, qRow = q + s0 * shape.qWidth
            let kRow = k + s0 * shape.kvWidth, vRow = v + s0 * shape.kvWidth
            // dP_h = dY_h · V_hkᵀ ;  dV_hk += P_hᵀ · dY_h
            for hq in 0..<shape.heads {
                let hk = hq / shape.group
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, Int32(hd), 1,
                            dyRow + hq * hd, qw, vRow + hk * hd, kw, 0, ds + hq * len * len, l)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, Int32(hd), l, 1,
                            p + hq * len * len, l, dyRow + hq * hd, qw, 1, dv + s0 * shape.kvWidth + hk * hd, kw)
            }
            // dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)); zero wherever P is (the masked half).
            let items = shape.heads * len
            let tasks = taskCount(items: items, work: items * len)
            let scale = shape.scale
            parallelTasks(tasks) { task in
                for item in share(task, of: tasks, items) {
                    let i = item % len
                    let pi = p + item * len, di = ds + item * len
                    var weighted: Float = 0
                    for j in 0...i { weighted += pi[j] * di[j] }
                    for j in 0...i { di[j] = scale * pi[j] * (di[j] - weighted) }
                    for j in (i + 1)..<len { di[j] = 0 }
                }
            }
            // dQ_h = dS_h · K_hk ;  dK_hk += dS_hᵀ · Q_h
            for hq in 0..<shape.heads {
                let hk = hq / shape.group
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, Int32(hd), l, 1,
                            ds + hq * len * len, l, kRow + hk * hd, kw, 0, dq + s0 * shape.qWidth + hq * hd, qw)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, Int32(hd), l, 1,
                            ds + hq * len * len, l, qRow + hq * hd, qw, 1, dk + s0 * shape.kvWidth + hk * hd, kw)
            }
        }
    }
}
