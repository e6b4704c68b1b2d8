import LogitCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX calls the checkpoint code needs, with errors that name the path.
#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif

enum FileIO {
    static func errorText() -> String { SystemError.message(errno) }

    static func openRead(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelError.io(path: path, reason: "cannot open for reading: \(errorText())") }
        return fd
    }

    /// Creates (or truncates) a file for writing, mode 0644.
    static func create(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ModelError.io(path: path, reason: "cannot create: \(errorText())") }
        return fd
    }

    static func size(_ fd: Int32, path: String) throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelError.io(path: path, reason: "fstat failed: \(errorText())") }
        return Int(st.st_size)
    }

    /// Reads exactly `count` bytes at `offset`; a short file is an error, not a partial result.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, offset: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, min(count - done, 1 << 30), off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelError.io(path: path, reason: "read at offset \(offset + done) failed: \(errorText())")
            }
            if n == 0 { throw ModelError.io(path: path, reason: "unexpected end of file at offset \(offset + done), expected \(count - done) more bytes") }
            done += n
        }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, count: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = systemWrite(fd, buffer + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelError.io(path: path, reason: "write failed after \(done) bytes: \(errorText())")
            }
            done += n
        }
    }

    static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try write(fd, $0.baseAddress!, count: $0.count, path: path) }
    }

    static func fsyncOrThrow(_ fd: Int32, path: String) throws {
        guard fsync(fd) == 0 else { throw ModelError.io(path: path, reason: "fsync failed: \(errorText())") }
    }

    /// fsync of a directory, so a rename inside it is durable.
    static func syncDirectory(_ path: String) throws {
        do { try fsyncPath(path) } catch { throw ModelError.io(path: path, reason: error.description) }
    }

    static func renameOrThrow(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else { throw ModelError.io(path: to, reason: "rename from \(from) failed: \(errorText())") }
    }

    /// The whole file, refusing files larger than `limit` before allocating.
    static func readAll(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = try openRead(path)
        defer { close(fd) }
        let size = try size(fd, path: path)
        guard size <= limit else { throw ModelError.io(path: path, reason: "file is \(size) bytes, expected at most \(limit)") }
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBytes { raw in
            if size > 0 { try read(fd, into: raw.baseAddress!, count: size, offset: 0, path: path) }
        }
        return bytes
    }
}
