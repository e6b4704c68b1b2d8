import Foundation
import XCTest
import TinyLM

/// Differential test of the hand-written scanner against the real pattern run by Python's
/// `regex` module (the engine GPT-2's encoder uses) on random tricky text. Needs `python3` with
/// `regex`; without it the test is skipped with that reason, never silently passed.
final class BPEPreTokenizerRegexTests: XCTestCase {
    func testScannerMatchesPythonRegexOnRandomText() throws {
        var rng = TestRNG(state: 314159)
        let texts = (0..<400).map { _ in randomUnicodeString(&rng, maxScalars: 50) }
        let dir = try temporaryDirectory("regex")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("texts.json")
        try JSONSerialization.data(withJSONObject: texts).write(to: input)
        let script = """
        import json, sys
        try:
            import regex
        except ImportError:
            print("NO_REGEX_MODULE"); sys.exit(3)
        pat = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+")
        texts = json.load(open(sys.argv[1], encoding="utf-8"))
        print(json.dumps([[list(p.encode("utf-8")) for p in pat.findall(t)] for t in texts]))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, input.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { throw XCTSkip("python3 is not runnable: \(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus == 3 { throw XCTSkip("python3 has no `regex` module (pip install regex)") }
        XCTAssertEqual(p.terminationStatus, 0, String(decoding: data, as: UTF8.self))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[[Int]]])
        XCTAssertEqual(expected.count, texts.count)
        var mismatches = 0
        for (text, want) in zip(texts, expected) {
            let got = BPEPreTokenizer.pieces(text).map { $0.utf8.map(Int.init) }
            if got != want {
                mismatches += 1
                if mismatches <= 5 { XCTFail("pieces differ for \(text.debugDescription):\n ours   \(got)\n regex  \(want)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }
}
