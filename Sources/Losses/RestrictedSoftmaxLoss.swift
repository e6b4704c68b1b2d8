import Dispatch
import Foundation

/// The restricted LM head + loss of Logits Replay: for each supervised position, logits only for
/// the ids of its stored candidate set S (gather W's rows of S, K dot products), the softmax over
/// S, and
///
///     CE_S = logsumexp_S(z) − z_gold                     ∂/∂z_j = softmax_S(z)_j − [j = gold]
///     KD_S = T²·KL(q ‖ p),  q = softmax_S(lp/T),  p = softmax_S(z/T)     ∂/∂z_j = T·(p_j − q_j)
///     loss = mean over supervised positions of (1−α)·CE_S + α·KD_S
///
/// The teacher's stored log-probs are full-vocabulary; their log-partition cancels inside S, so
/// q is exact. Never forms N×V: cost is O(Σ K · d) instead of O(N · V · d).
///
/// Threads: phase 1 runs over positions in parallel (logits, softmax, loss, the per-candidate
/// dz and dH rows — each position writes only its own dH row and dz slice). Phase 2 accumulates
/// dW: entries are counting-sorted by vocab id (stable, so position order is kept) and the sorted
/// list is split at id boundaries, so each W row is owned by exactly one task and its
/// contributions are added in position order. No locks, no per-thread dW copies, and the result
/// is bit-identical whatever the thread count or scheduling.
///
/// Candidate ids within a set are assumed distinct (the store validates that on ingest).
public struct RestrictedSoftmaxLoss: LMHeadLoss {
    /// Weight α of the KD term, in [0, 1]. 0 = pure CE_S.
    public var kdAlpha: Float
    /// KD temperature T > 0.
    public var temperature: Float

    public init(kdAlpha: Float = 0, temperature: Float = 1) {
        self.kdAlpha = kdAlpha
        self.temperature = temperature
    }

    public func forwardBackward(hidden: UnsafeBufferPointer<Float>, n: Int, d: Int,
                                weight: UnsafeBufferPointer<Float>, vocab: Int, batch: CandidateBatch,
                                dHidden: UnsafeMutableBufferPointer<Float>,
                                dWeight: UnsafeMutableBufferPointer<Float>) throws(LossError) -> LossResult {
        guard kdAlpha.isFinite, kdAlpha >= 0, kdAlpha <= 1 else { throw .invalidInput("kdAlpha \(kdAlpha), expected in [0, 1]") }
        guard temperature.isFinite, temperature > 0 else { throw .invalidInput("temperature \(temperature), expected > 0") }
        try checkShapes(hidden: hidden, n: n, d: d, weight: weight, vocab: vocab, batch: batch, dHidden: dHidden, dWeight: dWeight)
        try batch.validate(vocab: vocab, needsSets: true)

        let mask = batch.mask, offs = batch.setOffsets
        var supervised = 0
        var largestK = 0
        for i in 0..<n where mask[i] != 0 {
            supervised += 1
            largestK = max(largestK, Int(offs[i + 1] - offs[i]))
        }
        let maxK = largestK
        guard supervised > 0 else {
            for i in 0..<(n * d) { dHidden[i] = 0 }
            return LossResult(loss: 0, crossEntropy: 0, distillation: 0, supervised: 0)
        }
        let total = batch.ids.count
        let scale = 1 / Float(supervised)
        let alpha = kdAlpha, temp = temperature

        // Per candidate: its dz, and the position it belongs to (−1: unsupervised).
        let dz = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(total, 1))
        let entryPos = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(total, 1))
        defer { dz.deallocate(); entryPos.deallocate() }

        // Phase 1: positions in parallel.
        let tasks = taskCount(items: n)
        let partial = UnsafeMutableBufferPointer<(ce: Double, kd: Double)>.allocate(capacity: tasks)
        defer { partial.deallocate() }
        nonisolated(unsafe) let H = hidden.baseAddress!, W = weight.baseAddress!
        nonisolated(unsafe) let dH = dHidden.baseAddress!, dzp = dz.baseAddress!, posp = entryPos.baseAddress!
        nonisolated(unsafe) let ids = batch.ids.baseAddress, lps = batch.logprobs.baseAddress
        nonisolated(unsafe) let gold = batch.gold.baseAddress!, maskp = mask.baseAddress!, offp = offs.baseAddress!
        nonisolated(unsafe) let partp = partial.baseAddress!
        DispatchQueue.concurrentPerform(iterations: tasks) { task in
            let lo = n * task / tasks, hi = n * (task + 1) / tasks
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 3 * maxK)
            defer { scratch.deallocate() }
            let z = scratch, pT = scratch + maxK, q = scratch + 2 * maxK
            var ceSum = 0.0, kdSum = 0.0
            for i in lo..<hi {
                let a = Int(offp[i]), b = Int(offp[i + 1]), k = b - a
                let hRow = H + i * d, dhRow = dH + i * d
                for c in 0..<d { dhRow[c] = 0 }
                guard maskp[i] != 0, let ids, let lps else {
                    for e in a..<b { posp[e] = -1; dzp[e] = 0 }
                    continue
                }
                var g = 0
                var m = -Float.infinity
                for j in 0..<k {
                    let id = Int(ids[a + j])
                    if ids[a + j] == gold[i] { g = j }
                    let v = dotProduct(hRow, W + id * d, d)
                    z[j] = v
                    m = max(m, v)
                }
                var s: Float = 0
                for j in 0..<k { s += expf(z[j] - m) }
                let invS = 1 / s
                ceSum += Double(m + logf(s) - z[g])
                for j in 0..<k { dzp[a + j] = (1 - alpha) * (expf(z[j] - m) * invS) }
                dzp[a + g] -= 1 - alpha
                if alpha > 0 {
                    // Student and teacher tempered softmaxes over S, both max-subtracted.
                    var sT: Float = 0
                    for j in 0..<k { pT[j] = expf((z[j] - m) / temp); sT += pT[j] }
                    var mq = -Float.infinity
                    for j in 0..<k { q[j] = lps[a + j] / temp; mq = max(mq, q[j]) }
                    var sq: Float = 0
                    for j in 0..<k { sq += expf(q[j] - mq) }
                    let logST = logf(sT), logSq = logf(sq)
                    var kl: Float = 0
                    for j in 0..<k {
                        let logQ = q[j] - mq - logSq
                        let logP = (z[j] - m) / temp - logST
                        let qj = expf(logQ)
                        kl += qj * (logQ - logP)
                        dzp[a + j] += alpha * temp * (pT[j] / sT - qj)
                    }
                    kdSum += Double(temp * temp * kl)
                }
                for j in 0..<k {
                    let v = dzp[a + j] * scale
                    dzp[a + j] = v
                    posp[a + j] = Int32(i)
                    axpy(v, W + Int(ids[a + j]) * d, dhRow, d)
                }
            }
            partp[task] = (ceSum, kdSum)
        }
        var ce = 0.0, kd = 0.0
        for t in 0..<tasks { ce += partial[t].ce; kd += partial[t].kd }
        ce /= Double(supervised)
        kd /= Double(supervised)

        // Phase 2: dW rows, each owned by one task.
        accumulateCandidateWeightGradient(ids: batch.ids, dz: UnsafeBufferPointer(dz), entryPos: UnsafeBufferPointer(entryPos),
                                 hidden: H, d: d, vocab: vocab, dWeight: dWeight.baseAddress!)
        let loss = Double(1 - alpha) * ce + Double(alpha) * kd
        return LossResult(loss: loss, crossEntropy: ce, distillation: alpha > 0 ? kd : 0, supervised: supervised)
    }
}
