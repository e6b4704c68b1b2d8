import Foundation
import LogitCore

/// What a shard records about its dataset: everything a reader needs to validate and decode the
/// file on its own (vocab, policy, quantization) plus who produced it. Stored in the header and
/// copied into the footer.
public struct ShardProvenance: Sendable, Equatable, Codable {
    public var datasetName: String
    public var vocabSize: Int
    public var policy: SelectionPolicy
    public var teacherId: String
    public var tokenizerId: String
    public var tokenizerHash: String
    /// Quantization codes per nat; the stored log-prob error is at most 0.5 / logprobScale.
    public var logprobScale: Float

    public static let defaultLogprobScale: Float = 64

    public init(datasetName: String, vocabSize: Int, policy: SelectionPolicy, teacherId: String,
                tokenizerId: String, tokenizerHash: String, logprobScale: Float = ShardProvenance.defaultLogprobScale) {
        self.datasetName = datasetName
        self.vocabSize = vocabSize
        self.policy = policy
        self.teacherId = teacherId
        self.tokenizerId = tokenizerId
        self.tokenizerHash = tokenizerHash
        self.logprobScale = logprobScale
    }

    /// Limits of a provenance record; a header that claims more is rejected before allocating.
    public static let maxStringBytes = 4096
    public static let maxVocabSize = 1 << 32
    public static let logprobScaleRange: ClosedRange<Float> = 1 ... 65536

    /// Bytes per token id in the id/token byte planes: the fewest that hold `vocabSize − 1`.
    var idBytes: Int {
        var b = 1
        while b < 4 && (vocabSize - 1) >> (8 * b) != 0 { b += 1 }
        return b
    }

    /// Throws naming the bad field (`path` is the shard the provenance belongs to).
    public func validate(path: String) throws(ShardError) {
        if let why = invalidity() { throw ShardError(path: path, reason: "invalid provenance: \(why)") }
    }

    /// What is wrong with these settings, or nil: the one definition of a dataset's limits, used
    /// by the shard reader and writer and by the catalog when a dataset is created (so settings a
    /// shard cannot hold are refused at creation, not at the first append).
    public func invalidity() -> String? {
        guard vocabSize >= 2, vocabSize <= Self.maxVocabSize else {
            return "vocab_size must be 2…\(Self.maxVocabSize), got \(vocabSize)"
        }
        do { try policy.validate() } catch { return error.description }
        guard logprobScale.isFinite, Self.logprobScaleRange.contains(logprobScale) else {
            return "logprob_scale must be in [\(Int(Self.logprobScaleRange.lowerBound)), \(Int(Self.logprobScaleRange.upperBound))] codes per nat, got \(logprobScale)"
        }
        guard !datasetName.isEmpty else { return "dataset name is empty" }
        for (name, s) in [("dataset name", datasetName), ("teacher_id", teacherId),
                          ("tokenizer_id", tokenizerId), ("tokenizer_hash", tokenizerHash)] {
            guard s.utf8.count <= Self.maxStringBytes else {
                return "\(name) is \(s.utf8.count) UTF-8 bytes, at most \(Self.maxStringBytes) allowed"
            }
        }
        return nil
    }

    /// The provenance body (see SHARD_FORMAT.md, "Provenance body").
    func encodeBody() -> [UInt8] {
        var w = ByteWriter()
        w.f64(policy.tau)
        w.u32(UInt32(policy.kMin))
        w.u32(UInt32(policy.kMax))
        for s in [datasetName, teacherId, tokenizerId, tokenizerHash] {
            let b = Array(s.utf8)
            w.u32(UInt32(b.count))
            w.raw(b)
        }
        return w.bytes
    }

    /// Parses a provenance body; vocab and scale come from the fixed header fields.
    static func decodeBody(_ body: UnsafeRawBufferPointer, vocabSize: Int, logprobScale: Float,
                           path: String) throws(ShardError) -> ShardProvenance {
        var r = ByteReader(body, path: path, what: "provenance")
        let tau = try r.f64()
        let kMin = Int(try r.u32())
        let kMax = Int(try r.u32())
        var strings: [String] = []
        for name in ["datasetName", "teacherId", "tokenizerId", "tokenizerHash"] {
            let n = Int(try r.u32())
            guard n <= maxStringBytes else {
                throw ShardError(path: path, reason: "provenance \(name) declares \(n) bytes, at most \(maxStringBytes) allowed")
            }
            let b = try r.bytes(n)
            guard let s = String(validating: b, as: UTF8.self) else {
                throw ShardError(path: path, reason: "provenance \(name) is not valid UTF-8")
            }
            strings.append(s)
        }
        guard r.remaining == 0 else {
            throw ShardError(path: path, reason: "provenance has \(r.remaining) trailing bytes")
        }
        let p = ShardProvenance(datasetName: strings[0], vocabSize: vocabSize,
                                policy: SelectionPolicy(tau: tau, kMin: kMin, kMax: kMax),
                                teacherId: strings[1], tokenizerId: strings[2], tokenizerHash: strings[3],
                                logprobScale: logprobScale)
        try p.validate(path: path)
        return p
    }
}

/// A dataset's settings as a shard header records them.
extension DatasetSpec {
    /// Largest vocabulary a shard can hold (ids are u32).
    public static var maxVocabSize: Int { ShardProvenance.maxVocabSize }

    /// The same settings as a shard header records them.
    public var provenance: ShardProvenance {
        ShardProvenance(datasetName: name, vocabSize: vocabSize, policy: policy, teacherId: teacherId,
                        tokenizerId: tokenizerId, tokenizerHash: tokenizerHash, logprobScale: logprobScale)
    }
}
