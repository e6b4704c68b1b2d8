import CLZ4
import CZstd

/// Compression of one block payload. Every block is an independent frame, so one random
/// read decompresses one block and nothing else.
enum BlockCompression {
    /// Compresses `raw` with `codec`. zstd levels outside the library's range are clamped by
    /// zstd itself; we validate them in `ShardWriterOptions` first.
    static func compress(_ raw: UnsafeRawBufferPointer, codec: BlockCodec, zstdLevel: Int,
                         path: String, block: Int) throws(ShardError) -> [UInt8] {
        switch codec {
        case .none:
            return Array(raw)
        case .zstd:
            let bound = ZSTD_compressBound(raw.count)
            var out = [UInt8](repeating: 0, count: bound)
            let n = out.withUnsafeMutableBytes { dst in
                ZSTD_compress(dst.baseAddress, bound, raw.baseAddress, raw.count, Int32(zstdLevel))
            }
            if ZSTD_isError(n) != 0 {
                throw ShardError(path: path, block: block,
                                 reason: "zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))")
            }
            out.removeLast(bound - n)
            return out
        case .lz4:
            guard raw.count <= Int(LZ4_MAX_INPUT_SIZE) else {
                throw ShardError(path: path, block: block, reason: "block of \(raw.count) bytes exceeds the lz4 input limit")
            }
            let bound = Int(LZ4_compressBound(Int32(raw.count)))
            var out = [UInt8](repeating: 0, count: bound)
            let n = out.withUnsafeMutableBytes { dst in
                LZ4_compress_default(raw.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     Int32(raw.count), Int32(bound))
            }
            guard n > 0 || raw.count == 0 else {
                throw ShardError(path: path, block: block, reason: "lz4 compression failed")
            }
            out.removeLast(bound - Int(n))
            return out
        }
    }

    /// Decompresses `stored` into `dst`, which has exactly the declared raw size. Fails unless the
    /// frame decodes to exactly that many bytes (a bomb or a short frame is corruption).
    static func decompress(_ stored: UnsafeRawBufferPointer, codec: BlockCodec,
                           into dst: UnsafeMutableRawBufferPointer,
                           path: String, block: Int) throws(ShardError) {
        let rawCount = dst.count
        switch codec {
        case .none:
            guard stored.count == rawCount else {
                throw ShardError(path: path, block: block,
                                 reason: "uncompressed block stores \(stored.count) bytes but declares \(rawCount) raw bytes")
            }
            if rawCount > 0 { dst.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: rawCount) }
        case .zstd:
            let declared = ZSTD_getFrameContentSize(stored.baseAddress, stored.count)
            guard declared == UInt64(rawCount) else {
                throw ShardError(path: path, block: block,
                                 reason: "zstd frame declares \(Int64(bitPattern: declared)) content bytes, block header says \(rawCount)")
            }
            let n = ZSTD_decompress(dst.baseAddress, rawCount, stored.baseAddress, stored.count)
            if ZSTD_isError(n) != 0 {
                throw ShardError(path: path, block: block,
                                 reason: "zstd decompression failed: \(String(cString: ZSTD_getErrorName(n)))")
            }
            guard n == rawCount else {
                throw ShardError(path: path, block: block, reason: "zstd produced \(n) bytes, expected \(rawCount)")
            }
        case .lz4:
            guard stored.count <= Int(Int32.max), rawCount <= Int(Int32.max) else {
                throw ShardError(path: path, block: block, reason: "lz4 block too large")
            }
            let n = LZ4_decompress_safe(stored.baseAddress?.assumingMemoryBound(to: CChar.self),
                                        dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                                        Int32(stored.count), Int32(rawCount))
            guard n == Int32(rawCount) else {
                throw ShardError(path: path, block: block,
                                 reason: n < 0 ? "lz4 data is corrupt" : "lz4 produced \(n) bytes, expected \(rawCount)")
            }
        }
    }
}
