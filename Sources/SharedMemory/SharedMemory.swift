import CSharedMemory
#if canImport(Glibc)
import Glibc
#endif

/// Shared memory between a teacher and `logitd` on one host (schema/SHARED_MEMORY.md): the
/// teacher writes a batch body into a region it owns, the daemon reads it where it lies. A
/// logits row is 300–600 KB, and a socket moves only a few GB/s between two processes on this
/// kind of machine, so in logits mode the bytes must not travel through one.
public enum SharedMemoryError: Error, Sendable, Equatable, CustomStringConvertible {
    case system(String, errno: Int32)
    case invalid(String)
    case tooLarge(String, bytes: Int)

    public var description: String {
        switch self {
        case .system(let what, let code): return "\(what): \(String(cString: strerror(code)))"
        case .invalid(let m), .tooLarge(let m, _): return m
        }
    }
}

/// A registered region as `GET /v1/regions` lists it (daemon and clients share the type).
public struct SharedRegionInfo: Sendable, Codable, Equatable {
    public var name: String
    public var path: String
    public var bytes: Int
    /// The process whose exit unregisters the region.
    public var owner_pid: Int32?

    public init(name: String, path: String, bytes: Int, owner_pid: Int32?) {
        self.name = name
        self.path = path
        self.bytes = bytes
        self.owner_pid = owner_pid
    }
}

/// A writable region backed by a memfd whose size is sealed: the daemon that maps it can rely
/// on it never shrinking. Other processes of the same user open it at `path`.
///
/// `@unchecked Sendable`: the mapping and descriptor are fixed for the object's life; callers
/// write disjoint slots of `bytes` and hand each to the daemon only once it is complete.
public final class SharedMemoryRegion: @unchecked Sendable {
    public let bytes: UnsafeMutableRawBufferPointer
    let fd: Int32

    public init(byteCount: Int, name: String = "logitd-bodies") throws(SharedMemoryError) {
        guard byteCount >= 1 else { throw .invalid("a shared-memory region needs at least 1 byte, got \(byteCount)") }
        let fd = logitd_memfd_create(name)
        guard fd >= 0 else { throw .system("memfd_create", errno: errno) }
        guard ftruncate(fd, off_t(byteCount)) == 0 else {
            let code = errno
            close(fd)
            throw .system("sizing a \(byteCount)-byte shared-memory region", errno: code)
        }
        guard logitd_seal_size(fd) == 0 else {
            let code = errno
            close(fd)
            throw .system("sealing the region's size", errno: code)
        }
        guard let base = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            let code = errno
            close(fd)
            throw .system("mapping \(byteCount) bytes of shared memory", errno: code)
        }
        self.fd = fd
        bytes = UnsafeMutableRawBufferPointer(start: base, count: byteCount)
    }

    /// Where another process of this user opens the region while this object lives.
    public var path: String { "/proc/\(getpid())/fd/\(fd)" }

    deinit {
        munmap(bytes.baseAddress, bytes.count)
        close(fd)
    }
}

/// A region opened read-only by the daemon. Only size-sealed memfds of the daemon's own user are
/// accepted: a file the client could truncate would turn every later read of the lost pages
/// into a SIGBUS.
///
/// `@unchecked Sendable`: immutable after init; the bytes belong to the client, and what the
/// daemon derives from them is validated like any request body.
public final class SharedMemoryMapping: @unchecked Sendable {
    public let path: String
    public let byteCount: Int
    /// The process that owns the region when the path is `/proc/PID/fd/N`; the daemon drops
    /// regions whose owner has exited.
    public let ownerPID: Int32?
    let base: UnsafeRawPointer

    /// `maxBytes` is checked before anything is mapped: mapping populates every page, so an
    /// oversized (or sparse) region would cost the daemon that much memory.
    public init(path: String, maxBytes: Int = .max) throws(SharedMemoryError) {
        // O_NONBLOCK: a FIFO given as a path must not hang the daemon in open().
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .system("opening \(path)", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system("stat of \(path)", errno: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .invalid("\(path) is not a shared-memory file (memfd)") }
        // Only a teacher running as the daemon's own user may hand it memory: a daemon with
        // more rights (root) must not become a way to read other users' memfds.
        guard st.st_uid == geteuid() else {
            throw .invalid("\(path) belongs to uid \(st.st_uid), not to this process's uid \(geteuid()); the teacher must run as the same user")
        }
        switch logitd_size_is_sealed(fd) {
        case 1: break
        case 0: throw .invalid("\(path) can still shrink: seal it with F_SEAL_SHRINK (memfd_create with MFD_ALLOW_SEALING, then F_ADD_SEALS)")
        default: throw .invalid("\(path) is not a memfd and cannot be sealed against shrinking")
        }
        let size = Int(st.st_size)
        guard size >= 1 else { throw .invalid("\(path) is empty") }
        guard size <= maxBytes else { throw .tooLarge("\(path) holds \(size) bytes, more than the \(maxBytes) bytes regions may still map", bytes: size) }
        // MAP_POPULATE: the page tables are built once, here, instead of by ~150 faults per
        // 600 KB row on every request's first read.
        guard let base = mmap(nil, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0), base != MAP_FAILED else {
            throw .system("mapping \(size) bytes of \(path)", errno: errno)
        }
        self.path = path
        byteCount = size
        ownerPID = Self.owner(of: path)
        self.base = UnsafeRawPointer(base)
    }

    /// The bytes `offset ..< offset + length`, or an error saying how they overrun the region.
    public func bytes(offset: Int, length: Int) throws(SharedMemoryError) -> UnsafeRawBufferPointer {
        guard offset >= 0, length >= 0, offset <= byteCount, length <= byteCount - offset else {
            throw .invalid("bytes \(offset) ..< \(offset) + \(length) lie outside the region's \(byteCount) bytes")
        }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    /// True once the owning process has exited (never for a path without a PID).
    public var ownerHasExited: Bool {
        guard let ownerPID else { return false }
        return kill(ownerPID, 0) != 0 && errno == ESRCH
    }

    /// The PID of a path of exactly the form `/proc/PID/fd/N` (decimal digits only, no other
    /// component), else nil: "self", "..", doubled slashes, a NUL or a symlink's own name do not
    /// say whose memory it is.
    public static func owner(of path: String) -> Int32? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        func digits(_ s: Substring) -> Bool { !s.isEmpty && s.utf8.count <= 10 && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "proc", digits(parts[2]), parts[3] == "fd", digits(parts[4]) else {
            return nil
        }
        return Int32(parts[2])
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
}
