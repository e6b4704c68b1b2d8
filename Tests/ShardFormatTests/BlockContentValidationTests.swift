import Foundation
import XCTest
import LogitCore
@testable import ShardFormat

/// Payloads that pass the checksum (a buggy or hostile writer) but break the content rules:
/// each must be a typed error naming the block and the rule, never a crash or wrong data.
/// Byte offsets are those of the worked example's 50-byte payload in SHARD_FORMAT.md.
final class BlockContentValidationTests: XCTestCase {
    func examplePayload() -> ([UInt8], BlockInfo) {
        let prov = ShardWorkedExampleTests.provenance
        var b = BlockBuilder(idBytes: prov.idBytes, scale: prov.logprobScale)
        b.append(ShardWorkedExampleTests.record)
        let raw = b.build()
        let info = BlockInfo(offset: 128, storedBytes: raw.count, rawBytes: raw.count, codec: .none, checksum: 0,
                             firstSequence: 0, sequenceCount: 1, positions: b.positions, candidates: b.candidates)
        return (raw, info)
    }

    /// Decodes the tampered payload; returns the error message (nil if it decoded and verified).
    func outcome(_ edit: (inout [UInt8]) -> Void) -> String? {
        var (raw, info) = examplePayload()
        edit(&raw)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: raw.count, alignment: 64)
        raw.withUnsafeBytes { buffer.copyMemory(from: $0) }
        info.rawBytes = raw.count
        do throws(ShardError) {
            let block: DecodedBlock
            do throws(ShardError) {
                block = try DecodedBlock(raw: buffer, info: info, provenance: ShardWorkedExampleTests.provenance, path: "p", block: 7)
            } catch {
                buffer.deallocate()
                throw error
            }
            var r = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
            try block.decode(0, into: &r)
            try block.verifySemantics(r, sequence: 0)
            return nil
        } catch {
            XCTAssertEqual(error.block, 7)
            XCTAssertEqual(error.path, "p")
            return error.reason
        }
    }

    func assertRejected(_ fragment: String, file: StaticString = #filePath, line: UInt = #line, _ edit: (inout [UInt8]) -> Void) {
        let reason = outcome(edit)
        XCTAssertNotNil(reason, "tampered payload accepted (expected '\(fragment)')", file: file, line: line)
        if let reason { XCTAssertTrue(reason.contains(fragment), "'\(reason)' lacks '\(fragment)'", file: file, line: line) }
    }

    func testUntamperedExampleDecodes() {
        XCTAssertNil(outcome { _ in })
    }

    func testEachContentRuleIsEnforced() {
        assertRejected("candidate id 10 ≥ vocab size 10") { $0[32] = 10 }
        assertRejected("first token 12 ≥ vocab size 10") { $0[20] = 12 }
        assertRejected("K = 5, expected 1…4") { $0[22] = 5 }
        assertRejected("gold index lies outside") { $0[28] = 9 }
        assertRejected("gold index lies outside") { $0[21] = 3; $0[22] = 3 }
        assertRejected("id width class 2, expected 1…1") { $0[25] = 2 }
        assertRejected("section sizes add up to") { $0[8] = 0 }
        assertRejected("unknown flag bits") { $0[14] = 2 }
        assertRejected("key is not valid UTF-8") { $0[15] = 0xFF }
        assertRejected("escapes do not match") { $0[45] = 0x10 }
        assertRejected("declares 1 tokens") { $0[0] = 1 }
        assertRejected("K values sum to 5") { $0[21] = 1 }
        assertRejected("appears twice") { $0[33] = 7 }
        assertRejected("K = kMax + 1 without gold_forced") { $0[31] = 0 }
        assertRejected("not in ascending id order") { $0[39] = 0x20; $0[43] = 0; $0[34] = 3; $0[35] = 1 }
    }
}
