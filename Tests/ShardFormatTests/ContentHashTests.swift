import Foundation
import LogitCore
import XCTest
@testable import ShardFormat

/// The content hash decides duplicate vs conflict for every stored key, so its definition must
/// not drift: the fast implementation is checked against a field-by-field reference encoding.
final class ContentHashTests: XCTestCase {
    /// The canonical encoding written the plain way (what SHARD_FORMAT.md's hash describes).
    func reference(_ r: SequenceRecord, scale: Float) -> UInt64 {
        var w = ByteWriter()
        let key = Array(r.key.utf8)
        w.u32(UInt32(key.count)); w.raw(key)
        w.u32(UInt32(r.tokens.count)); for t in r.tokens { w.u32(t) }
        if let m = r.lossMask { w.u8(1); w.u32(UInt32(m.count)); w.raw(m) } else { w.u8(0) }
        w.u32(UInt32(r.goldForced.count))
        for t in 0..<r.goldForced.count {
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            let keys = (lo..<hi).map { UInt64(LogprobQuantization.code(r.logprobs[$0], scale: scale)) << 32 | UInt64(r.ids[$0]) }.sorted()
            w.u32(UInt32(hi - lo)); w.u8(r.goldForced[t] ? 1 : 0)
            for k in keys { w.u64(k) }
        }
        return Checksum.xxh3(w.bytes)
    }

    func testFastHashEqualsTheReferenceEncoding() {
        let generator = RandomRecords(vocabSize: 70_000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 32), maxTokens: 60)
        for seed in 0..<300 {
            var r = generator.record(key: "k\(seed)-é", seed: UInt64(seed))
            if seed % 3 == 0 { r.lossMask = (0..<r.positions).map { UInt8(($0 + seed) % 2) } }
            // Reverse some sets: canonical order must not depend on the order sent.
            if seed % 2 == 0, r.positions > 0 {
                let lo = Int(r.setOffsets[0]), hi = Int(r.setOffsets[1])
                r.ids[lo..<hi].reverse(); r.logprobs[lo..<hi].reverse()
            }
            XCTAssertEqual(contentHash(r, logprobScale: 64), reference(r, scale: 64), "record \(seed)")
        }
    }

    func testHashIgnoresSetOrderButNotContent() {
        let generator = RandomRecords(vocabSize: 1000, policy: SelectionPolicy(tau: 0.9, kMin: 2, kMax: 16), maxTokens: 20)
        let r = generator.record(key: "a", seed: 5)
        var reordered = r
        let lo = Int(r.setOffsets[0]), hi = Int(r.setOffsets[1])
        reordered.ids[lo..<hi].reverse(); reordered.logprobs[lo..<hi].reverse()
        XCTAssertEqual(contentHash(r, logprobScale: 64), contentHash(reordered, logprobScale: 64))
        var changed = r
        changed.logprobs[lo] -= 0.5
        XCTAssertNotEqual(contentHash(r, logprobScale: 64), contentHash(changed, logprobScale: 64))
    }
}
