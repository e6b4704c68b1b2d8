/// GPT-2's pre-tokenization, hand-written: the pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (Python `regex` semantics: leftmost match, alternatives tried in order, greedy runs) as a
/// single forward scan over UTF-8. Why not a regex engine: NSRegularExpression is slow on Linux,
/// and BPE merges never cross these boundaries, so this scan bounds all later work.
///
/// Classes follow the `regex` module: `\s` is the Unicode White_Space property, `\p{L}` and
/// `\p{N}` are the general categories L* and N*. Everything else (punctuation, symbols, emoji,
/// combining marks, controls) is "other". Bytes that are not valid UTF-8 (only reachable through
/// `encode(bytes:)`) count as one "other" character each, so arbitrary bytes still split and
/// round-trip.
public enum BPEPreTokenizer {
    @usableFromInline enum CharClass: UInt8, Sendable { case letter, number, space, other }

    /// ASCII classes, the common case, without touching Unicode tables.
    @usableFromInline static let asciiClass: [CharClass] = (0..<128).map { b -> CharClass in
        switch b {
        case 0x09...0x0D, 0x20: return .space
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }

    @usableFromInline static func classify(_ v: UInt32) -> CharClass {
        if v < 128 { return asciiClass[Int(v)] }
        guard let scalar = Unicode.Scalar(v) else { return .other }
        let props = scalar.properties
        if props.isWhitespace { return .space }
        switch props.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Decodes one UTF-8 scalar at `i`: (value, byte length). Invalid or truncated sequences,
    /// overlong forms and surrogates decode as (0xFFFF_FFFF, 1): one "other" byte.
    @usableFromInline static func decode(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let b0 = UInt32(p[i])
        if b0 < 0x80 { return (b0, 1) }
        let n = p.count
        @inline(__always) func cont(_ k: Int) -> UInt32? {
            guard k < n, p[k] & 0xC0 == 0x80 else { return nil }
            return UInt32(p[k] & 0x3F)
        }
        let invalid: (UInt32, Int) = (0xFFFF_FFFF, 1)
        if b0 >= 0xC2 && b0 <= 0xDF {
            guard let c1 = cont(i + 1) else { return invalid }
            return ((b0 & 0x1F) << 6 | c1, 2)
        }
        if b0 >= 0xE0 && b0 <= 0xEF {
            guard let c1 = cont(i + 1), let c2 = cont(i + 2) else { return invalid }
            let v = (b0 & 0x0F) << 12 | c1 << 6 | c2
            if v < 0x800 || (v >= 0xD800 && v <= 0xDFFF) { return invalid }
            return (v, 3)
        }
        if b0 >= 0xF0 && b0 <= 0xF4 {
            guard let c1 = cont(i + 1), let c2 = cont(i + 2), let c3 = cont(i + 3) else { return invalid }
            let v = (b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
            if v < 0x10000 || v > 0x10FFFF { return invalid }
            return (v, 4)
        }
        return invalid
    }

    /// Calls `body` with the byte range of each piece, in order; the ranges tile the input.
    @inlinable
    public static func forEachPiece(in p: UnsafeBufferPointer<UInt8>,
                                    _ body: (Range<Int>) throws -> Void) rethrows {
        let n = p.count
        var i = 0
        while i < n {
            let (v, len) = decode(p, i)
            // 1. Contractions (lowercase only, like the pattern).
            if v == 0x27, i + 1 < n {
                let c1 = p[i + 1]
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 {  // s t m d
                    try body(i..<(i + 2)); i += 2; continue
                }
                if i + 2 < n {
                    let c2 = p[i + 2]
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                        try body(i..<(i + 3)); i += 3; continue  // re ve ll
                    }
                }
            }
            let cls = v == 0xFFFF_FFFF ? CharClass.other : classify(v)
            // 2–4. An optional single space, then a run of letters, numbers or others.
            var runStart = i
            var runClass = cls
            if v == 0x20, i + 1 < n {
                let (v2, _) = decode(p, i + 1)
                let c2 = v2 == 0xFFFF_FFFF ? CharClass.other : classify(v2)
                if c2 != .space { runStart = i + 1; runClass = c2 }
            }
            if runClass != .space {
                var j = runStart
                while j < n {
                    let (vj, lj) = decode(p, j)
                    let cj = vj == 0xFFFF_FFFF ? CharClass.other : classify(vj)
                    if cj != runClass { break }
                    j += lj
                }
                try body(i..<j); i = j; continue
            }
            // 5–6. Whitespace: the whole run if it ends the input; otherwise leave the last
            // whitespace character for the next piece (`\s+(?!\S)`), unless the run is a
            // single character (`\s+`).
            var j = i + len
            var lastStart = i
            while j < n {
                let (vj, lj) = decode(p, j)
                let cj = vj == 0xFFFF_FFFF ? CharClass.other : classify(vj)
                if cj != .space { break }
                lastStart = j
                j += lj
            }
            if j < n && lastStart > i { j = lastStart }
            try body(i..<j); i = j
        }
    }

    /// `forEachPiece` under `rule`. `gpt2Digits` first isolates every \p{N} character as a
    /// piece of its own, then cuts the text between them with GPT-2's pattern — the order of
    /// Hugging Face's `Sequence([Digits(individual_digits), ByteLevel])` and llama.cpp's `smollm`.
    @inlinable
    public static func forEachPiece(in p: UnsafeBufferPointer<UInt8>, rule: PreTokenizerRule,
                                    _ body: (Range<Int>) throws -> Void) rethrows {
        guard rule == .gpt2Digits else { return try forEachPiece(in: p, body) }
        var segment = 0, i = 0
        func flush(_ end: Int) throws {
            guard segment < end else { return }
            let offset = segment
            try forEachPiece(in: UnsafeBufferPointer(rebasing: p[segment..<end])) { r in
                try body((r.lowerBound + offset)..<(r.upperBound + offset))
            }
        }
        while i < p.count {
            let (v, len) = decode(p, i)
            if v != 0xFFFF_FFFF, classify(v) == .number {
                try flush(i)
                try body(i..<(i + len))
                segment = i + len
            }
            i += len
        }
        try flush(p.count)
    }

    /// The pieces of `text` as strings (tests, inspection; encoding uses `forEachPiece`).
    public static func pieces(_ text: String, rule: PreTokenizerRule = .gpt2) -> [String] {
        var out: [String] = []
        var copy = text
        copy.withUTF8 { p in
            forEachPiece(in: p, rule: rule) { r in out.append(String(decoding: UnsafeBufferPointer(rebasing: p[r]), as: UTF8.self)) }
        }
        return out
    }
}

/// How a tokenizer cuts text into pieces before BPE merges. Saved beside the vocabulary
/// (`pre_tokenizer.txt`) when it is not GPT-2's, and part of the tokenizer's hash.
public enum PreTokenizerRule: String, Sendable, CaseIterable, Codable {
    /// GPT-2's pattern alone.
    case gpt2
    /// Every digit (\p{N}) a piece of its own, then GPT-2's pattern: SmolLM2's tokenizer
    /// (llama.cpp's `smollm` pre-tokenizer).
    case gpt2Digits = "gpt2-digits"
}
