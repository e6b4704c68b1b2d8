/// Errors of the core layer. Every message says what was wrong, where, and what was expected,
/// so a user can fix the input without reading our code.
public enum LogitError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidPolicy(String)
    /// A logits row was unusable (NaN/inf, wrong length, gold out of range).
    case invalidLogits(row: Int, reason: String)
    /// A sequence record broke an invariant of the data model.
    case invalidRecord(key: String, reason: String)

    public var description: String {
        switch self {
        case .invalidPolicy(let reason): return "invalid selection policy: \(reason)"
        case .invalidLogits(let row, let reason): return "invalid logits row \(row): \(reason)"
        case .invalidRecord(let key, let reason): return "invalid sequence '\(key)': \(reason)"
        }
    }
}
