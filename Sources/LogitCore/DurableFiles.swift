#if canImport(Glibc)
import Glibc
#endif

/// fsync of a file or directory by path, shared by every layer that makes a rename or a new
/// file durable (shards, catalog, checkpoints). Returns nil on success, else what failed and
/// why, for the caller to wrap in its own error type.
public func fsyncPath(_ path: String) -> String? {
    let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "cannot open \(path) to fsync it: \(String(cString: strerror(errno)))" }
    defer { close(fd) }
    guard fsync(fd) == 0 else { return "fsync of \(path) failed: \(String(cString: strerror(errno)))" }
    return nil
}
