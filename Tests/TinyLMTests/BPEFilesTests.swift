import XCTest
import TinyLM

final class BPEFilesTests: XCTestCase {
    /// A valid vocab.json over the 256 bytes plus "Ġt" and "Ġth", one entry per line, and the
    /// matching merges; the malformed-input tests each break one thing in it.
    func tinyFiles() -> (vocab: String, merges: String) {
        var lines: [String] = []
        for (id, b) in BPEByteMapping.byteOrder.enumerated() {
            let s = BPEByteMapping.string(fromBytes: [b])
            let escaped = s == "\"" ? "\\\"" : s == "\\" ? "\\\\" : s
            lines.append("  \"\(escaped)\": \(id)")
        }
        lines.append("  \"Ġt\": 256")
        lines.append("  \"Ġth\": 257")
        return ("{\n" + lines.joined(separator: ",\n") + "\n}\n", "#version: 0.2\nĠ t\nĠt h\n")
    }

    func load(_ vocab: String, _ merges: String) throws -> ByteLevelBPE {
        try ByteLevelBPE(vocabJSON: Array(vocab.utf8), merges: merges)
    }

    func assertMalformed(_ vocab: String, _ merges: String, file expectedFile: String, line expectedLine: Int,
                         _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try load(vocab, merges), line: line) { e in
            guard case TokenizerError.malformedFile(let f, let l, let reason)? = e as? TokenizerError else {
                return XCTFail("unexpected error \(e)", line: line)
            }
            XCTAssertEqual(f, expectedFile, line: line)
            XCTAssertEqual(l, expectedLine, "\(reason)", line: line)
            XCTAssertTrue(reason.contains(fragment), "'\(reason)' lacks '\(fragment)'", line: line)
        }
    }

    func testTinyFilesLoadAndEncode() throws {
        let (v, m) = tinyFiles()
        let bpe = try load(v, m)
        XCTAssertEqual(bpe.vocabSize, 258)
        XCTAssertEqual(bpe.mergeCount, 2)
        XCTAssertEqual(bpe.encode(" the"), [257, bpe.id(ofByte: 0x65)])
        XCTAssertTrue(bpe.specialTokens.isEmpty)
        // JSON escapes decode to the same tokens.
        let escaped = v.replacingOccurrences(of: "\"Ġth\"", with: "\"\\u0120t\\u0068\"")
        XCTAssertEqual(try load(escaped, m).hash, bpe.hash)
    }

    func testSaveLoadRoundTripKeepsHashAndEncodings() throws {
        let bpe = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 420, specialTokens: ["<|endoftext|>"], minPairCount: 1)
        let dir = try temporaryDirectory("save")
        defer { try? FileManager.default.removeItem(at: dir) }
        try bpe.save(to: dir)
        let back = try ByteLevelBPE.load(from: dir)
        XCTAssertEqual(back.hash, bpe.hash)
        XCTAssertEqual(back.vocabSize, 420)
        XCTAssertEqual(back.specialTokenID("<|endoftext|>"), 419)
        for text in smallEnglishCorpus { XCTAssertEqual(back.encode(text), bpe.encode(text)) }
        // The hash is SHA-256 of the saved vocab.json followed by merges.txt.
        let bytes = try Data(contentsOf: dir.appendingPathComponent("vocab.json")) + Data(contentsOf: dir.appendingPathComponent("merges.txt"))
        XCTAssertEqual(bpe.hash, TokenizerSHA256.hexDigest(Array(bytes)))
    }

    func testHashIgnoresFormattingButNotContent() throws {
        let (v, m) = tinyFiles()
        let base = try load(v, m).hash
        let oneLine = v.replacingOccurrences(of: "\n", with: "")
        XCTAssertEqual(try load(oneLine, m + "\n\n").hash, base, "whitespace and trailing blank lines are not content")
        let (v2, _) = tinyFiles()
        let otherMerges = v2.replacingOccurrences(of: "\"Ġth\": 257", with: "\"Ġa\": 257")
        XCTAssertNotEqual(try load(otherMerges, "#version: 0.2\nĠ t\nĠ a\n").hash, base)
    }

    func testMalformedVocabJSON() {
        let (v, m) = tinyFiles()
        assertMalformed("", m, file: "vocab.json", line: 1, "expected '{'")
        assertMalformed("[1, 2]", m, file: "vocab.json", line: 1, "expected '{'")
        assertMalformed(v.replacingOccurrences(of: "\"Ġt\": 256", with: "\"Ġt\" 256"), m, file: "vocab.json", line: 258, "expected ':'")
        assertMalformed(v.replacingOccurrences(of: "\"Ġt\": 256", with: "\"Ġt\": -256"), m, file: "vocab.json", line: 258, "token id")
        assertMalformed(v.replacingOccurrences(of: "\"Ġt\": 256,", with: "\"Ġt\": 256"), m, file: "vocab.json", line: 259, "expected ',' or '}'")
        assertMalformed(String(v.dropLast(3)), m, file: "vocab.json", line: 259, "unterminated object")
        assertMalformed(v + "x", m, file: "vocab.json", line: 261, "after the vocabulary object")
        assertMalformed(v.replacingOccurrences(of: "\"Ġt\"", with: "\"Ġ\\qt\""), m, file: "vocab.json", line: 258, "unknown escape")
        assertMalformed(v.replacingOccurrences(of: "\"Ġt\"", with: "\"\\ud800t\""), m, file: "vocab.json", line: 258, "unpaired surrogate")
    }

    func testInvalidVocabularyContent() {
        let (v, m) = tinyFiles()
        assertMalformed(v.replacingOccurrences(of: "\"Ġth\": 257", with: "\"Ġth\": 256"), m, file: "vocab.json", line: 259, "duplicate id 256 (already used on line 258)")
        assertMalformed(v.replacingOccurrences(of: "\"Ġth\": 257", with: "\"Ġt\": 257"), m, file: "vocab.json", line: 259, "appears twice")
        assertMalformed(v.replacingOccurrences(of: "\"Ġth\": 257", with: "\"Ġth\": 300"), m, file: "vocab.json", line: 259, "outside 0..<258")
        assertMalformed(v.replacingOccurrences(of: "\"Ġth\": 257", with: "\"Ġ th\": 257"), m, file: "vocab.json", line: 259, "outside GPT-2's byte mapping")
        // Replacing the token of byte 'a' leaves byte 0x61 without a token.
        let noA = v.replacingOccurrences(of: "\"a\": 64", with: "\"aa\": 64")
        XCTAssertThrowsError(try load(noA, m)) { e in
            guard case TokenizerError.invalidVocabulary(let f, let reason)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, "vocab.json")
            XCTAssertTrue(reason.contains("no token for byte 0x61"), reason)
        }
    }

    func testMalformedMerges() {
        let (v, m) = tinyFiles()
        assertMalformed(v, "Ġ t\nĠt h\n", file: "merges.txt", line: 1, "#version")
        assertMalformed(v, "", file: "merges.txt", line: 1, "#version")
        assertMalformed(v, "#version: 0.2\nĠ t\nĠt x y\n", file: "merges.txt", line: 3, "two tokens")
        assertMalformed(v, "#version: 0.2\nĠ t\nĠt  h\n", file: "merges.txt", line: 3, "two tokens")
        assertMalformed(v, "#version: 0.2\nĠ t\nĠq h\n", file: "merges.txt", line: 3, "unknown token \"Ġq\"")
        assertMalformed(v, "#version: 0.2\nĠ t\nĠt ü\n", file: "merges.txt", line: 3, "not in vocab.json")
        assertMalformed(v, "#version: 0.2\nĠ t\nĠt a\n", file: "merges.txt", line: 3, "merge result \"Ġta\"")
        XCTAssertThrowsError(try load(v, m + "Ġ t\n")) { e in
            guard case TokenizerError.invalidVocabulary(_, let reason)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("merge 3 repeats"), reason)
        }
    }

    func testMissingFilesNameThePath() {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("logitd-no-such-tokenizer-dir")
        XCTAssertThrowsError(try ByteLevelBPE.load(from: dir)) { e in
            guard case TokenizerError.io(let path, _)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertTrue(path.hasSuffix("vocab.json"))
        }
    }

    func testDecodeRejectsUnknownIdsAndBrokenUTF8() throws {
        let bpe = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 300)
        XCTAssertThrowsError(try bpe.decode([1, 300])) { e in
            XCTAssertEqual(e as? TokenizerError, .unknownTokenID(id: 300, position: 1, vocabSize: 300))
        }
        let euro = bpe.encode(bytes: [0xE2, 0x82, 0xAC])
        XCTAssertEqual(try bpe.decode(euro), "€")
        XCTAssertThrowsError(try bpe.decode(Array(bpe.encode(bytes: [0x41, 0xE2, 0x82]))) ) { e in
            XCTAssertEqual(e as? TokenizerError, .invalidUTF8(byteOffset: 1))
        }
        XCTAssertEqual(try bpe.decodeBytes(bpe.encode(bytes: [0x41, 0xE2, 0x82])), [0x41, 0xE2, 0x82])
    }
}
