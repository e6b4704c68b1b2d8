import Foundation
import LogitCore
import XCTest
@testable import WireFormat

final class WireFormatTests: XCTestCase {
    let example = SequenceRecord(key: "a", tokens: [5, 7, 9], sets: [
        CandidateSet(ids: [7, 2], logprobs: [-0.1, -2.5], goldForced: false),
        CandidateSet(ids: [9], logprobs: [-0.05], goldForced: true),
    ])

    func decode(_ bytes: [UInt8], vocab: Int = 10, maxK: Int = 4) throws(WireError) -> WireBatch {
        var decoder = WireBatchDecoder()
        var result: Result<WireBatch, WireError>!
        bytes.withUnsafeBytes { body in
            result = Result { () throws(WireError) in try decoder.decode(body, expectedVocab: vocab, maxK: maxK) }
        }
        return try result.get()
    }

    /// The worked example of schema/WIRE_FORMAT.md, byte for byte.
    func testWorkedExampleOfTheSpecification() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let spec = try String(contentsOfFile: root.path + "/schema/WIRE_FORMAT.md", encoding: .utf8)
        let block = spec.components(separatedBy: "## Worked example")[1].components(separatedBy: "```")[1]
        let hex = block.split(separator: "\n").flatMap { line in
            line.split(separator: " ").prefix { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }.map { UInt8($0, radix: 16)! }
        }
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 10)
        encoder.append(example)
        XCTAssertEqual(encoder.finish(), hex)
        guard case .sets(let records) = try decode(hex) else { return XCTFail() }
        XCTAssertEqual(records, [example])
    }

    func testRandomBatchesRoundTrip() throws {
        let gen = RandomRecords(vocabSize: 1000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 20))
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 1000)
        let records = (0..<50).map { gen.record(key: "key-\($0)-é", seed: 3) }
        records.forEach { encoder.append($0) }
        guard case .sets(let decoded) = try decode(encoder.finish(), vocab: 1000, maxK: 20) else { return XCTFail() }
        XCTAssertEqual(decoded, records)
    }

    func testLogitsModeKeepsRowsInPlace() throws {
        let vocab = 7
        let rows: [Float] = (0..<(2 * vocab)).map { Float($0) * 0.5 }
        var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: .f32)
        rows.withUnsafeBytes { encoder.appendLogits(key: "x", tokens: [1, 2, 3], rows: $0) }
        let body = encoder.finish()
        guard case .logits(let dtype, let seqs) = try decode(body, vocab: vocab) else { return XCTFail() }
        XCTAssertEqual(dtype, .f32)
        XCTAssertEqual(seqs.count, 1)
        let row1 = body.withUnsafeBytes { b in (0..<vocab).map { b.loadUnaligned(fromByteOffset: seqs[0].rowsOffset + 4 * (vocab + $0), as: Float.self) } }
        XCTAssertEqual(row1, Array(rows[vocab...]))
    }

    func testAlignedRowsStartAtA64ByteOffsetAndUnpaddedBodiesStayValid() throws {
        let vocab = 5
        let rows: [Float] = (0..<(2 * vocab)).map { Float($0) - 3 }
        for align in [true, false] {
            var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: .f32)
            rows.withUnsafeBytes { encoder.appendLogits(key: "k", tokens: [1, 2, 3], rows: $0, alignRows: align) }
            rows.withUnsafeBytes { encoder.appendLogits(key: "key-2", tokens: [4, 0, 1], lossMask: [1, 0], rows: $0, alignRows: align) }
            let body = encoder.finish()
            guard case .logits(_, let seqs) = try decode(body, vocab: vocab) else { return XCTFail() }
            XCTAssertEqual(seqs.map(\.key), ["k", "key-2"])
            XCTAssertEqual(seqs[1].lossMask, [1, 0])
            if align { XCTAssertEqual(seqs.map { $0.rowsOffset % 64 }, [0, 0]) }
            for s in seqs {
                let got = body.withUnsafeBytes { b in (0..<(2 * vocab)).map { b.loadUnaligned(fromByteOffset: s.rowsOffset + 4 * $0, as: Float.self) } }
                XCTAssertEqual(got, rows)
            }
        }
    }

    func testRowPaddingMustBeZeroAndOnlyInLogitsMode() throws {
        let vocab = 5
        let rows = [Float](repeating: 1, count: vocab)
        var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: .f32)
        rows.withUnsafeBytes { encoder.appendLogits(key: "k", tokens: [1, 2], rows: $0) }
        var body = encoder.finish()
        // Header 24 + key_length 2 + "k" 1 + token_count 4 + flags 1 + tokens 8 = 40: padding is 40..<64.
        XCTAssertEqual(body.count, 64 + 4 * vocab)
        body[50] = 7
        assertRejects(body, vocab: vocab, offset: 50, sequence: 0, "row alignment padding must be 0")
        var sets = exampleBytes()
        sets[24 + 2 + 1 + 4] = 2   // the flags byte of the worked example
        assertRejects(sets, offset: 31, sequence: 0, "flag 0x2 (aligned rows) applies to logits mode only")
    }

    func exampleBytes() -> [UInt8] {
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 10)
        encoder.append(example)
        return encoder.finish()
    }

    func assertRejects(_ bytes: [UInt8], vocab: Int = 10, offset: Int, sequence: Int? = nil, position: Int? = nil,
                       _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try decode(bytes, vocab: vocab), line: line) { error in
            guard let e = error as? WireError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.offset, offset, "\(e)", line: line)
            XCTAssertEqual(e.sequence, sequence, "\(e)", line: line)
            XCTAssertEqual(e.position, position, "\(e)", line: line)
            XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", line: line)
        }
    }

    func testEachBadFieldIsNamedWithItsOffset() {
        var b = exampleBytes(); b[0] = 0
        assertRejects(b, offset: 0, "bad magic")
        b = exampleBytes(); b[4] = 2
        assertRejects(b, offset: 4, "unsupported wire format version 2")
        assertRejects(exampleBytes(), vocab: 11, offset: 8, "vocab_size 10 does not match the dataset's 11")
        b = exampleBytes(); b[12] = 0
        assertRejects(b, offset: 12, "sequence_count 0")
        b = exampleBytes(); b[12...15] = [0xFF, 0xFF, 0xFF, 0x7F]
        assertRejects(b, offset: 12, "sequence_count 2147483647")
        b = exampleBytes(); b[27...30] = [0xFF, 0xFF, 0xFF, 0x7F]   // token_count
        assertRejects(b, offset: 27, sequence: 0, "token_count 2147483647")
        b = exampleBytes(); b[36] = 10                              // tokens[1] = 10 = vocab
        assertRejects(b, offset: 36, sequence: 0, "token 1 is 10")
        b = exampleBytes(); b[44] = 9                               // k[0] = 9 > kMax + 1
        assertRejects(b, offset: 44, sequence: 0, position: 0, "k = 9, expected 1…5")
        b = exampleBytes(); b[48] = 0x06                            // gold_forced bit 2 with P = 2
        assertRejects(b, offset: 48, sequence: 0, "gold_forced padding bits beyond position 1 must be 0")
        b = exampleBytes(); b[57] = 12                              // ids[2] (position 1)
        assertRejects(b, offset: 57, sequence: 0, position: 1, "candidate id 12")
        b = exampleBytes(); b[61...64] = [0, 0, 0xC0, 0x7F]         // logprobs[0] = NaN
        assertRejects(b, offset: 61, sequence: 0, position: 0, "log-prob nan")
        b = exampleBytes(); b[65...68] = [0, 0, 0x80, 0x3F]         // logprobs[1] = +1
        assertRejects(b, offset: 65, sequence: 0, position: 0, "expected finite and ≤ 0")
        assertRejects(exampleBytes() + [0], offset: 73, "1 trailing byte(s)")
    }

    /// The worked example with its key "a" replaced by `key` (raw bytes, any length).
    func exampleBody(key: [UInt8]) -> [UInt8] {
        let b = exampleBytes()
        let n = UInt16(truncatingIfNeeded: key.count)
        return Array(b[0..<24]) + [UInt8(n & 0xFF), UInt8(n >> 8)] + key + Array(b[27...])
    }

    /// Keys obey SequenceKey.rule; a violation names the body offset of the offending byte.
    func testKeysBreakingTheRuleAreRefusedAtTheirByte() throws {
        assertRejects(exampleBody(key: Array("nul-a\0b".utf8)), offset: 26 + 5, sequence: 0, "key byte 5 is the control character 0x00")
        assertRejects(exampleBody(key: Array("esc\u{1B}".utf8)), offset: 26 + 3, sequence: 0, "control character 0x1B")
        assertRejects(exampleBody(key: Array("del\u{7F}".utf8)), offset: 26 + 3, sequence: 0, "control character 0x7F")
        assertRejects(exampleBody(key: [0x61, 0x62, 0xFF]), offset: 26 + 2, sequence: 0, "key byte 2 (0xFF) is not valid UTF-8")
        assertRejects(exampleBody(key: [0x61, 0xED, 0xA0, 0x80]), offset: 26 + 2, sequence: 0, "is not valid UTF-8")
        assertRejects(exampleBody(key: [UInt8](repeating: 0x6B, count: 1025)), offset: 24, sequence: 0, "key_length 1025, expected 1…1024")
        assertRejects(exampleBody(key: []), offset: 24, sequence: 0, "key_length 0")
        let longest = [UInt8](repeating: 0x6B, count: 1024)
        guard case .sets(let records) = try decode(exampleBody(key: longest)) else { return XCTFail("not sets") }
        XCTAssertEqual(Array(records[0].key.utf8), longest)
    }

    /// Every truncation is a clean error; every single-byte flip is an error or a batch that
    /// re-encodes to exactly the flipped bytes (nothing is silently reinterpreted).
    func testTruncationsAndFlipsNeverCrash() {
        let good = exampleBytes()
        for n in 0..<good.count {
            XCTAssertThrowsError(try decode(Array(good[0..<n])), "truncated to \(n) bytes was accepted")
        }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            var b = good
            b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8))
            if case .sets(let records)? = try? decode(b) {
                XCTAssertEqual(records.count, 1)
                var encoder = WireBatchEncoder(mode: .sets, vocabSize: 10)
                records.forEach { encoder.append($0) }
                XCTAssertEqual(Array(encoder.finish()), b, "an accepted flip does not re-encode to itself")
            }
        }
    }
}
