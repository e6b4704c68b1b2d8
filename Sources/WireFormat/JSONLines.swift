import Foundation
import LogitCore

/// The JSONL interchange format of `logitctl import` / `export`: one sequence per line,
///
///     {"key": "doc-1", "tokens": [5, 7, 9], "loss_mask": [1, 0],
///      "sets": [{"ids": [7, 2], "logprobs": [-0.1, -2.5], "gold_forced": false}, …]}
///
/// with `len(sets) == len(tokens) − 1`, `sets[t]` predicting `tokens[t+1]` (which must be among
/// its ids) and `loss_mask` optional. `key` obeys the key rule of schema/WIRE_FORMAT.md ("Keys",
/// `SequenceKey`), checked by `SequenceRecord.validate`; `logitctl import` also refuses any line
/// that is not valid UTF-8 rather than decode it with replacement characters. What DistillKit-style Parquet/JSONL top-k dumps convert to.
public enum JSONLines {
    struct Line: Decodable {
        var key: String
        var tokens: [UInt32]
        var loss_mask: [UInt8]?
        var sets: [Set]
        enum CodingKeys: String, CodingKey, CaseIterable { case key, tokens, loss_mask, sets }
        init(from decoder: any Decoder) throws {
            try refuseUnknownFields(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decode(String.self, forKey: .key)
            tokens = try c.decode([UInt32].self, forKey: .tokens)
            loss_mask = try c.decodeIfPresent([UInt8].self, forKey: .loss_mask)
            sets = try c.decode([Set].self, forKey: .sets)
        }
        struct Set: Decodable {
            var ids: [UInt32]
            var logprobs: [Float]
            var gold_forced: Bool
            enum CodingKeys: String, CodingKey, CaseIterable { case ids, logprobs, gold_forced }
            init(from decoder: any Decoder) throws {
                try refuseUnknownFields(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                ids = try c.decode([UInt32].self, forKey: .ids)
                logprobs = try c.decode([Float].self, forKey: .logprobs)
                gold_forced = try c.decode(Bool.self, forKey: .gold_forced)
            }
        }
    }

    /// Any key outside `Keys` fails the line: a misspelt optional field (`"mask"` for
    /// `"loss_mask"`) would otherwise vanish silently.
    static func refuseUnknownFields<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _: Keys.Type) throws {
        let known = Swift.Set(Keys.allCases.map(\.stringValue))
        let all = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = all.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [AnyKey(stringValue: unknown)],
                debugDescription: "unknown field (expected \(Keys.allCases.map(\.stringValue).joined(separator: ", ")))"))
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Longest line accepted (bytes): bounds memory on hostile input.
    public static let maxLineBytes = 64 << 20

    /// Parses one line into a record (not yet validated against a dataset). The error names the
    /// field, e.g. `sets[3].logprobs[1]: expected a number`.
    public static func decode(_ line: Substring) throws(JSONLineError) -> SequenceRecord {
        guard line.utf8.count <= maxLineBytes else { throw JSONLineError(field: nil, reason: "line longer than \(maxLineBytes) bytes") }
        let parsed: Line
        do {
            parsed = try JSONDecoder().decode(Line.self, from: Data(line.utf8))
        } catch let DecodingError.typeMismatch(type, context) {
            throw JSONLineError(field: path(context.codingPath), reason: "expected \(describe(type)): \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, context) {
            throw JSONLineError(field: path(context.codingPath + [key]), reason: "missing field")
        } catch let DecodingError.valueNotFound(type, context) {
            throw JSONLineError(field: path(context.codingPath), reason: "expected \(describe(type)), got null")
        } catch let DecodingError.dataCorrupted(context) {
            let underlying = (context.underlyingError as NSError?)?.userInfo["NSDebugDescription"] as? String
            throw JSONLineError(field: context.codingPath.isEmpty ? nil : path(context.codingPath),
                                reason: underlying ?? context.debugDescription)
        } catch {
            throw JSONLineError(field: nil, reason: "\(error)")
        }
        guard parsed.sets.count + 1 == parsed.tokens.count else {
            throw JSONLineError(field: "sets", reason: "has \(parsed.sets.count) entries, expected len(tokens) − 1 = \(parsed.tokens.count - 1)")
        }
        for (t, set) in parsed.sets.enumerated() where set.ids.count != set.logprobs.count {
            throw JSONLineError(field: "sets[\(t)]", reason: "\(set.ids.count) ids but \(set.logprobs.count) logprobs")
        }
        return SequenceRecord(key: parsed.key, tokens: parsed.tokens, lossMask: parsed.loss_mask,
                              sets: parsed.sets.map { CandidateSet(ids: $0.ids, logprobs: $0.logprobs, goldForced: $0.gold_forced) })
    }

    /// One line, no trailing newline; fields in a fixed order so exports are byte-stable.
    public static func encode(_ r: SequenceRecord) -> String {
        var s = "{\"key\": "
        s += jsonString(r.key)
        s += ", \"tokens\": [" + r.tokens.map(String.init).joined(separator: ", ") + "]"
        if let mask = r.lossMask { s += ", \"loss_mask\": [" + mask.map(String.init).joined(separator: ", ") + "]" }
        s += ", \"sets\": ["
        for t in 0..<r.positions {
            if t > 0 { s += ", " }
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            s += "{\"ids\": [" + r.ids[lo..<hi].map(String.init).joined(separator: ", ") + "], \"logprobs\": ["
            s += r.logprobs[lo..<hi].map { "\($0)" }.joined(separator: ", ")
            s += "], \"gold_forced\": " + (r.goldForced[t] ? "true" : "false") + "}"
        }
        return s + "]}"
    }

    static func jsonString(_ s: String) -> String {
        let data = try! JSONEncoder().encode(s)
        return String(decoding: data, as: UTF8.self)
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
        }
        return out
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is UInt32.Type, is UInt8.Type: return "a non-negative integer"
        case is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }
}

public struct JSONLineError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String?
    public var reason: String
    public var description: String { field.map { "\($0): \(reason)" } ?? reason }
}
