/// How a teacher chooses the candidate set at each position: the smallest prefix of the
/// descending-probability order whose mass reaches `tau`, with K clamped to [kMin, kMax].
/// Part of a dataset's immutable provenance: a different policy is a different dataset.
public struct SelectionPolicy: Sendable, Hashable, Codable {
    /// Coverage threshold τ in (0, 1].
    public var tau: Double
    /// Smallest K ever kept (≥ 1).
    public var kMin: Int
    /// Largest K kept before the gold token is forced in (a forced set holds kMax + 1 ids).
    public var kMax: Int

    public init(tau: Double, kMin: Int, kMax: Int) {
        self.tau = tau
        self.kMin = kMin
        self.kMax = kMax
    }

    /// The policy of the paper's experiments and of `logit-bench`.
    public static let `default` = SelectionPolicy(tau: 0.95, kMin: 1, kMax: 64)

    /// Hard ceiling on kMax: keeps per-position work and storage bounded for hostile input.
    public static let kMaxLimit = 4096

    /// Throws `LogitError.invalidPolicy` naming the bad field.
    public func validate() throws(LogitError) {
        guard tau.isFinite, tau > 0, tau <= 1 else {
            throw .invalidPolicy("tau must be in (0, 1], got \(tau)")
        }
        guard kMin >= 1 else { throw .invalidPolicy("kMin must be ≥ 1, got \(kMin)") }
        guard kMax >= kMin else {
            throw .invalidPolicy("kMin (\(kMin)) must not exceed kMax (\(kMax))")
        }
        guard kMax <= Self.kMaxLimit else {
            throw .invalidPolicy("kMax must be ≤ \(Self.kMaxLimit), got \(kMax)")
        }
    }
}
