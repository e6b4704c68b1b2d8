import Foundation

/// The supervision of N positions in the flat CSR layout the replay batches hand out:
/// position `i` has candidate set `ids[setOffsets[i] ..< setOffsets[i+1]]` with the teacher's
/// log-probs, gold (target) id `gold[i]` and loss mask `mask[i]` (0 or 1). A view: it borrows
/// the buffers, so the caller keeps them alive for the call.
public struct CandidateBatch {
    public var setOffsets: UnsafeBufferPointer<UInt32>
    public var ids: UnsafeBufferPointer<UInt32>
    public var logprobs: UnsafeBufferPointer<Float>
    public var gold: UnsafeBufferPointer<UInt32>
    public var mask: UnsafeBufferPointer<UInt8>
    /// Which draw a sampling loss (`SampledTailLoss`) takes its negatives from. The trainer sets it
    /// to the step number, so a resumed run draws the same negatives as an uninterrupted one.
    public var negativeDraw: UInt64

    public init(setOffsets: UnsafeBufferPointer<UInt32>, ids: UnsafeBufferPointer<UInt32>,
                logprobs: UnsafeBufferPointer<Float>, gold: UnsafeBufferPointer<UInt32>, mask: UnsafeBufferPointer<UInt8>,
                negativeDraw: UInt64 = 0) {
        self.setOffsets = setOffsets
        self.ids = ids
        self.logprobs = logprobs
        self.gold = gold
        self.mask = mask
        self.negativeDraw = negativeDraw
    }

    /// Positions in the batch.
    public var count: Int { gold.count }

    /// Checks shapes, CSR monotonicity and id range before any kernel trusts them (a bad offset
    /// would otherwise read out of bounds). `needsSets`: the restricted loss also needs every
    /// supervised set to contain its gold id.
    func validate(vocab: Int, needsSets: Bool) throws(LossError) {
        let n = gold.count
        guard mask.count == n else { throw .invalidInput("mask has \(mask.count) entries, gold has \(n)") }
        for i in 0..<n {
            guard Int(gold[i]) < vocab else { throw .invalidInput("gold[\(i)] = \(gold[i]), expected < vocab \(vocab)") }
            guard mask[i] <= 1 else { throw .invalidInput("mask[\(i)] = \(mask[i]), expected 0 or 1") }
        }
        guard needsSets else { return }
        guard setOffsets.count == n + 1 else {
            throw .invalidInput("setOffsets has \(setOffsets.count) entries, expected positions + 1 = \(n + 1)")
        }
        guard ids.count == logprobs.count else { throw .invalidInput("\(ids.count) ids but \(logprobs.count) logprobs") }
        guard setOffsets[0] == 0, Int(setOffsets[n]) == ids.count else {
            throw .invalidInput("setOffsets must start at 0 and end at ids.count = \(ids.count)")
        }
        for i in 0..<n {
            let lo = Int(setOffsets[i]), hi = Int(setOffsets[i + 1])
            guard lo <= hi else { throw .invalidInput("setOffsets decrease at position \(i)") }
            if mask[i] == 0 { continue }
            guard hi > lo else { throw .invalidInput("supervised position \(i) has an empty candidate set") }
            var goldSeen = false
            for j in lo..<hi {
                guard Int(ids[j]) < vocab else {
                    throw .invalidInput("position \(i) candidate \(j - lo) id \(ids[j]), expected < vocab \(vocab)")
                }
                guard logprobs[j].isFinite else { throw .invalidInput("position \(i) candidate \(j - lo) log-prob is not finite") }
                if ids[j] == gold[i] { goldSeen = true }
            }
            guard goldSeen else { throw .invalidInput("position \(i): gold id \(gold[i]) is not in its candidate set") }
        }
    }
}

/// What one forward + backward returned. `loss` is what was differentiated:
/// mean over supervised positions of `(1−α)·CE + α·KD`.
public struct LossResult: Sendable, Equatable {
    public var loss: Double
    /// Mean CE (restricted CE_S or full CE) over supervised positions.
    public var crossEntropy: Double
    /// Mean KD_S over supervised positions (0 when α = 0 or for the full loss).
    public var distillation: Double
    /// Positions with mask 1.
    public var supervised: Int

    public init(loss: Double, crossEntropy: Double, distillation: Double, supervised: Int) {
        self.loss = loss
        self.crossEntropy = crossEntropy
        self.distillation = distillation
        self.supervised = supervised
    }
}

/// A fused LM head + loss: logits `z = H·Wᵀ` for the positions that need them, the loss, and
/// its gradients. Fused so that an implementation is free never to form the N×V logits.
///
/// - `hidden`: H, N×d row-major. `weight`: W, V×d row-major (the LM-head / tied embedding).
/// - `dHidden` (N×d) is overwritten with ∂loss/∂H (rows of unsupervised positions are 0).
/// - `dWeight` (V×d) is *accumulated* into (+=), so several batches or tied weights can share it.
public protocol LMHeadLoss: Sendable {
    func forwardBackward(hidden: UnsafeBufferPointer<Float>, n: Int, d: Int,
                         weight: UnsafeBufferPointer<Float>, vocab: Int, batch: CandidateBatch,
                         dHidden: UnsafeMutableBufferPointer<Float>,
                         dWeight: UnsafeMutableBufferPointer<Float>) throws(LossError) -> LossResult
}

/// Shape checks shared by the implementations.
func checkShapes(hidden: UnsafeBufferPointer<Float>, n: Int, d: Int, weight: UnsafeBufferPointer<Float>, vocab: Int,
                 batch: CandidateBatch, dHidden: UnsafeMutableBufferPointer<Float>,
                 dWeight: UnsafeMutableBufferPointer<Float>) throws(LossError) {
    guard n >= 0, d >= 1, vocab >= 1 else { throw .invalidInput("need n ≥ 0, d ≥ 1, vocab ≥ 1; got n=\(n) d=\(d) vocab=\(vocab)") }
    let (nd, o1) = n.multipliedReportingOverflow(by: d)
    let (vd, o2) = vocab.multipliedReportingOverflow(by: d)
    guard !o1, !o2 else { throw .invalidInput("n·d or vocab·d overflows") }
    guard hidden.count == nd else { throw .invalidInput("hidden has \(hidden.count) floats, expected n·d = \(nd)") }
    guard dHidden.count == nd else { throw .invalidInput("dHidden has \(dHidden.count) floats, expected n·d = \(nd)") }
    guard weight.count == vd else { throw .invalidInput("weight has \(weight.count) floats, expected vocab·d = \(vd)") }
    guard dWeight.count == vd else { throw .invalidInput("dWeight has \(dWeight.count) floats, expected vocab·d = \(vd)") }
    guard batch.count == n else { throw .invalidInput("batch has \(batch.count) positions, hidden has n = \(n)") }
}
