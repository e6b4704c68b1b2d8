import Foundation

/// Why the replay layer refused something. Every case names what was wrong, where, and what was
/// expected, so a training job that fails at start-up says exactly which dataset or state to fix.
public enum ReplayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The cache or a dataset could not be opened or read.
    case store(String)
    /// Datasets that cannot be mixed in one run (vocab size or tokenizer differ).
    case incompatibleDatasets(String)
    /// An option is out of range.
    case invalidOptions(String)
    /// A resume state that does not belong to this snapshot / rank layout.
    case stateMismatch(String)
    /// A shard's bytes did not decode.
    case corrupt(String)

    public var description: String {
        switch self {
        case .store(let s): "replay: cache: \(s)"
        case .incompatibleDatasets(let s): "replay: incompatible datasets: \(s)"
        case .invalidOptions(let s): "replay: invalid options: \(s)"
        case .stateMismatch(let s): "replay: resume state mismatch: \(s)"
        case .corrupt(let s): "replay: corrupt shard: \(s)"
        }
    }
}
