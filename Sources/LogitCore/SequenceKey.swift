/// The rule every sequence key obeys, wherever it enters (wire body, shared-memory body, JSONL
/// import, key lookup, `logitctl inspect`): **1…1024 bytes of well-formed UTF-8 containing no
/// control character U+0000–U+001F and no U+007F (DEL)**. Everything else is stored byte for
/// byte. Documented in schema/WIRE_FORMAT.md ("Keys").
///
/// Why a rule and not "any bytes": the catalog (SQLite through GRDB) binds keys as C text, and
/// a NUL cut the stored key short of the one in the shard; control characters make keys that
/// print ambiguously in errors, logs and `logitctl` output; and a Swift `String` cannot hold
/// invalid UTF-8, so it would be replaced silently (two different keys then become one).
public enum SequenceKey {
    public static let maxBytes = 1024
    /// The rule in words, for error messages and documentation.
    public static let rule = "1…\(maxBytes) bytes of valid UTF-8 without control characters (U+0000–U+001F, U+007F)"

    /// The first place a key breaks the rule, or nil when it obeys it.
    public static func violation<Bytes: Collection>(in bytes: Bytes) -> KeyError? where Bytes.Element == UInt8 {
        let b = Array(bytes)
        guard !b.isEmpty else { return KeyError(offset: 0, .length(0)) }
        guard b.count <= maxBytes else { return KeyError(offset: maxBytes, .length(b.count)) }
        var i = 0
        while i < b.count {
            let lead = b[i]
            if lead < 0x80 {
                if lead < 0x20 || lead == 0x7F { return KeyError(offset: i, .controlCharacter(lead)) }
                i += 1
                continue
            }
            // Well-formed sequences, Unicode 15 Table 3-7: no overlongs, surrogates or > U+10FFFF.
            let length: Int
            var secondLow: UInt8 = 0x80, secondHigh: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; secondLow = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; secondHigh = 0x9F
            case 0xF0: length = 4; secondLow = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; secondHigh = 0x8F
            default: return KeyError(offset: i, .invalidUTF8(lead))
            }
            for j in 1..<length {
                guard i + j < b.count else { return KeyError(offset: i + j, .truncatedUTF8) }
                let c = b[i + j]
                let (low, high) = j == 1 ? (secondLow, secondHigh) : (UInt8(0x80), UInt8(0xBF))
                guard c >= low, c <= high else { return KeyError(offset: i + j, .invalidUTF8(c)) }
            }
            // C1 controls (U+0080–U+009F, encoded C2 80…C2 9F) are allowed: the rule is about
            // bytes a C string or a terminal treats specially.
            i += length
        }
        return nil
    }

    /// Checks a key already held as a String (valid UTF-8 by construction: length and controls).
    public static func validate(_ key: String) throws(KeyError) {
        if let v = violation(in: key.utf8) { throw v }
    }

    /// Decodes key bytes from untrusted input, refusing (never repairing) anything off the rule.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) throws(KeyError) -> String where Bytes.Element == UInt8 {
        if let v = violation(in: bytes) { throw v }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Byte offset of the first byte of `bytes` that is not part of well-formed UTF-8, or nil
    /// when all of it is (for input that holds keys: JSONL lines, command-line arguments).
    public static func firstInvalidUTF8<Bytes: Sequence>(_ bytes: Bytes) -> Int? where Bytes.Element == UInt8 {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .error: return offset
            case .emptyInput: return nil
            }
        }
    }

    /// The key with control characters shown as `\u{…}` escapes, for messages about a key that
    /// broke the rule (so it cannot garble the terminal or log line it is printed to).
    public static func printable(_ key: String) -> String {
        var out = ""
        for scalar in key.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Where and how a key breaks `SequenceKey.rule`. `offset` is the byte offset within the key.
public struct KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Violation: Sendable, Equatable {
        /// The key has this many bytes (0, or more than `SequenceKey.maxBytes`).
        case length(Int)
        /// This byte cannot start or continue a UTF-8 sequence here.
        case invalidUTF8(UInt8)
        /// The key ends inside a multi-byte UTF-8 sequence.
        case truncatedUTF8
        /// A control character U+0000–U+001F or U+007F.
        case controlCharacter(UInt8)
    }
    public var offset: Int
    public var violation: Violation

    public init(offset: Int, _ violation: Violation) {
        self.offset = offset
        self.violation = violation
    }

    public var description: String {
        let what: String
        switch violation {
        case .length(let n): what = "key is \(n) bytes"
        case .invalidUTF8(let byte): what = "key byte \(offset) (0x\(hex(byte))) is not valid UTF-8"
        case .truncatedUTF8: what = "key ends at byte \(offset) inside a multi-byte UTF-8 sequence"
        case .controlCharacter(let byte): what = "key byte \(offset) is the control character 0x\(hex(byte))"
        }
        return "\(what); a key must be \(SequenceKey.rule)"
    }

    private func hex(_ byte: UInt8) -> String {
        let s = String(byte, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }
}
