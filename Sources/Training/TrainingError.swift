/// Why a training, evaluation or teaching run stopped: what went wrong and where.
public enum TrainingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file could not be read or written.
    case io(String)
    /// Settings or inputs that cannot work together (vocab mismatch, corpus too short, ...).
    case invalid(String)
    /// The loss or the gradients stopped being finite: the run is stopped, not continued on garbage.
    case diverged(String)

    public var description: String {
        switch self {
        case .io(let m): return m
        case .invalid(let m): return m
        case .diverged(let m): return "training diverged: \(m)"
        }
    }
}
