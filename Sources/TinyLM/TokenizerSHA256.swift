import Glibc

/// SHA-256 (FIPS 180-4) of a whole message, for the tokenizer's content hash and corpus
/// identities, and of a file streamed in fixed memory (checkpoints, imported model files). One
/// implementation, `SHA256Stream`, serves both.
public enum TokenizerSHA256 {
    /// Lowercase hex digest of `message`.
    public static func hexDigest(_ message: [UInt8]) -> String {
        var sha = SHA256Stream()
        sha.update(message)
        return sha.finalizeHex()
    }

    /// Lowercase hex digest of a file's bytes, read 1 MiB at a time.
    public static func hexDigest(ofFile path: String) throws -> String {
        let fd = try FileIO.openRead(path)
        defer { close(fd) }
        var sha = SHA256Stream()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        let size = try FileIO.size(fd, path: path)
        var offset = 0
        while offset < size {
            let n = min(chunk, size - offset)
            try FileIO.read(fd, into: buffer, count: n, offset: offset, path: path)
            sha.update(UnsafeRawBufferPointer(start: buffer, count: n))
            offset += n
        }
        return sha.finalizeHex()
    }
}
