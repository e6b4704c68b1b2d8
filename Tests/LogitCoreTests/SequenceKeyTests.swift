import LogitCore
import XCTest

/// The one key rule (SequenceKey.rule), byte by byte.
final class SequenceKeyTests: XCTestCase {
    func v(_ bytes: [UInt8]) -> KeyError? { SequenceKey.violation(in: bytes) }

    func testAllowedKeys() {
        XCTAssertNil(v(Array("doc-17".utf8)))
        XCTAssertNil(v(Array("'; DROP TABLE sequence; -- \u{1F600} é e\u{301} \u{85}".utf8)), "C1 controls and any printable Unicode are allowed")
        XCTAssertNil(v([UInt8](repeating: 0x61, count: 1024)), "the maximum length")
        XCTAssertNil(v([UInt8](repeating: 0x61, count: 1020) + [0xF0, 0x9F, 0x98, 0x80]), "a 4-byte scalar ending at byte 1024")
    }

    func testLengthNULControlsAndDEL() {
        XCTAssertEqual(v([]), KeyError(offset: 0, .length(0)))
        XCTAssertEqual(v([UInt8](repeating: 0x61, count: 1025)), KeyError(offset: 1024, .length(1025)))
        XCTAssertEqual(v(Array("nul-a\0b".utf8)), KeyError(offset: 5, .controlCharacter(0)))
        XCTAssertEqual(v(Array("tab\tx".utf8)), KeyError(offset: 3, .controlCharacter(9)))
        XCTAssertEqual(v(Array("nl\n".utf8)), KeyError(offset: 2, .controlCharacter(10)))
        XCTAssertEqual(v(Array("\u{1B}[31m".utf8)), KeyError(offset: 0, .controlCharacter(0x1B)))
        XCTAssertEqual(v(Array("del\u{7F}".utf8)), KeyError(offset: 3, .controlCharacter(0x7F)))
        let message = v(Array("nul-a\0b".utf8))!.description
        XCTAssertTrue(message.contains("key byte 5 is the control character 0x00"), message)
        XCTAssertTrue(message.contains(SequenceKey.rule), message)
    }

    func testInvalidUTF8IsRefusedWhereItStarts() {
        XCTAssertEqual(v([0x61, 0xFF]), KeyError(offset: 1, .invalidUTF8(0xFF)))
        XCTAssertEqual(v([0x61, 0x80]), KeyError(offset: 1, .invalidUTF8(0x80)), "a lone continuation byte")
        XCTAssertEqual(v([0xC0, 0x80]), KeyError(offset: 0, .invalidUTF8(0xC0)), "overlong NUL")
        XCTAssertEqual(v([0xE0, 0x80, 0x80]), KeyError(offset: 1, .invalidUTF8(0x80)), "overlong 3-byte")
        XCTAssertEqual(v([0xED, 0xA0, 0x80]), KeyError(offset: 1, .invalidUTF8(0xA0)), "a UTF-16 surrogate")
        XCTAssertEqual(v([0xF4, 0x90, 0x80, 0x80]), KeyError(offset: 1, .invalidUTF8(0x90)), "beyond U+10FFFF")
        XCTAssertEqual(v([0x61, 0xE2, 0x82]), KeyError(offset: 3, .truncatedUTF8))
        XCTAssertEqual(v([0xC3, 0x28]), KeyError(offset: 1, .invalidUTF8(0x28)))
        XCTAssertThrowsError(try SequenceKey.decode([0x61, 0xFF] as [UInt8]))
        XCTAssertEqual(try SequenceKey.decode(Array("é".utf8)), "é")
        XCTAssertEqual(SequenceKey.firstInvalidUTF8([0x61, 0x62, 0xC3, 0x28] as [UInt8]), 2)
        XCTAssertNil(SequenceKey.firstInvalidUTF8(Array("é\0".utf8)))
    }

    func testRecordValidationAppliesTheRule() {
        let record = SequenceRecord(key: "nul-a\0b", tokens: [1, 2], sets: [CandidateSet(ids: [2], logprobs: [-0.1], goldForced: false)])
        XCTAssertThrowsError(try record.validate(vocabSize: 10, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 4), logprobScale: 64)) { error in
            XCTAssertTrue("\(error)".contains("'nul-a\\u{0}b': key byte 5 is the control character 0x00"), "\(error)")
        }
        var ok = record
        ok.key = String(repeating: "k", count: 1024)
        XCTAssertNoThrow(try ok.validate(vocabSize: 10, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 4), logprobScale: 64))
        ok.key += "k"
        XCTAssertThrowsError(try ok.validate(vocabSize: 10, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 4), logprobScale: 64))
    }
}
