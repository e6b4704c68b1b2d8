import ArgumentParser
import Foundation
import TinyLM

/// `logit-bench tokenizer`: encode speed of a checkpoint's byte-level BPE (SmolLM2's by default)
/// on real English — the licence texts and the Markdown/text documentation installed on the
/// machine, in sorted path order — and BPE training speed. `cold` is a fresh piece cache per
/// pass (the first pass over new text), `warm` keeps the cache, `nocache` runs BPE on every
/// piece; the baseline in the same run is one pass summing the UTF-8 bytes.
struct TokenizerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "BPE encode and training speed on the machine's English documentation.")

    @Option(help: "Checkpoint whose tokenizer to time (its tokenizer/ directory).") var model = "models/smollm2/base"
    @Option(help: "Bytes of text to encode.") var bytes = 4 << 20
    @Option(help: "Bytes of text to train a 2,048-id BPE on (0: skip training).") var trainBytes = 2 << 20

    static func englishText(maxBytes: Int) throws -> String {
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
            throw ValidationError("found only \(text.utf8.count) bytes of documentation text under /usr/share; need ≥ 256 KiB")
        }
        return text
    }

    func run() throws {
        let tokenizer = try ByteLevelBPE.load(from: URL(fileURLWithPath: model + "/tokenizer"))
        let text = try Self.englishText(maxBytes: bytes)
        let n = Double(text.utf8.count)
        var tokens = 0
        let cold = bestTime { tokens = tokenizer.withCache(capacity: 1 << 16).encode(text).count }
        let warmTokenizer = tokenizer.withCache(capacity: 1 << 16)
        let warm = bestTime { _ = warmTokenizer.encode(text) }
        let uncached = tokenizer.withCache(capacity: 0)
        var uncachedTokens = 0
        let nocache = bestTime { uncachedTokens = uncached.encode(text).count }
        guard uncachedTokens == tokens else { throw ValidationError("cached and uncached encodings differ: \(tokens) vs \(uncachedTokens) tokens") }
        var checksum = 0
        let baseline = bestTime {
            var copy = text
            checksum &+= copy.withUTF8 { p in p.reduce(0) { $0 &+ Int($1) } }
        }
        var fields: [(String, Any)] = [
            ("bench", "tokenizer"), ("model", model), ("vocab", tokenizer.vocabSize), ("bytes", Int(n)), ("tokens", tokens),
            ("bytes_per_token", n / Double(tokens)), ("cold_mb_per_s", n / cold / 1e6), ("warm_mb_per_s", n / warm / 1e6),
            ("nocache_mb_per_s", n / nocache / 1e6), ("baseline_byte_sum_mb_per_s", n / baseline / 1e6),
            ("checksum", checksum % 1000),
        ]
        if trainBytes > 0 {
            let corpus = try Self.englishText(maxBytes: trainBytes)
            let t0 = now()
            _ = try ByteLevelBPE.train(corpus: [corpus], vocabSize: 2048, specialTokens: ["<|endoftext|>"])
            fields += [("train_bytes", corpus.utf8.count), ("train_vocab", 2048), ("train_s", now() - t0)]
        }
        printJSONLine(fields)
    }
}
