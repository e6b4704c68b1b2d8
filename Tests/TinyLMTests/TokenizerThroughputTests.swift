import Foundation
import XCTest
import TinyLM

/// Encode speed of the GPT-2 tokenizer on real English (the license texts every Debian system
/// ships, repeated to ≥ 4 MB), against a baseline in the same run: one pass of UTF-8 validation
/// and byte counting over the same bytes. Asserts ≥ 1 MB/s in release builds only (debug Swift
/// is ~10–50× slower); prints a JSON line either way.
final class TokenizerThroughputTests: XCTestCase {
    func englishText(minBytes: Int) throws -> String {
        let dir = URL(fileURLWithPath: "/usr/share/common-licenses")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        var text = ""
        for name in names {
            let url = dir.appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue,
                  let s = try? String(contentsOf: url, encoding: .utf8) else { continue }
            text += s
        }
        guard !text.isEmpty else { throw XCTSkip("no readable texts in /usr/share/common-licenses") }
        let unique = text
        while text.utf8.count < minBytes { text += unique }
        return text
    }

    func testEncodeThroughput() throws {
        let gpt2 = try GPT2Reference.tokenizer()
        #if DEBUG
        let minBytes = 1 << 20
        #else
        let minBytes = 4 << 20
        #endif
        let text = try englishText(minBytes: minBytes)
        let bytes = Double(text.utf8.count)
        var tokens = 0
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = Date()
            tokens = gpt2.encode(text).count
            best = min(best, Date().timeIntervalSince(t0))
        }
        var baseline = Double.infinity
        var checksum = 0
        for _ in 0..<3 {
            let t0 = Date()
            var copy = text
            checksum &+= copy.withUTF8 { p in p.reduce(0) { $0 &+ Int($1) } }
            baseline = min(baseline, Date().timeIntervalSince(t0))
        }
        let mbps = bytes / best / 1e6
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        print("{\"bench\": \"tokenizer_encode\", \"build\": \"\(build)\", \"bytes\": \(Int(bytes)), \"tokens\": \(tokens), \"bytes_per_token\": \(String(format: "%.3f", bytes / Double(tokens))), \"encode_MBps\": \(String(format: "%.2f", mbps)), \"baseline_byte_sum_MBps\": \(String(format: "%.1f", bytes / baseline / 1e6)), \"checksum\": \(checksum % 1000)}")
        #if !DEBUG
        XCTAssertGreaterThanOrEqual(mbps, 1.0, "encode must reach 1 MB/s in release builds")
        #endif
    }
}
