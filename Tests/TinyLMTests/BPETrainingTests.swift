import XCTest
import TinyLM

final class BPETrainingTests: XCTestCase {
    func mergeStrings(_ bpe: ByteLevelBPE, _ n: Int) throws -> [String] {
        let dir = try temporaryDirectory("merges")
        defer { try? FileManager.default.removeItem(at: dir) }
        try bpe.save(to: dir)
        let text = try String(contentsOf: dir.appendingPathComponent("merges.txt"), encoding: .utf8)
        return Array(text.split(separator: "\n").dropFirst().prefix(n).map(String.init))
    }

    func testMostFrequentPairFirstWithByteOrderTieBreak() throws {
        // Pieces: "ab" ×1, " ab" ×2, " cd" ×3. Counts: (Ġ,c)=3, (c,d)=3, (a,b)=3, (Ġ,a)=2.
        // Ties go to the smaller left bytes: Ġ (0x20) < a < c. After "Ġ c", (Ġc,d)=3 wins over
        // (a,b)=3 because "Ġc" (0x20 0x63) sorts before "a".
        let bpe = try ByteLevelBPE.train(corpus: ["ab ab ab cd cd cd"], vocabSize: 260)
        // Merging (a,b) turns every (Ġ,a) into (Ġ,ab), which is then the only pair left.
        XCTAssertEqual(try mergeStrings(bpe, 4), ["Ġ c", "Ġc d", "a b", "Ġ ab"])
        XCTAssertEqual(bpe.vocabSize, 260)
        XCTAssertEqual(bpe.encode(" cd"), [257])
        XCTAssertEqual(bpe.encode("ab"), [258])
        XCTAssertEqual(bpe.encode(" ab"), [259])
        XCTAssertEqual(bpe.encode(" abc"), [259, bpe.id(ofByte: 0x63)])
    }

    func testTrainingIsDeterministicAndOrderIndependent() throws {
        let a = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 400, specialTokens: ["<|endoftext|>"], minPairCount: 1)
        let b = try ByteLevelBPE.train(corpus: smallEnglishCorpus.reversed(), vocabSize: 400, specialTokens: ["<|endoftext|>"], minPairCount: 1)
        XCTAssertEqual(a.hash, b.hash)
        XCTAssertEqual(a.vocabSize, 400)
        XCTAssertEqual(a.mergeCount, 400 - 256 - 1)
        XCTAssertEqual(a.specialTokenID("<|endoftext|>"), 399)
        let c = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 401, specialTokens: ["<|endoftext|>"], minPairCount: 1)
        XCTAssertNotEqual(a.hash, c.hash)
    }

    func testTrainedTokenizerCompressesAndRoundTrips() throws {
        let bpe = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 500, specialTokens: ["<|endoftext|>"], minPairCount: 1)
        for text in smallEnglishCorpus {
            let ids = bpe.encode(text)
            XCTAssertLessThan(ids.count, text.utf8.count / 2, "a tokenizer trained on this text should compress it")
            XCTAssertEqual(try bpe.decode(ids), text)
            XCTAssertEqual(ids, referenceEncode(bpe, text))
        }
        // Text spelling a special token is plain text; the id is only appended by the caller.
        let eot = try XCTUnwrap(bpe.specialTokenID("<|endoftext|>"))
        XCTAssertFalse(bpe.encode("a<|endoftext|>b").contains(eot))
        XCTAssertEqual(try bpe.decode(bpe.encode("The end.") + [eot]), "The end.<|endoftext|>")
    }

    func testTrainingFromFilesMatchesTrainingFromStrings() throws {
        let dir = try temporaryDirectory("trainfiles")
        defer { try? FileManager.default.removeItem(at: dir) }
        var urls: [URL] = []
        for (i, text) in smallEnglishCorpus.enumerated() {
            let url = dir.appendingPathComponent("part\(i).txt")
            try text.write(to: url, atomically: true, encoding: .utf8)
            urls.append(url)
        }
        let fromFiles = try ByteLevelBPE.train(files: urls, vocabSize: 330)
        let fromStrings = try ByteLevelBPE.train(corpus: smallEnglishCorpus, vocabSize: 330)
        XCTAssertEqual(fromFiles.hash, fromStrings.hash)
        XCTAssertThrowsError(try ByteLevelBPE.train(files: [dir.appendingPathComponent("missing.txt")], vocabSize: 300)) { e in
            guard case TokenizerError.io(let path, _)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertTrue(path.hasSuffix("missing.txt"))
        }
    }

    func testBadTrainingRequestsThrow() {
        func assertInvalid(_ body: @autoclosure () throws -> ByteLevelBPE, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { e in
                guard case TokenizerError.invalidTraining(let reason)? = e as? TokenizerError else {
                    return XCTFail("unexpected \(e)", line: line)
                }
                XCTAssertTrue(reason.contains(fragment), "\(reason) lacks \(fragment)", line: line)
            }
        }
        assertInvalid(try ByteLevelBPE.train(corpus: ["abc"], vocabSize: 255), "below 256")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abc"], vocabSize: 256, specialTokens: ["<|x|>"]), "below 256")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abab abab"], vocabSize: 10_000), "supports only")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abc"], vocabSize: 300, specialTokens: ["has space"]), "printable ASCII")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abc"], vocabSize: 300, specialTokens: ["<|a|>", "<|a|>"]), "twice")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abab abab"], vocabSize: 258, specialTokens: ["ab"]), "equals a learned token")
        assertInvalid(try ByteLevelBPE.train(corpus: ["abc"], vocabSize: 300, minPairCount: 0), "minPairCount")
    }

    func testBytesOnlyVocabularyIsValid() throws {
        let bpe = try ByteLevelBPE.train(corpus: [], vocabSize: 256)
        XCTAssertEqual(bpe.mergeCount, 0)
        XCTAssertEqual(bpe.encode("hi!"), [bpe.id(ofByte: 0x68), bpe.id(ofByte: 0x69), bpe.id(ofByte: 0x21)])
    }
}
