import Foundation

/// Read access to a shard file, either through one read-only `mmap` (zero-copy, the default)
/// or through `pread` (network filesystems, where a mapping can fault on a server hiccup).
/// Immutable after `init`; the mapped bytes are never written, so sharing is race-free.
final class ShardFile: @unchecked Sendable {
    let path: String
    let fd: Int32
    /// Bytes this reader may look at: the file size, or the committed length of an open shard.
    let size: UInt64
    private let mapping: UnsafeRawPointer?

    init(path: String, access: ShardReader.Access, limit: UInt64? = nil) throws(ShardError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ShardError(path: path, reason: "cannot open for reading", errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw ShardError(path: path, reason: "fstat", errno: e)
        }
        let fileSize = UInt64(st.st_size)
        if let limit, limit > fileSize {
            close(fd)
            throw ShardError(path: path, reason: "committed length \(limit) exceeds the file size \(fileSize)")
        }
        let size = limit ?? fileSize
        var mapping: UnsafeRawPointer? = nil
        if access == .mmap && size > 0 {
            let p = mmap(nil, Int(size), PROT_READ, MAP_SHARED, fd, 0)
            guard let p, p != MAP_FAILED else {
                let e = errno
                close(fd)
                throw ShardError(path: path, reason: "mmap of \(size) bytes", errno: e)
            }
            mapping = UnsafeRawPointer(p)
        }
        self.fd = fd
        self.size = size
        self.mapping = mapping
    }

    deinit {
        if let mapping { munmap(UnsafeMutableRawPointer(mutating: mapping), Int(size)) }
        close(fd)
    }

    /// Calls `body` with `count` bytes at `offset`, after checking the range lies inside `size`.
    func withBytes<R>(offset: UInt64, count: Int, block: Int? = nil, what: String,
                      _ body: (UnsafeRawBufferPointer) throws(ShardError) -> R) throws(ShardError) -> R {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(max(count, 0)))
        guard count >= 0, !overflow, end <= size else {
            throw ShardError(path: path, block: block,
                             reason: "\(what) at offset \(offset) of \(count) bytes extends past the end (\(size) bytes)")
        }
        if let mapping {
            return try body(UnsafeRawBufferPointer(start: mapping + Int(offset), count: count))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { throw ShardError(path: path, block: block, reason: "\(what): unexpected end of file at \(offset + UInt64(done))") }
                throw ShardError(path: path, block: block, reason: "\(what): pread", errno: errno)
            }
            done += n
        }
        return try body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count))
    }
}

