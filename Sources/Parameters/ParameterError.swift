/// A tensor definition (name, shape) that is unusable or clashes with another; the message names
/// the tensor and what was expected.
public struct ParameterError: Error, Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let reason: String

    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }

    public var description: String { "invalid parameter tensor '\(name)': \(reason)" }
}
