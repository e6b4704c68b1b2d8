/// Loss inputs with inconsistent shapes or values: names what was wrong, where, and what was
/// expected.
public enum LossError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidInput(String)

    public var description: String {
        switch self {
        case .invalidInput(let s): "loss: invalid input: \(s)"
        }
    }
}
