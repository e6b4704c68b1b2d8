import Foundation

/// Valid random sequence records, a pure function of (key, seed): tests and the crash-test
/// writer regenerate exactly what was sent, to check what came back.
public struct RandomRecords: Sendable {
    public var vocabSize: Int
    public var policy: SelectionPolicy
    public var maxTokens: Int

    public init(vocabSize: Int, policy: SelectionPolicy, maxTokens: Int = 64) {
        self.vocabSize = vocabSize
        self.policy = policy
        self.maxTokens = max(maxTokens, 2)
    }

    public func record(key: String, seed: UInt64) -> SequenceRecord {
        var keyHash: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { keyHash = (keyHash ^ UInt64(b)) &* 0x100_0000_01B3 }
        var rng = SplitMix64(seed: seed ^ keyHash)
        let length = 2 + Int(rng.next() % UInt64(maxTokens - 1))
        let tokens = (0..<length).map { _ in UInt32(rng.next() % UInt64(vocabSize)) }
        let kLow = min(policy.kMin, vocabSize)
        let kHigh = min(policy.kMax, vocabSize)
        var sets: [CandidateSet] = []
        for t in 0..<(length - 1) {
            let gold = tokens[t + 1]
            var k = kLow + Int(rng.next() % UInt64(kHigh - kLow + 1))
            var ids: [UInt32] = []
            var seen = Set<UInt32>()
            while ids.count < k {
                // Mostly small ids (as real tokenizers' frequent tokens are), some anywhere.
                let id = rng.next() % 4 == 0 ? UInt32(rng.next() % UInt64(vocabSize))
                                             : UInt32(rng.next() % UInt64(min(vocabSize, 512)))
                if seen.insert(id).inserted { ids.append(id) }
            }
            var forced = false
            if !seen.contains(gold) {
                if rng.next() % 2 == 0 || k == vocabSize {
                    ids[Int(rng.next() % UInt64(k))] = gold
                } else {
                    ids.append(gold)
                    forced = true
                    k += 1
                }
            }
            // Probabilities: a random split of a covered mass in (0.05, 1).
            let covered = 0.05 + 0.95 * rng.nextUnit()
            var weights = (0..<k).map { _ in -log(max(rng.nextUnit(), 1e-12)) }
            let total = weights.reduce(0, +)
            for i in weights.indices { weights[i] = weights[i] / total * covered }
            let lps = weights.map { Float(max(log($0), -300)) }.map { min($0, 0) }
            sets.append(CandidateSet(ids: ids, logprobs: lps, goldForced: forced))
        }
        let mask: [UInt8]? = rng.next() % 3 == 0 ? (0..<(length - 1)).map { _ in UInt8(rng.next() % 2) } : nil
        return SequenceRecord(key: key, tokens: tokens, lossMask: mask, sets: sets)
    }
}
