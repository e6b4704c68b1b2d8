import Foundation
import XCTest
import LogitCore
@testable import ShardFormat

/// Random but valid records: distinct ids, gold always present, Σp ≤ 1, some very negative
/// log-probs (escaped codes), some exact ties (canonical tie order), some forced gold sets.
struct RecordFactory {
    var rng: SplitMix64
    let vocab: Int
    let policy: SelectionPolicy

    init(seed: UInt64, vocab: Int, policy: SelectionPolicy = SelectionPolicy(tau: 0.95, kMin: 1, kMax: 8)) {
        rng = SplitMix64(seed: seed)
        self.vocab = vocab
        self.policy = policy
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }

    mutating func record(key: String, maxTokens: Int = 40) -> SequenceRecord {
        let length = int(2...maxTokens)
        let tokens = (0..<length).map { _ in UInt32(int(0...(vocab - 1))) }
        var sets: [CandidateSet] = []
        for t in 0..<(length - 1) {
            let gold = tokens[t + 1]
            let forced = rng.next() % 7 == 0
            let k = forced ? min(policy.kMax + 1, vocab) : int(min(policy.kMin, vocab)...min(policy.kMax, vocab))
            var ids: [UInt32] = [gold]
            while ids.count < k {
                let id = UInt32(int(0...(vocab - 1)))
                if !ids.contains(id) { ids.append(id) }
            }
            ids.shuffle(using: &rng)
            var lps: [Float] = []
            for j in 0..<k {
                switch rng.next() % 10 {
                case 0: lps.append(-Float(int(1100...5000)) - 0.3)     // below the u16 code range at 64/nat
                case 1 where j > 0: lps.append(lps[j - 1])               // exact tie
                default: lps.append(Float(log(rng.nextUnit() * 0.99 / Double(k) + 1e-12)))
                }
            }
            sets.append(CandidateSet(ids: ids, logprobs: lps, goldForced: forced && k == policy.kMax + 1))
        }
        // A forced set must hold kMax + 1 ids; unforced sets at most kMax.
        var mask: [UInt8]? = nil
        if rng.next() % 3 == 0 { mask = (0..<(length - 1)).map { _ in UInt8(rng.next() % 2) } }
        return SequenceRecord(key: key, tokens: tokens, lossMask: mask, sets: sets)
    }
}

func provenance(vocab: Int, policy: SelectionPolicy = SelectionPolicy(tau: 0.95, kMin: 1, kMax: 8),
                scale: Float = 64) -> ShardProvenance {
    ShardProvenance(datasetName: "test-set", vocabSize: vocab, policy: policy, teacherId: "teacher/v1",
                    tokenizerId: "tok", tokenizerHash: "abc123", logprobScale: scale)
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) -> String {
    let dir = NSTemporaryDirectory() + "shardtests-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Writes `records` to a sealed shard and returns its path and their locations.
func writeSealed(_ records: [SequenceRecord], provenance: ShardProvenance, options: ShardWriterOptions,
                 dir: String, name: String = "s") throws -> (String, [SequenceLocation], SealedShard) {
    let w = try ShardWriter(creating: dir + "/\(name).tmp", provenance: provenance, shardID: UUID(), options: options)
    var locations: [SequenceLocation] = []
    for r in records { locations.append(try w.append(r)) }
    let sealed = try w.seal(to: dir + "/\(name).shard")
    return (sealed.path, locations, sealed)
}
