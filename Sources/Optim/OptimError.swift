/// Errors of the optimizer layer. Each message names what was wrong, where, and what was
/// expected, so a training script can be fixed without reading this code.
public enum OptimError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A hyper-parameter, schedule or group definition is unusable.
    case invalidConfig(String)
    /// A gradient holds NaN, infinity or values whose squares overflow fp32; detected by the
    /// angle pass before any state was changed.
    case nonFiniteGradient(tensor: String)
    /// A saved optimizer state is corrupt, truncated or belongs to other tensors.
    case invalidState(String)
    /// Reading or writing a state file failed at the operating-system level.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfig(let reason): return "invalid optimizer configuration: \(reason)"
        case .nonFiniteGradient(let tensor):
            return "gradient of tensor '\(tensor)' contains NaN or infinity, or values too large (≳1e17) to square in fp32: its squared norm is not finite; step refused, no state changed"
        case .invalidState(let reason): return "invalid optimizer state: \(reason)"
        case .io(let path, let reason): return "optimizer state file '\(path)': \(reason)"
        }
    }
}
