import COpenBLAS
import Dispatch
import Foundation
import LogitCore

/// The tail-aware restricted loss (docs/DESIGN.md §6): classes S ∪ {tail} instead of S alone,
/// so the ~V tokens outside each stored set are held down, as the full softmax does, without
/// forming the N×V logits.
///
/// Per call, n distinct ids N are drawn uniformly from the vocabulary and shared by all positions
/// (one GEMM H·W_Nᵀ). For position i with set S (K ids), N_i = N ∖ S (n′ ids) stands in for the
/// V − K ids outside S with the Horvitz–Thompson weight w = (V − K)/n′:
///
///     Ẑ_out = w · Σ_{N_i} e^{z_j}          (unbiased for Z_out = Σ_{V∖S} e^{z_j})
///     Ẑ     = Σ_S e^{z_j} + Ẑ_out,   p̂_j = e^{z_j}/Ẑ on S,  ρ̂ = Ẑ_out/Ẑ  (the student's tail)
///     CE    = log Ẑ − z_gold                                   (sampled softmax, log-Q corrected)
///     KD    = Σ_S t_j (log t_j − log p̂_j) + ρ_T (log ρ_T − log ρ̂)
///     loss  = mean over supervised positions of (1−α)·CE + α·KD
///
/// t_j = e^{lp_j} are the teacher's stored probabilities and ρ_T = 1 − Σ_S t_j its outside mass
/// (clamped at 0 and renormalised, since quantisation can push Σ_S t_j a little above 1). The KD
/// term is at temperature 1: the stored log-probs give the teacher's tail mass only there.
/// Gradients: ∂/∂z_j = p̂_j − (1−α)[j = gold] − α t_j on S; on a sampled outside id
/// p̂_j − α ρ_T p̂_j/ρ̂ — every drawn outside token is pushed down, harder when the student puts
/// more mass outside than the teacher did. When N_i is empty (S is everything, or every draw hit
/// S) the tail vanishes and the loss is CE_S/KD_S exactly; with S = V it is the full CE.
///
/// Cost per position: the restricted loss's K dot products and axpys (≈ 6Kd FLOP, gathered) plus
/// 6nd FLOP in three dense GEMMs (Z_N, dH += dZ_N·W_N, dW_N = dZ_Nᵀ·H).
public struct SampledTailLoss: LMHeadLoss {
    /// Ids drawn per call, n (capped at the vocabulary).
    public var negatives: Int
    /// Weight α of the KD term over S ∪ {tail}, in [0, 1].
    public var kdAlpha: Float
    /// Seed of the draws; the draw itself is chosen by `CandidateBatch.negativeDraw`.
    public var seed: UInt64

    public init(negatives: Int = 256, kdAlpha: Float = 0, seed: UInt64 = 0) {
        self.negatives = negatives
        self.kdAlpha = kdAlpha
        self.seed = seed
    }

    /// The `count` distinct ids (ascending) of draw `draw`: Floyd's sampling from one SplitMix64
    /// stream, so the draw is the same on every machine and needs no V-sized scratch.
    public static func drawNegatives(count: Int, vocab: Int, seed: UInt64, draw: UInt64) -> [UInt32] {
        var rng = SplitMix64(seed: SplitMix64.mix(seed ^ SplitMix64.mix(draw &+ 0x5441_494C_4E45_4701)))
        var chosen = Set<UInt32>(minimumCapacity: count)
        for j in (vocab - count)..<vocab {
            let t = UInt32(rng.below(j + 1))
            if !chosen.insert(t).inserted { chosen.insert(UInt32(j)) }
        }
        return chosen.sorted()
    }

    public func forwardBackward(hidden: UnsafeBufferPointer<Float>, n: Int, d: Int,
                                weight: UnsafeBufferPointer<Float>, vocab: Int, batch: CandidateBatch,
                                dHidden: UnsafeMutableBufferPointer<Float>,
                                dWeight: UnsafeMutableBufferPointer<Float>) throws(LossError) -> LossResult {
        guard kdAlpha.isFinite, kdAlpha >= 0, kdAlpha <= 1 else { throw .invalidInput("kdAlpha \(kdAlpha), expected in [0, 1]") }
        guard negatives >= 1 else { throw .invalidInput("negatives \(negatives), expected ≥ 1 (use the restricted loss for none)") }
        try checkShapes(hidden: hidden, n: n, d: d, weight: weight, vocab: vocab, batch: batch, dHidden: dHidden, dWeight: dWeight)
        try batch.validate(vocab: vocab, needsSets: true)

        let mask = batch.mask, offs = batch.setOffsets
        var supervised = 0, largestK = 0
        for i in 0..<n where mask[i] != 0 {
            supervised += 1
            largestK = max(largestK, Int(offs[i + 1] - offs[i]))
        }
        guard supervised > 0 else {
            for i in 0..<(n * d) { dHidden[i] = 0 }
            return LossResult(loss: 0, crossEntropy: 0, distillation: 0, supervised: 0)
        }
        let maxK = largestK, total = batch.ids.count
        let scale = 1 / Float(supervised), alpha = kdAlpha

        // The shared draw, each vocabulary id's slot in it, and W_N gathered contiguous.
        let sampled = Self.drawNegatives(count: min(negatives, vocab), vocab: vocab, seed: seed, draw: batch.negativeDraw)
        let ns = sampled.count
        let slot = UnsafeMutableBufferPointer<Int32>.allocate(capacity: vocab)
        let wN = UnsafeMutableBufferPointer<Float>.allocate(capacity: ns * d)
        let zN = UnsafeMutableBufferPointer<Float>.allocate(capacity: n * ns)
        let dz = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(total, 1))
        let entryPos = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(total, 1))
        defer { slot.deallocate(); wN.deallocate(); zN.deallocate(); dz.deallocate(); entryPos.deallocate() }
        slot.initialize(repeating: -1)
        nonisolated(unsafe) let H = hidden.baseAddress!, W = weight.baseAddress!
        for (r, id) in sampled.enumerated() {
            slot[Int(id)] = Int32(r)
            (wN.baseAddress! + r * d).update(from: W + Int(id) * d, count: d)
        }
        // Z_N[n×ns] = H[n×d] · W_N[ns×d]ᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(ns), Int32(d),
                    1, H, Int32(d), wN.baseAddress!, Int32(d), 0, zN.baseAddress!, Int32(ns))

        // Phase 1: positions in parallel. Each writes its own dH row, its S slice of dz and its
        // row of Z_N, which becomes ∂loss/∂Z_N (0 for hits and unsupervised positions).
        let tasks = taskCount(items: n)
        let partial = UnsafeMutableBufferPointer<(ce: Double, kd: Double)>.allocate(capacity: tasks)
        defer { partial.deallocate() }
        nonisolated(unsafe) let dH = dHidden.baseAddress!, dzp = dz.baseAddress!, posp = entryPos.baseAddress!
        nonisolated(unsafe) let ids = batch.ids.baseAddress, lps = batch.logprobs.baseAddress
        nonisolated(unsafe) let gold = batch.gold.baseAddress!, maskp = mask.baseAddress!, offp = offs.baseAddress!
        nonisolated(unsafe) let partp = partial.baseAddress!, slotp = slot.baseAddress!, zNp = zN.baseAddress!
        DispatchQueue.concurrentPerform(iterations: tasks) { task in
            let lo = n * task / tasks, hi = n * (task + 1) / tasks
            let z = UnsafeMutablePointer<Float>.allocate(capacity: 2 * maxK)
            let hit = UnsafeMutablePointer<Bool>.allocate(capacity: ns)
            defer { z.deallocate(); hit.deallocate() }
            let t = z + maxK
            var ceSum = 0.0, kdSum = 0.0
            for i in lo..<hi {
                let a = Int(offp[i]), b = Int(offp[i + 1]), k = b - a
                let dhRow = dH + i * d, zRow = zNp + i * ns
                for c in 0..<d { dhRow[c] = 0 }
                guard maskp[i] != 0, let ids, let lps else {
                    for e in a..<b { posp[e] = -1; dzp[e] = 0 }
                    for r in 0..<ns { zRow[r] = 0 }
                    continue
                }
                hit.update(repeating: false, count: ns)
                var outside = ns
                var g = 0, mS = -Float.infinity
                for j in 0..<k {
                    let id = Int(ids[a + j])
                    if ids[a + j] == gold[i] { g = j }
                    let s = Int(slotp[id])
                    if s >= 0 { hit[s] = true; outside -= 1 }
                    z[j] = dotProduct(H + i * d, W + id * d, d)
                    mS = max(mS, z[j])
                }
                // The tail's log-sum-exp, weight included, with its own max so ρ̂ never underflows.
                let hasTail = outside > 0
                let logW = hasTail ? logf(Float(vocab - k) / Float(outside)) : 0
                var lseOut = -Float.infinity
                if hasTail {
                    var mO = -Float.infinity
                    for r in 0..<ns where !hit[r] { mO = max(mO, zRow[r]) }
                    var sO: Float = 0
                    for r in 0..<ns where !hit[r] { sO += expf(zRow[r] - mO) }
                    lseOut = mO + logf(sO) + logW
                }
                var sS: Float = 0
                for j in 0..<k { sS += expf(z[j] - mS) }
                let lseS = mS + logf(sS)
                let m = max(lseS, lseOut)
                let logZ = m + logf(expf(lseS - m) + (hasTail ? expf(lseOut - m) : 0))
                ceSum += Double(logZ - z[g])

                // Teacher over S ∪ {tail}: t_j and ρ_T, renormalised (ρ_T = 0 without a tail).
                var rhoT: Float = 0
                if alpha > 0 {
                    var sumT: Float = 0
                    for j in 0..<k { t[j] = expf(lps[a + j]); sumT += t[j] }
                    rhoT = hasTail ? max(0, 1 - sumT) : 0
                    let inv = 1 / (sumT + rhoT)
                    var kl: Float = 0
                    for j in 0..<k {
                        t[j] *= inv
                        if t[j] > 0 { kl += t[j] * (logf(t[j]) - (z[j] - logZ)) }
                    }
                    rhoT *= inv
                    if rhoT > 0 { kl += rhoT * (logf(rhoT) - (lseOut - logZ)) }
                    kdSum += Double(kl)
                }
                for j in 0..<k {
                    var v = expf(z[j] - logZ)
                    if alpha > 0 { v -= alpha * t[j] }
                    if j == g { v -= 1 - alpha }
                    v *= scale
                    dzp[a + j] = v
                    posp[a + j] = Int32(i)
                    axpy(v, W + Int(ids[a + j]) * d, dhRow, d)
                }
                if hasTail {
                    // p̂_j = e^{z_j + log w − log Ẑ};  p̂_j/ρ̂ = e^{z_j + log w − lseOut}.
                    for r in 0..<ns {
                        guard !hit[r] else { zRow[r] = 0; continue }
                        let zw = zRow[r] + logW
                        zRow[r] = scale * (expf(zw - logZ) - alpha * rhoT * expf(zw - lseOut))
                    }
                } else {
                    for r in 0..<ns { zRow[r] = 0 }
                }
            }
            partp[task] = (ceSum, kdSum)
        }
        var ce = 0.0, kd = 0.0
        for task in 0..<tasks { ce += partial[task].ce; kd += partial[task].kd }
        ce /= Double(supervised)
        kd /= Double(supervised)

        // dH += dZ_N · W_N
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(ns),
                    1, zN.baseAddress!, Int32(ns), wN.baseAddress!, Int32(d), 1, dH, Int32(d))
        // dW_N = dZ_Nᵀ · H (into wN's storage, no longer needed), scattered to the drawn rows.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(ns), Int32(d), Int32(n),
                    1, zN.baseAddress!, Int32(ns), H, Int32(d), 0, wN.baseAddress!, Int32(d))
        let dW = dWeight.baseAddress!
        for (r, id) in sampled.enumerated() {
            let src = wN.baseAddress! + r * d, dst = dW + Int(id) * d
            for c in 0..<d { dst[c] += src[c] }
        }
        accumulateCandidateWeightGradient(ids: batch.ids, dz: UnsafeBufferPointer(dz), entryPos: UnsafeBufferPointer(entryPos),
                                          hidden: H, d: d, vocab: vocab, dWeight: dW)
        let loss = Double(1 - alpha) * ce + Double(alpha) * kd
        return LossResult(loss: loss, crossEntropy: ce, distillation: alpha > 0 ? kd : 0, supervised: supervised)
    }
}
