import XCTest
import TinyLM

/// Expected pieces were produced by Python's `regex` module (2026.5.9) with GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
final class BPEPreTokenizerTests: XCTestCase {
    func check(_ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(BPEPreTokenizer.pieces(text), expected, "pieces of \(text.debugDescription)", file: file, line: line)
    }

    func testContractions() {
        check("I'm can't we've they'll she'd you're it's O'Neil 'S 'sfoo",
              ["I", "'m", " can", "'t", " we", "'ve", " they", "'ll", " she", "'d", " you", "'re", " it", "'s",
               " O", "'", "Neil", " '", "S", " '", "sfoo"])
        check("''ll", ["''", "ll"])
        check("x.'s", ["x", ".'", "s"])
        check("'", ["'"])
    }

    func testWhitespaceRuns() {
        check("a  b   c\t\td", ["a", " ", " b", "  ", " c", "\t", "\t", "d"])
        check("line1\n\nline2\n", ["line", "1", "\n", "\n", "line", "2", "\n"])
        check("  leading and trailing  ", [" ", " leading", " and", " trailing", "  "])
        check("a\r\nb", ["a", "\r", "\n", "b"])
        check("tab\t end \n", ["tab", "\t", " end", " \n"])
        check(" ", [" "])
        check("\n", ["\n"])
        check("", [])
    }

    func testDigitsAndPunctuation() {
        check("$3.50?! (yes) -- \"quoted\"", ["$", "3", ".", "50", "?!", " (", "yes", ")", " --", " \"", "quoted", "\""])
        check(" 123 4567 \u{BD} \u{216B}", [" 123", " 4567", " \u{BD}", " \u{216B}"])
    }

    func testUnicodeClasses() {
        check("emoji \u{1F600}\u{1F44D}\u{1F3FD} ok", ["emoji", " \u{1F600}\u{1F44D}\u{1F3FD}", " ok"])
        check("中文字符 测试", ["中文字符", " 测试"])
        // A combining mark is neither letter nor number: the decomposed é splits.
        check("e\u{301} café naïve", ["e", "\u{301}", " café", " naïve"])
        // No-break and ideographic spaces are \s but not the optional ' '.
        check("\u{A0}nbsp\u{3000}ideo", ["\u{A0}", "nbsp", "\u{3000}", "ideo"])
        // U+001C..U+001F are not White_Space (the `regex` module agrees); U+0085 is.
        check("\u{1C}\u{1D} sep\u{85}nel", ["\u{1C}\u{1D}", " sep", "\u{85}", "nel"])
    }

    func testPiecesTileTheInputForArbitraryBytes() {
        var rng = TestRNG(state: 7)
        for _ in 0..<500 {
            let bytes = (0..<rng.below(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var ranges: [Range<Int>] = []
            bytes.withUnsafeBufferPointer { p in BPEPreTokenizer.forEachPiece(in: p) { ranges.append($0) } }
            var expectedStart = 0
            for r in ranges {
                XCTAssertEqual(r.lowerBound, expectedStart)
                XCTAssertFalse(r.isEmpty)
                expectedStart = r.upperBound
            }
            XCTAssertEqual(expectedStart, bytes.count)
        }
    }

    func testPiecesConcatenateToTheText() {
        var rng = TestRNG(state: 11)
        for _ in 0..<500 {
            let s = randomUnicodeString(&rng)
            XCTAssertEqual(BPEPreTokenizer.pieces(s).joined(), s)
        }
    }
}
