/// A shard could not be written or read. Names the file, the block (when one is involved) and
/// what was wrong, so a corrupt file can be located and quarantined without a debugger.
public struct ShardError: Error, Sendable, CustomStringConvertible, Equatable {
    public let path: String
    public let block: Int?
    public let reason: String

    public init(path: String, block: Int? = nil, reason: String) {
        self.path = path
        self.block = block
        self.reason = reason
    }

    public var description: String {
        if let block { return "shard \(path), block \(block): \(reason)" }
        return "shard \(path): \(reason)"
    }
}

/// How a block's payload is stored. The raw value is the on-disk codec byte.
public enum BlockCodec: UInt8, Sendable, Codable, CaseIterable {
    case none = 0
    case zstd = 1
    case lz4 = 2
}
