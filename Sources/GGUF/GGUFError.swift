/// A GGUF file could not be read: names the file, where in it (byte offset, and the tensor or
/// metadata key when one is involved) and what was expected, like the shard reader's errors.
public struct GGUFError: Error, Sendable, CustomStringConvertible, Equatable {
    public let path: String
    /// Byte offset in the file where the problem was found (nil: the file as a whole).
    public let offset: Int?
    /// The tensor or metadata key involved, if any.
    public let item: String?
    public let reason: String

    public init(path: String, offset: Int? = nil, item: String? = nil, reason: String) {
        self.path = path
        self.offset = offset
        self.item = item
        self.reason = reason
    }

    public var description: String {
        var s = "gguf \(path)"
        if let offset { s += " at offset \(offset)" }
        if let item { s += " (\(item))" }
        return s + ": " + reason
    }
}
