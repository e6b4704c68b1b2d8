import Foundation
import XCTest
import LogitCore
@testable import ShardFormat

final class ShardRoundTripTests: XCTestCase {
    func records(seed: UInt64, count: Int, vocab: Int) -> [SequenceRecord] {
        var f = RecordFactory(seed: seed, vocab: vocab)
        return (0..<count).map { f.record(key: "seq-\(seed)-\($0)") }
    }

    /// Decoded = canonicalized(original): ids exact, log-probs within 0.5/scale of the input.
    func assertMatches(_ decoded: SequenceRecord, _ original: SequenceRecord, scale: Float,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(decoded, canonicalized(original, logprobScale: scale), file: file, line: line)
        for t in 0..<original.positions {
            let set = original.set(at: t), got = decoded.set(at: t)
            XCTAssertEqual(Set(set.ids), Set(got.ids), file: file, line: line)
            for (j, id) in set.ids.enumerated() {
                let k = got.ids.firstIndex(of: id)!
                let err = abs(got.logprobs[k] - set.logprobs[j])
                XCTAssertLessThanOrEqual(err, 0.5 / scale + abs(set.logprobs[j]) * 1e-6, "lp error", file: file, line: line)
            }
            XCTAssertTrue(zip(got.logprobs, got.logprobs.dropFirst()).allSatisfy { $0 >= $1 }, "canonical order", file: file, line: line)
        }
    }

    func testRoundTripEveryCodecAndAccess() throws {
        let dir = temporaryDirectory(self)
        let input = records(seed: 1, count: 80, vocab: 151_936)
        for codec in BlockCodec.allCases {
            let opts = ShardWriterOptions(codec: codec, zstdLevel: 5, targetBlockBytes: 4096)
            let (path, locations, sealed) = try writeSealed(input, provenance: provenance(vocab: 151_936), options: opts,
                                                            dir: dir, name: "c\(codec.rawValue)")
            XCTAssertGreaterThan(sealed.blocks, 3, "small target block size must cut several blocks")
            XCTAssertEqual(sealed.sequences, input.count)
            XCTAssertEqual(try ShardReader.fileHash(path: path), sealed.fileHash)
            XCTAssertEqual(UInt64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int), sealed.bytes)
            for access in [ShardReader.Access.mmap, .pread] {
                let reader = try ShardReader(sealedAt: path, access: access)
                XCTAssertTrue(reader.isSealed)
                XCTAssertEqual(reader.provenance, provenance(vocab: 151_936))
                XCTAssertEqual(reader.blockCount, sealed.blocks)
                var reused = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
                for (r, loc) in zip(input, locations) {
                    try reader.decode(block: loc.block, ordinal: loc.ordinal, into: &reused)
                    assertMatches(reused, r, scale: 64)
                }
                var all: [SequenceRecord] = []
                var seen = 0
                for b in 0..<reader.blockCount {
                    XCTAssertEqual(reader.blockInfo(b).codec, codec)
                    try reader.verifyBlock(b)
                    try reader.decodeBlock(b, into: &all)
                    for r in all { XCTAssertEqual(r, canonicalized(input[seen], logprobScale: 64)); seen += 1 }
                }
                XCTAssertEqual(seen, input.count)
            }
        }
    }

    func testIdWidthsFromOneToFourBytes() throws {
        let dir = temporaryDirectory(self)
        for vocab in [9, 256, 257, 65_536, 70_000, (1 << 24) + 5] {
            let input = records(seed: UInt64(vocab), count: 12, vocab: vocab)
            let (path, locations, _) = try writeSealed(input, provenance: provenance(vocab: vocab),
                                                       options: ShardWriterOptions(), dir: dir, name: "v\(vocab)")
            let reader = try ShardReader(sealedAt: path)
            for (r, loc) in zip(input, locations) {
                assertMatches(try reader.sequence(block: loc.block, ordinal: loc.ordinal), r, scale: 64)
            }
        }
    }

    func testConfigurableScaleBoundsTheError() throws {
        let dir = temporaryDirectory(self)
        for scale: Float in [1, 16, 1000] {
            let input = records(seed: 7, count: 10, vocab: 5000)
            let (path, locations, _) = try writeSealed(input, provenance: provenance(vocab: 5000, scale: scale),
                                                       options: ShardWriterOptions(codec: .lz4), dir: dir, name: "s\(Int(scale))")
            let reader = try ShardReader(sealedAt: path)
            XCTAssertEqual(reader.provenance.logprobScale, scale)
            for (r, loc) in zip(input, locations) {
                assertMatches(try reader.sequence(block: loc.block, ordinal: loc.ordinal), r, scale: scale)
            }
        }
    }

    /// At scale 100, codes 16777216 and 16777217 decode to one f32 value. The writer orders by
    /// code (then id), so the set reads back with equal log-probs and descending ids — which is
    /// canonical, and `verifyBlock` must say so. (A true code tie out of id order is still refused:
    /// BlockContentValidationTests plants one.)
    func testVerifyReadsTiesFromCodesNotFromTheirFloatValues() throws {
        let dir = temporaryDirectory(self)
        let near = SequenceRecord(key: "f32-tie", tokens: [1, 9], sets: [
            CandidateSet(ids: [3, 9], logprobs: [-167_772.17, -167_772.16], goldForced: false)])
        let (path, _, _) = try writeSealed([near], provenance: provenance(vocab: 50, scale: 100),
                                           options: ShardWriterOptions(codec: .none), dir: dir, name: "tie")
        let reader = try ShardReader(sealedAt: path)
        let back = try reader.sequence(block: 0, ordinal: 0)
        XCTAssertEqual(back.ids, [9, 3], "code 16777216 (id 9) before 16777217 (id 3)")
        XCTAssertEqual(back.logprobs[0], back.logprobs[1], "the two codes share one f32 value")
        XCTAssertNoThrow(try reader.verifyBlock(0))

        // A true tie (the same code) is stored ids ascending and verifies.
        let equal = SequenceRecord(key: "code-tie", tokens: [1, 9], sets: [
            CandidateSet(ids: [9, 3], logprobs: [-1.5, -1.5], goldForced: false)])
        let (tied, _, _) = try writeSealed([equal], provenance: provenance(vocab: 50, scale: 100),
                                           options: ShardWriterOptions(codec: .none), dir: dir, name: "tied")
        XCTAssertEqual(try ShardReader(sealedAt: tied).sequence(block: 0, ordinal: 0).ids, [3, 9])
        XCTAssertNoThrow(try ShardReader(sealedAt: tied).verifyBlock(0))
    }

    func testCanonicalizationAndContentHash() {
        var f = RecordFactory(seed: 3, vocab: 1000)
        let r = f.record(key: "k")
        let c = canonicalized(r, logprobScale: 64)
        XCTAssertEqual(canonicalized(c, logprobScale: 64), c, "canonicalization is idempotent")
        XCTAssertEqual(contentHash(r, logprobScale: 64), contentHash(c, logprobScale: 64))
        // Reordering a set does not change the hash; a different log-prob code does.
        var shuffled = r
        let lo = Int(r.setOffsets[0]), hi = Int(r.setOffsets[1])
        shuffled.ids[lo..<hi].reverse()
        shuffled.logprobs[lo..<hi].reverse()
        XCTAssertEqual(contentHash(shuffled, logprobScale: 64), contentHash(r, logprobScale: 64))
        var changed = r
        changed.logprobs[lo] -= 0.1
        XCTAssertNotEqual(contentHash(changed, logprobScale: 64), contentHash(r, logprobScale: 64))
        var rekeyed = r
        rekeyed.key = "other"
        XCTAssertNotEqual(contentHash(rekeyed, logprobScale: 64), contentHash(r, logprobScale: 64))
        var masked = r
        masked.lossMask = [UInt8](repeating: 1, count: r.positions)
        XCTAssertNotEqual(contentHash(masked, logprobScale: 64), contentHash(r, logprobScale: 64))
    }

    func testQuantizationErrorBoundAndClamp() {
        for lp in stride(from: Float(-256), through: 0, by: 0.0137) {
            let back = LogprobQuantization.value(LogprobQuantization.code(lp, scale: 64), inverseScale: 1 / 64)
            XCTAssertLessThanOrEqual(abs(back - lp), 1 / 128 + 1e-5)
        }
        XCTAssertEqual(LogprobQuantization.code(-.greatestFiniteMagnitude, scale: 64), UInt32.max)
        XCTAssertEqual(LogprobQuantization.code(-0.0, scale: 64), 0)
    }
}
