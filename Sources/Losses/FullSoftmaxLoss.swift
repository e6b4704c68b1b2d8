import COpenBLAS
import Dispatch
import Foundation

/// Full-vocabulary cross-entropy behind the same interface as `RestrictedSoftmaxLoss`: the
/// baseline the restricted loss is measured against, and the reference it is tested against.
///
///     CE = logsumexp_V(z) − z_gold,  z = H·Wᵀ,  loss = mean over supervised positions.
///
/// Logits come from `cblas_sgemm`, in chunks of `chunkRows` positions so the N×V matrix is never
/// held whole (a chunk is chunkRows·V floats). Per chunk: Z = H_c·Wᵀ, a row-parallel stable
/// softmax turning Z into dZ in place, then dH_c = dZ·W and dW += dZᵀ·H_c (both sgemm).
public struct FullSoftmaxLoss: LMHeadLoss {
    /// Positions per sgemm chunk.
    public var chunkRows: Int

    public init(chunkRows: Int = 256) { self.chunkRows = max(1, chunkRows) }

    public func forwardBackward(hidden: UnsafeBufferPointer<Float>, n: Int, d: Int,
                                weight: UnsafeBufferPointer<Float>, vocab: Int, batch: CandidateBatch,
                                dHidden: UnsafeMutableBufferPointer<Float>,
                                dWeight: UnsafeMutableBufferPointer<Float>) throws(LossError) -> LossResult {
        try checkShapes(hidden: hidden, n: n, d: d, weight: weight, vocab: vocab, batch: batch, dHidden: dHidden, dWeight: dWeight)
        try batch.validate(vocab: vocab, needsSets: false)
        let supervised = (0..<n).reduce(0) { $0 + Int(batch.mask[$1]) }
        for i in 0..<(n * d) { dHidden[i] = 0 }
        guard supervised > 0 else { return LossResult(loss: 0, crossEntropy: 0, distillation: 0, supervised: 0) }
        let scale = 1 / Float(supervised)
        let rows = min(chunkRows, n)
        let z = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * vocab)
        defer { z.deallocate() }
        let H = hidden.baseAddress!, W = weight.baseAddress!
        let dH = dHidden.baseAddress!, dW = dWeight.baseAddress!
        nonisolated(unsafe) let zp = z.baseAddress!
        nonisolated(unsafe) let gold = batch.gold.baseAddress!, mask = batch.mask.baseAddress!
        let tasks = taskCount(items: rows, perThread: 2)
        let partial = UnsafeMutableBufferPointer<Double>.allocate(capacity: tasks)
        defer { partial.deallocate() }
        nonisolated(unsafe) let partp = partial.baseAddress!
        var ceTotal = 0.0
        var start = 0
        while start < n {
            let m = min(rows, n - start)
            let first = start
            // Z[m×V] = H_c[m×d] · W[V×d]ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(vocab), Int32(d),
                        1, H + first * d, Int32(d), W, Int32(d), 0, zp, Int32(vocab))
            let t = min(tasks, m)
            DispatchQueue.concurrentPerform(iterations: t) { task in
                var ce = 0.0
                for r in (m * task / t)..<(m * (task + 1) / t) {
                    let row = zp + r * vocab
                    let i = first + r
                    guard mask[i] != 0 else {
                        for j in 0..<vocab { row[j] = 0 }
                        continue
                    }
                    var mx = -Float.infinity
                    for j in 0..<vocab { mx = max(mx, row[j]) }
                    let g = Int(gold[i])
                    let zg = row[g]
                    var s: Float = 0
                    for j in 0..<vocab { let e = expf(row[j] - mx); row[j] = e; s += e }
                    ce += Double(mx + logf(s)) - Double(zg)
                    let f = scale / s
                    for j in 0..<vocab { row[j] *= f }
                    row[g] -= scale
                }
                partp[task] = ce
            }
            for task in 0..<t { ceTotal += partial[task] }
            // dH_c[m×d] = dZ[m×V] · W[V×d]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(d), Int32(vocab),
                        1, zp, Int32(vocab), W, Int32(d), 0, dH + first * d, Int32(d))
            // dW[V×d] += dZᵀ[V×m] · H_c[m×d]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(vocab), Int32(d), Int32(m),
                        1, zp, Int32(vocab), H + first * d, Int32(d), 1, dW, Int32(d))
            start += m
        }
        let ce = ceTotal / Double(supervised)
        return LossResult(loss: ce, crossEntropy: ce, distillation: 0, supervised: supervised)
    }
}
