import Foundation
import XCTest
import TinyLM

/// The piece cache must not change what the tokenizer produces, and a BPE trained on real text
/// must round-trip it. Speed is measured by `logit-bench tokenizer` (release build, baseline in
/// the same run), not here.
final class TokenizerCacheTests: XCTestCase {
    /// Real English: licence texts and installed documentation, sorted path order.
    func englishText(maxBytes: Int) throws -> String {
        var text = ""
        let fm = FileManager.default
        var urls: [URL] = []
        for root in ["/usr/share/common-licenses", "/usr/share/doc"] {
            guard let e = fm.enumerator(at: URL(fileURLWithPath: root), includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in e where root.hasSuffix("common-licenses") || url.pathExtension == "md" || url.pathExtension == "txt" {
                urls.append(url)
            }
        }
        for url in urls.sorted(by: { $0.path < $1.path }) {
            guard let s = try? String(contentsOf: url, encoding: .utf8) else { continue }
            text += s
            if text.utf8.count >= maxBytes { break }
        }
        guard text.utf8.count >= 64 << 10 else { throw XCTSkip("found only \(text.utf8.count) bytes of documentation text") }
        return text
    }

    func testCachedUncachedAndWarmEncodingsAreIdentical() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        let text = try englishText(maxBytes: 512 << 10)
        let uncached = gpt2.withCache(capacity: 0).encode(text)
        let small = gpt2.withCache(capacity: 64)  // evicts constantly
        let warm = gpt2.withCache(capacity: 1 << 16)
        XCTAssertEqual(small.encode(text), uncached)
        XCTAssertEqual(warm.encode(text), uncached)
        XCTAssertEqual(warm.encode(text), uncached, "the second, warm pass differs")
        XCTAssertEqual(try gpt2.decode(uncached), text)
    }

    func testTrainedBPERoundTripsRealText() throws {
        let text = try englishText(maxBytes: 256 << 10)
        let bpe = try ByteLevelBPE.train(corpus: [text], vocabSize: 2048, specialTokens: ["<|endoftext|>"])
        let ids = bpe.encode(text)
        XCTAssertLessThan(Double(ids.count), Double(text.utf8.count) / 2.5, "2,048 merges should compress English text")
        XCTAssertEqual(try bpe.decode(ids), text)
    }
}
