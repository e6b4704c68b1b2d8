import LogitCore

/// A shard could not be written or read. Names the file, the block (when one is involved) and
/// what was wrong, so a corrupt file can be located and quarantined without a debugger.
public struct ShardError: Error, Sendable, CustomStringConvertible, Equatable {
    public let path: String
    public let block: Int?
    public let reason: String
    /// errno of the system call that failed, when one did (kept so a full disk is recognised by
    /// its code, not its text).
    public let errno: Int32?

    public init(path: String, block: Int? = nil, reason: String, errno: Int32? = nil) {
        self.path = path
        self.block = block
        self.reason = reason
        self.errno = errno
    }

    public init(path: String, _ cause: SystemError) {
        self.init(path: path, reason: cause.description, errno: cause.code)
    }

    public var description: String {
        let why = errno.map { "\(reason): \(SystemError.message($0))" } ?? reason
        if let block { return "shard \(path), block \(block): \(why)" }
        return "shard \(path): \(why)"
    }
}

/// How a block's payload is stored. The raw value is the on-disk codec byte.
public enum BlockCodec: UInt8, Sendable, Codable, CaseIterable {
    case none = 0
    case zstd = 1
    case lz4 = 2
}
