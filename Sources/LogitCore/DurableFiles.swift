#if canImport(Glibc)
import Glibc
#endif

/// A failed system call kept as a value — what was attempted and errno — so that callers decide
/// by code (ENOSPC, EDQUOT: the disk is full) instead of by matching message text.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was attempted, with its path: "fsync of /cache/shards".
    public let operation: String
    public let code: Int32

    /// `code` defaults to the current errno: construct it right after the failing call.
    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation) failed: \(Self.message(code))" }

    /// The one errno formatter of the project: strerror text and the number.
    public static func message(_ code: Int32) -> String { String(cString: strerror(code)) + " (errno \(code))" }

    public static func isOutOfSpace(_ code: Int32) -> Bool { code == ENOSPC || code == EDQUOT }
}

/// fsync of a file or directory by path, shared by every layer that makes a rename or a new
/// file durable (shards, catalog, checkpoints).
public func fsyncPath(_ path: String) throws(SystemError) {
    let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("opening \(path) to fsync it") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw SystemError("fsync of \(path)") }
}
