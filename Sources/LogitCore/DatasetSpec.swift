import Foundation

/// What a dataset is: fixed provenance and selection policy. Immutable once created; creating
/// the same name again is a no-op when identical and a conflict when anything differs.
public struct DatasetSpec: Sendable, Equatable, Codable {
    public var name: String
    public var vocabSize: Int
    public var policy: SelectionPolicy
    public var teacherId: String
    public var tokenizerId: String
    public var tokenizerHash: String
    /// Log-prob quantization, codes per nat (64 ⇒ max error 1/128 nat).
    public var logprobScale: Float

    public init(name: String, vocabSize: Int, policy: SelectionPolicy = .default, teacherId: String = "",
                tokenizerId: String = "", tokenizerHash: String = "", logprobScale: Float = 64) {
        self.name = name
        self.vocabSize = vocabSize
        self.policy = policy
        self.teacherId = teacherId
        self.tokenizerId = tokenizerId
        self.tokenizerHash = tokenizerHash
        self.logprobScale = logprobScale
    }

    /// Field-by-field differences, for a 409 that says what changed.
    public func differences(from other: DatasetSpec) -> [String] {
        var out: [String] = []
        if vocabSize != other.vocabSize { out.append("vocab_size \(other.vocabSize) ≠ \(vocabSize)") }
        if policy != other.policy {
            out.append("policy (τ=\(other.policy.tau), K=\(other.policy.kMin)…\(other.policy.kMax)) ≠ (τ=\(policy.tau), K=\(policy.kMin)…\(policy.kMax))")
        }
        if teacherId != other.teacherId { out.append("teacher_id '\(other.teacherId)' ≠ '\(teacherId)'") }
        if tokenizerId != other.tokenizerId { out.append("tokenizer_id '\(other.tokenizerId)' ≠ '\(tokenizerId)'") }
        if tokenizerHash != other.tokenizerHash { out.append("tokenizer_hash '\(other.tokenizerHash)' ≠ '\(tokenizerHash)'") }
        if logprobScale != other.logprobScale { out.append("logprob_scale \(other.logprobScale) ≠ \(logprobScale)") }
        return out
    }

    /// Names become directory names: letters, digits, '.', '_', '-', 1…128 bytes, not starting
    /// with '.', so no path separators, no "..", no control characters. Also the rule for other
    /// names the daemon takes (shared-memory regions).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && !name.hasPrefix(".")
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || c == 0x2E || c == 0x5F || c == 0x2D
            }
    }
}
