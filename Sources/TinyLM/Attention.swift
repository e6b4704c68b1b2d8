import Foundation

/// Causal multi-head attention with grouped-query heads over a packed batch of rows.
///
/// q: [n × heads·h], k and v: [n × kvHeads·h] (already rotated), y: [n × heads·h]. Query head
/// `hq` reads key/value head `hq / (heads / kvHeads)`. Token i of a row attends to tokens
/// 0...i of the same row only. The softmax probabilities P are kept for backward: row r, head
/// hq occupies L_r² floats at `probOffsets[r] + hq·L_r²` (entry (i, j) at i·L_r + j, j ≤ i).
///
/// The inner loops are SIMD dot products and axpys over the head width; (row, head) pairs run
/// in parallel. For the sizes TinyLM trains (rows ≤ 1024, h = 64) this is a small share of the
/// step next to the sgemm projections.
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
    let probOffset: UnsafePointer<Int>
    let rows: Int
    @inline(__always) func start(_ r: Int) -> Int { Int(rowStart[r]) }
    @inline(__always) func length(_ r: Int) -> Int { Int(rowStart[r + 1]) - Int(rowStart[r]) }
}

enum Attention {
    static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        y: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                        rows: PackedRows, shape: AttentionShape) {
        nonisolated(unsafe) let q = q, k = k, v = v, y = y, probs = probs
        let items = rows.rows * shape.heads
        var work = 0
        for r in 0..<rows.rows { work += rows.length(r) * rows.length(r) * shape.headDim }
        let tasks = taskCount(items: items, work: work)
        parallelTasks(tasks) { task in
            for item in share(task, of: tasks, items) {
                let r = item / shape.heads, hq = item % shape.heads, hk = hq / shape.group
                let s0 = rows.start(r), len = rows.length(r), hd = shape.headDim
                let p = probs + rows.probOffset[r] + hq * len * len
                for i in 0..<len {
                    let qi = q + (s0 + i) * shape.qWidth + hq * hd
                    let pi = p + i * len
                    var mx = -Float.infinity
                    for j in 0...i {
                        let s = dot(qi, k + (s0 + j) * shape.kvWidth + hk * hd, hd) * shape.scale
                        pi[j] = s
                        mx = max(mx, s)
                    }
                    var sum: Float = 0
                    for j in 0...i { let e = expf(pi[j] - mx); pi[j] = e; sum += e }
                    let inv = 1 / sum
                    let yi = y + (s0 + i) * shape.qWidth + hq * hd
                    yi.update(repeating: 0, count: hd)
                    for j in 0...i {
                        pi[j] *= inv
                        axpy(pi[j], v + (s0 + j) * shape.kvWidth + hk * hd, yi, hd)
                    }
                }
            }
        }
    }

    /// Gradients of `forward`. dq is overwritten; dk and dv are overwritten too (each task
    /// clears the key/value head slice it owns before its query heads add into it).
    /// `scratch` needs rows·kvHeads·maxRowLength floats.
    ///
    /// With S = scale·q·kᵀ, P = softmax(S), y = P·v:
    ///   dv_j += Σ_i P_ij dy_i,  dP_ij = dy_i·v_j,  dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik),
    ///   dq_i = scale Σ_j dS_ij k_j,  dk_j += scale Σ_i dS_ij q_i.
    /// Tasks are (row, key/value head) pairs: every query head sharing a kv head runs in the same
    /// task, so dk and dv have a single writer.
    static func backward(dy: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                         v: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         rows: PackedRows, shape: AttentionShape, maxRowLength: Int, scratch: ActivationBuffer) {
        nonisolated(unsafe) let dy = dy, q = q, k = k, v = v, probs = probs, dq = dq, dk = dk, dv = dv
        let items = rows.rows * shape.kvHeads
        nonisolated(unsafe) let dpAll = scratch.reserve(max(1, items * maxRowLength))
        var work = 0
        for r in 0..<rows.rows { work += rows.length(r) * rows.length(r) * shape.headDim }
        let tasks = taskCount(items: items, work: work)
        parallelTasks(tasks) { task in
            for item in share(task, of: tasks, items) {
                let r = item / shape.kvHeads, hk = item % shape.kvHeads
                let s0 = rows.start(r), len = rows.length(r), hd = shape.headDim
                let dp = dpAll + item * maxRowLength
                for t in 0..<len {
                    (dk + (s0 + t) * shape.kvWidth + hk * hd).update(repeating: 0, count: hd)
                    (dv + (s0 + t) * shape.kvWidth + hk * hd).update(repeating: 0, count: hd)
                }
                for hq in (hk * shape.group)..<((hk + 1) * shape.group) {
                    let p = probs + rows.probOffset[r] + hq * len * len
                    for i in 0..<len {
                        let qi = q + (s0 + i) * shape.qWidth + hq * hd
                        let dyi = dy + (s0 + i) * shape.qWidth + hq * hd
                        let dqi = dq + (s0 + i) * shape.qWidth + hq * hd
                        let pi = p + i * len
                        var weighted: Float = 0
                        for j in 0...i {
                            let vj = v + (s0 + j) * shape.kvWidth + hk * hd
                            dp[j] = dot(dyi, vj, hd)
                            weighted += pi[j] * dp[j]
                            axpy(pi[j], dyi, dv + (s0 + j) * shape.kvWidth + hk * hd, hd)
                        }
                        dqi.update(repeating: 0, count: hd)
                        for j in 0...i {
                            let ds = pi[j] * (dp[j] - weighted) * shape.scale
                            axpy(ds, k + (s0 + j) * shape.kvWidth + hk * hd, dqi, hd)
                            axpy(ds, qi, dk + (s0 + j) * shape.kvWidth + hk * hd, hd)
                        }
                    }
                }
            }
        }
    }
}
