import Foundation
import XCTest
import TinyLM

/// Encode speed of the GPT-2 tokenizer on real English: the license texts and the Markdown/text
/// documentation installed on the machine (Debian's /usr/share/doc, Swift's docs), in sorted
/// path order, unique text only. Three figures, best of 3 each: `cold` (a fresh piece cache per
/// pass: the first pass over new text), `warm` (cache kept across passes) and `nocache` (BPE on
/// every piece). The baseline in the same run is one pass summing the UTF-8 bytes. Asserts
/// cold ≥ 1 MB/s in release builds only (debug Swift is many times slower); prints one JSON line.
final class TokenizerThroughputTests: XCTestCase {
    func englishText(maxBytes: Int) throws -> String {
        var urls: [URL] = []
        let fm = FileManager.default
        for root in ["/usr/share/common-licenses", "/usr/share/doc", "/opt/swift/usr/share/doc"] {
            guard let e = fm.enumerator(at: URL(fileURLWithPath: root), includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in e {
                let name = url.lastPathComponent
                if root.hasSuffix("common-licenses") || name.hasSuffix(".md") || name.hasSuffix(".txt") { urls.append(url) }
            }
        }
        var text = ""
        for url in urls.sorted(by: { $0.path < $1.path }) {
            guard let s = try? String(contentsOf: url, encoding: .utf8) else { continue }
            text += s
            if text.utf8.count >= maxBytes { break }
        }
        guard text.utf8.count >= 256 << 10 else {
            throw XCTSkip("found only \(text.utf8.count) bytes of documentation text; need ≥ 256 KiB")
        }
        return text
    }

    func testEncodeThroughput() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        #if DEBUG
        let maxBytes = 1 << 20
        let build = "debug"
        #else
        let maxBytes = 4 << 20
        let build = "release"
        #endif
        let text = try englishText(maxBytes: maxBytes)
        let bytes = Double(text.utf8.count)
        func best(_ body: () -> Void) -> Double {
            var b = Double.infinity
            for _ in 0..<3 { let t0 = Date(); body(); b = min(b, Date().timeIntervalSince(t0)) }
            return b
        }
        var tokens = 0
        let cold = best { tokens = gpt2.withCache(capacity: 1 << 16).encode(text).count }
        let warmTokenizer = gpt2.withCache(capacity: 1 << 16)
        let warm = best { _ = warmTokenizer.encode(text) }
        let uncached = gpt2.withCache(capacity: 0)
        var same = true
        let nocache = best { same = uncached.encode(text).count == tokens }
        var checksum = 0
        let baseline = best {
            var copy = text
            checksum &+= copy.withUTF8 { p in p.reduce(0) { $0 &+ Int($1) } }
        }
        XCTAssertTrue(same, "cached and uncached encodings differ in length")
        let cold_MBps = bytes / cold / 1e6
        let fields: [(String, String)] = [
            ("bench", "\"tokenizer_encode\""), ("build", "\"\(build)\""), ("bytes", "\(Int(bytes))"),
            ("tokens", "\(tokens)"), ("bytes_per_token", String(format: "%.3f", bytes / Double(tokens))),
            ("cold_MBps", String(format: "%.2f", cold_MBps)), ("warm_MBps", String(format: "%.2f", bytes / warm / 1e6)),
            ("nocache_MBps", String(format: "%.2f", bytes / nocache / 1e6)),
            ("baseline_byte_sum_MBps", String(format: "%.1f", bytes / baseline / 1e6)), ("checksum", "\(checksum % 1000)"),
        ]
        print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        #if !DEBUG
        XCTAssertGreaterThanOrEqual(cold_MBps, 1.0, "encode must reach 1 MB/s in release builds")
        #endif
    }

    /// Training time on real text (reported, not asserted: it depends on corpus and vocab size).
    func testTrainingSpeed() throws {
        #if DEBUG
        let maxBytes = 256 << 10
        let build = "debug"
        #else
        let maxBytes = 2 << 20
        let build = "release"
        #endif
        let text = try englishText(maxBytes: maxBytes)
        let t0 = Date()
        let bpe = try ByteLevelBPE.train(corpus: [text], vocabSize: 2048, specialTokens: ["<|endoftext|>"])
        let seconds = Date().timeIntervalSince(t0)
        let ids = bpe.encode(text)
        XCTAssertEqual(try bpe.decode(ids), text)
        print("{\"bench\": \"tokenizer_train\", \"build\": \"\(build)\", \"bytes\": \(text.utf8.count), \"vocab\": 2048, \"seconds\": \(String(format: "%.3f", seconds)), \"bytes_per_token\": \(String(format: "%.3f", Double(text.utf8.count) / Double(ids.count)))}")
    }
}
