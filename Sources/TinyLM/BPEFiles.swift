import Foundation

/// GPT-2's file pair: `vocab.json` (mapped token string → id, one JSON object) and `merges.txt`
/// (a `#version` line, then "left right" per line in rank order). The reference GPT-2 files
/// (`encoder.json`, `vocab.bpe`) are the same formats, so one loader reads both.
enum BPEFiles {
    static let vocabFileName = "vocab.json"
    static let mergesFileName = "merges.txt"
    /// Present only for a rule other than GPT-2's (older directories have none): the rule's name
    /// on one line.
    static let preTokenizerFileName = "pre_tokenizer.txt"

    /// The bytes `save(to:)` writes: vocab one entry per line in id order, merges in rank order,
    /// the pre-tokenizer's name unless it is GPT-2's.
    static func canonical(tokens: [[UInt8]], merges: [(UInt32, UInt32)], preTokenizer: PreTokenizerRule = .gpt2)
        -> (vocabJSON: [UInt8], mergesText: [UInt8], preTokenizerText: [UInt8]?) {
        var v: [UInt8] = Array("{\n".utf8)
        for (id, t) in tokens.enumerated() {
            v.append(contentsOf: "  ".utf8)
            appendJSONString(BPEByteMapping.string(fromBytes: t), to: &v)
            v.append(contentsOf: ": \(id)".utf8)
            v.append(contentsOf: (id + 1 < tokens.count ? ",\n" : "\n").utf8)
        }
        v.append(contentsOf: "}\n".utf8)
        var m: [UInt8] = Array("#version: 0.2\n".utf8)
        for (a, b) in merges {
            m.append(contentsOf: BPEByteMapping.string(fromBytes: tokens[Int(a)]).utf8)
            m.append(0x20)
            m.append(contentsOf: BPEByteMapping.string(fromBytes: tokens[Int(b)]).utf8)
            m.append(0x0A)
        }
        return (v, m, preTokenizer == .gpt2 ? nil : Array("\(preTokenizer.rawValue)\n".utf8))
    }

    static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0..<0x20: out.append(contentsOf: String(format: "\\u%04x", b).utf8)
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// Parses a JSON object of string → non-negative integer, keeping the order of the file.
    /// Hand-written rather than JSONSerialization so that errors carry a line number and
    /// duplicate keys are caught instead of silently overwritten.
    static func parseVocab(_ data: [UInt8], file: String) throws -> [(String, Int, line: Int)] {
        var i = 0
        var line = 1
        let n = data.count
        func fail(_ reason: String) -> TokenizerError { .malformedFile(file: file, line: line, reason: reason) }
        func skipSpace() {
            while i < n {
                switch data[i] {
                case 0x0A: line += 1; i += 1
                case 0x20, 0x09, 0x0D: i += 1
                default: return
                }
            }
        }
        func expect(_ c: UInt8, _ what: String) throws {
            skipSpace()
            guard i < n, data[i] == c else {
                throw fail("expected \(what), found \(i < n ? "'\(Character(Unicode.Scalar(data[i])))'" : "end of file")")
            }
            i += 1
        }
        func hex4() throws -> UInt32 {
            guard i + 4 <= n else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = data[i]; i += 1
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v << 4 | d
            }
            return v
        }
        func string() throws -> String {
            try expect(0x22, "'\"' opening a token string")
            var bytes: [UInt8] = []
            while true {
                guard i < n else { throw fail("unterminated string") }
                let c = data[i]; i += 1
                if c == 0x22 { break }
                if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16)) inside a string") }
                if c != 0x5C { bytes.append(c); continue }
                guard i < n else { throw fail("unterminated escape") }
                let e = data[i]; i += 1
                switch e {
                case 0x22, 0x5C, 0x2F: bytes.append(e)
                case 0x62: bytes.append(0x08)
                case 0x66: bytes.append(0x0C)
                case 0x6E: bytes.append(0x0A)
                case 0x72: bytes.append(0x0D)
                case 0x74: bytes.append(0x09)
                case 0x75:
                    var v = try hex4()
                    if v >= 0xD800 && v <= 0xDBFF {
                        guard i + 6 <= n, data[i] == 0x5C, data[i + 1] == 0x75 else { throw fail("unpaired surrogate \\u\(String(v, radix: 16))") }
                        i += 2
                        let lo = try hex4()
                        guard lo >= 0xDC00 && lo <= 0xDFFF else { throw fail("bad low surrogate \\u\(String(lo, radix: 16))") }
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else if v >= 0xDC00 && v <= 0xDFFF {
                        throw fail("unpaired surrogate \\u\(String(v, radix: 16))")
                    }
                    bytes.append(contentsOf: String(Unicode.Scalar(v)!).utf8)
                default: throw fail("unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
            }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
        func integer() throws -> Int {
            skipSpace()
            let start = i
            while i < n, data[i] >= 0x30, data[i] <= 0x39 { i += 1 }
            guard i > start, i - start <= 9 else { throw fail("expected a token id (non-negative integer below 10^9)") }
            return data[start..<i].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        if n >= 3, data[0] == 0xEF, data[1] == 0xBB, data[2] == 0xBF { i = 3 }
        try expect(0x7B, "'{' starting the vocabulary object")
        var entries: [(String, Int, line: Int)] = []
        skipSpace()
        if i < n, data[i] == 0x7D { i += 1 } else {
            while true {
                skipSpace()
                let entryLine = line
                let key = try string()
                try expect(0x3A, "':' after a token string")
                let value = try integer()
                entries.append((key, value, entryLine))
                skipSpace()
                guard i < n else { throw fail("unterminated object: expected ',' or '}'") }
                if data[i] == 0x2C { i += 1; continue }
                if data[i] == 0x7D { i += 1; break }
                throw fail("expected ',' or '}' after a vocabulary entry")
            }
        }
        skipSpace()
        guard i == n else { throw fail("unexpected content after the vocabulary object") }
        return entries
    }

    /// Builds a tokenizer from the two files' contents; every problem names the file and line.
    static func load(vocab: [UInt8], vocabName: String, merges: String, mergesName: String,
                     preTokenizer: PreTokenizerRule = .gpt2) throws -> ByteLevelBPE {
        let entries = try parseVocab(vocab, file: vocabName)
        guard !entries.isEmpty else { throw TokenizerError.invalidVocabulary(file: vocabName, reason: "empty vocabulary") }
        var tokens = [[UInt8]?](repeating: nil, count: entries.count)
        var idOf: [String: UInt32] = [:]
        idOf.reserveCapacity(entries.count)
        var lineOfID = [Int](repeating: 0, count: entries.count)
        for (key, id, line) in entries {
            guard id < entries.count else {
                throw TokenizerError.malformedFile(file: vocabName, line: line, reason: "id \(id) of \"\(key)\" is outside 0..<\(entries.count) (ids must be dense)")
            }
            if let prior = idOf[key] {
                throw TokenizerError.malformedFile(file: vocabName, line: line, reason: "token \"\(key)\" appears twice (ids \(prior) and \(id))")
            }
            if tokens[id] != nil {
                throw TokenizerError.malformedFile(file: vocabName, line: line, reason: "duplicate id \(id) (already used on line \(lineOfID[id]))")
            }
            guard let bytes = BPEByteMapping.bytes(fromString: key), !bytes.isEmpty else {
                throw TokenizerError.malformedFile(file: vocabName, line: line, reason: "token \"\(key)\" is empty or has characters outside GPT-2's byte mapping")
            }
            tokens[id] = bytes
            idOf[key] = UInt32(id)
            lineOfID[id] = line
        }
        var merged: [(UInt32, UInt32)] = []
        var lineNumber = 0
        var sawHeader = false
        for raw in merges.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if lineNumber == 1 {
                guard line.hasPrefix("#version") else {
                    throw TokenizerError.malformedFile(file: mergesName, line: 1, reason: "expected a '#version' header line")
                }
                sawHeader = true
                continue
            }
            if line.isEmpty { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedFile(file: mergesName, line: lineNumber, reason: "expected two tokens separated by one space, found \"\(line)\"")
            }
            guard let a = idOf[String(parts[0])] else {
                throw TokenizerError.malformedFile(file: mergesName, line: lineNumber, reason: "unknown token \"\(parts[0])\" (not in \(vocabName))")
            }
            guard let b = idOf[String(parts[1])] else {
                throw TokenizerError.malformedFile(file: mergesName, line: lineNumber, reason: "unknown token \"\(parts[1])\" (not in \(vocabName))")
            }
            guard idOf[String(parts[0]) + String(parts[1])] != nil else {
                throw TokenizerError.malformedFile(file: mergesName, line: lineNumber, reason: "merge result \"\(parts[0])\(parts[1])\" is not in \(vocabName)")
            }
            merged.append((a, b))
        }
        guard sawHeader else { throw TokenizerError.malformedFile(file: mergesName, line: 1, reason: "empty file; expected a '#version' header line") }
        return try ByteLevelBPE(tokens: tokens.map { $0! }, merges: merged, preTokenizer: preTokenizer, source: vocabName)
    }

    static func read(_ url: URL) throws -> [UInt8] {
        do { return Array(try Data(contentsOf: url)) } catch {
            throw TokenizerError.io(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
    }
}

extension ByteLevelBPE {
    /// Loads GPT-2-style files given as contents (names are used in error messages).
    public init(vocabJSON: [UInt8], merges: String,
                vocabName: String = "vocab.json", mergesName: String = "merges.txt") throws {
        self = try BPEFiles.load(vocab: vocabJSON, vocabName: vocabName, merges: merges, mergesName: mergesName)
    }

    /// Loads any vocab/merges file pair, e.g. GPT-2's `encoder.json` and `vocab.bpe`.
    public static func load(vocabFile: URL, mergesFile: URL) throws -> ByteLevelBPE {
        let v = try BPEFiles.read(vocabFile)
        guard let m = String(validating: try BPEFiles.read(mergesFile), as: UTF8.self) else {
            throw TokenizerError.malformedFile(file: mergesFile.path, line: 1, reason: "file is not valid UTF-8")
        }
        return try BPEFiles.load(vocab: v, vocabName: vocabFile.path, merges: m, mergesName: mergesFile.path)
    }

    /// Loads `vocab.json`, `merges.txt` and, if present, `pre_tokenizer.txt` from a directory
    /// written by `save(to:)` (or the first two by HF/GPT-2 tools).
    public static func load(from directory: URL) throws -> ByteLevelBPE {
        let vocabFile = directory.appendingPathComponent(BPEFiles.vocabFileName)
        let mergesFile = directory.appendingPathComponent(BPEFiles.mergesFileName)
        let ruleFile = directory.appendingPathComponent(BPEFiles.preTokenizerFileName)
        var rule = PreTokenizerRule.gpt2
        if FileManager.default.fileExists(atPath: ruleFile.path) {
            let text = String(decoding: try BPEFiles.read(ruleFile), as: UTF8.self)
            let name = text.hasSuffix("\n") ? String(text.dropLast()) : text
            guard let r = PreTokenizerRule(rawValue: name) else {
                throw TokenizerError.malformedFile(file: ruleFile.path, line: 1, reason: "unknown pre-tokenizer \"\(name)\", expected one of \(PreTokenizerRule.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            rule = r
        }
        let v = try BPEFiles.read(vocabFile)
        guard let m = String(validating: try BPEFiles.read(mergesFile), as: UTF8.self) else {
            throw TokenizerError.malformedFile(file: mergesFile.path, line: 1, reason: "file is not valid UTF-8")
        }
        return try BPEFiles.load(vocab: v, vocabName: vocabFile.path, merges: m, mergesName: mergesFile.path, preTokenizer: rule)
    }

    /// Writes canonical `vocab.json` and `merges.txt` into `directory` (created if needed).
    /// Their bytes are what `hash` digests, so a save/load round trip keeps the hash.
    public func save(to directory: URL) throws {
        let tokens = (0..<vocabSize).map { Array(tokenBytes[tokenOffsets[$0]..<tokenOffsets[$0 + 1]]) }
        let files = BPEFiles.canonical(tokens: tokens, merges: merges.map { ($0.left, $0.right) }, preTokenizer: preTokenizer)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(files.vocabJSON).write(to: directory.appendingPathComponent(BPEFiles.vocabFileName), options: .atomic)
            try Data(files.mergesText).write(to: directory.appendingPathComponent(BPEFiles.mergesFileName), options: .atomic)
            let ruleFile = directory.appendingPathComponent(BPEFiles.preTokenizerFileName)
            if let rule = files.preTokenizerText {
                try Data(rule).write(to: ruleFile, options: .atomic)
            } else if FileManager.default.fileExists(atPath: ruleFile.path) {
                try FileManager.default.removeItem(at: ruleFile)
            }
        } catch {
            throw TokenizerError.io(path: directory.path, reason: "cannot write tokenizer files: \(error.localizedDescription)")
        }
    }
}
