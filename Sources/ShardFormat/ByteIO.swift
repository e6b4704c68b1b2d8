/// Little-endian encoding into a growable byte array (headers, footers, block payloads).
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    /// Pads with zeros to a multiple of `alignment` (a power of two).
    mutating func pad(to alignment: Int) { zeros(ShardLayout.padding(bytes.count, alignment)) }
    /// Overwrites 8 bytes at `offset` (checksums filled in after the fact).
    mutating func patchU64(at offset: Int, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { src in
            for i in 0..<8 { bytes[offset + i] = src[i] }
        }
    }
}

/// Bounds-checked little-endian decoding of untrusted bytes: every read checks the remaining
/// length first and throws a `ShardError` naming the structure being parsed.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset: Int = 0
    let path: String
    let block: Int?
    let what: String

    init(_ buffer: UnsafeRawBufferPointer, path: String, block: Int? = nil, what: String) {
        self.buffer = buffer
        self.path = path
        self.block = block
        self.what = what
    }

    var remaining: Int { buffer.count - offset }

    private mutating func take(_ n: Int) throws(ShardError) -> Int {
        guard n >= 0, n <= remaining else {
            throw ShardError(path: path, block: block,
                             reason: "\(what) truncated: needs \(n) bytes at offset \(offset), only \(remaining) remain")
        }
        let at = offset
        offset += n
        return at
    }

    mutating func u8() throws(ShardError) -> UInt8 { buffer[try take(1)] }
    mutating func u16() throws(ShardError) -> UInt16 {
        UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self))
    }
    mutating func u32() throws(ShardError) -> UInt32 {
        UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }
    mutating func u64() throws(ShardError) -> UInt64 {
        UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }
    mutating func f32() throws(ShardError) -> Float { Float(bitPattern: try u32()) }
    mutating func f64() throws(ShardError) -> Double { Double(bitPattern: try u64()) }
    mutating func bytes(_ n: Int) throws(ShardError) -> [UInt8] {
        let at = try take(n)
        return Array(UnsafeRawBufferPointer(rebasing: buffer[at ..< at + n]))
    }
    mutating func skip(_ n: Int) throws(ShardError) { _ = try take(n) }
}
