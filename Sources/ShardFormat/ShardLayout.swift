import Foundation

/// Fixed numbers of the on-disk layout. SHARD_FORMAT.md is the normative description; the
/// names here follow its section titles.
enum ShardLayout {
    static let headerMagic: [UInt8] = Array("LGTSHARD".utf8)
    static let trailerMagic: [UInt8] = Array("LGTSEND!".utf8)
    static let blockMagic: UInt32 = 0x4B4C_4247   // "GBLK" as little-endian bytes 47 42 4C 4B
    static let footerMagic: UInt32 = 0x5254_4F46  // "FOTR" as bytes 46 4F 54 52
    static let majorVersion: UInt16 = 1
    static let minorVersion: UInt16 = 0

    static let alignment = 64
    static let fixedHeaderBytes = 64
    static let maxHeaderBytes = 64 << 10
    static let blockHeaderBytes = 64
    static let footerFixedBytes = 48
    static let indexEntryBytes = 64
    static let trailerBytes = 64

    /// Hard caps that bound what a hostile file can make a reader allocate.
    static let maxBlockRawBytes = 64 << 20
    static let maxBlockStoredBytes = maxBlockRawBytes + (maxBlockRawBytes >> 7) + (1 << 16)
    static let maxSequencesPerBlock = 1 << 16
    /// Largest log-prob code; log-probs below −maxCode/scale are clamped (documented).
    static let maxCode: UInt32 = UInt32.max

    @inline(__always) static func padding(_ n: Int, _ alignment: Int) -> Int { (alignment - n % alignment) % alignment }
    @inline(__always) static func aligned(_ n: Int) -> Int { n + padding(n, alignment) }
    static func aligned(_ n: UInt64) -> UInt64 { (n + 63) & ~63 }
}

/// The file header: magic, version, flags, lengths, shard id, dataset provenance.
struct FileHeader: Equatable {
    var shardID: UUID
    var provenance: ShardProvenance
    var headerLength: Int

    /// Encodes header bytes (length a multiple of 64) with the header checksum filled in.
    static func encode(shardID: UUID, provenance: ShardProvenance) -> [UInt8] {
        let body = provenance.encodeBody()
        var w = ByteWriter()
        w.raw(ShardLayout.headerMagic)
        w.u16(ShardLayout.majorVersion)
        w.u16(ShardLayout.minorVersion)
        w.u32(0)                                   // flags
        let total = ShardLayout.aligned(ShardLayout.fixedHeaderBytes + body.count)
        w.u32(UInt32(total))
        w.u32(UInt32(body.count))
        withUnsafeBytes(of: shardID.uuid) { w.raw(Array($0)) }
        w.u64(0)                                   // checksum placeholder
        w.u64(UInt64(provenance.vocabSize))
        w.f32(provenance.logprobScale)
        w.u8(UInt8(provenance.idBytes))
        w.zeros(3)
        w.raw(body)
        w.pad(to: ShardLayout.alignment)
        w.patchU64(at: 40, Checksum.xxh3(w.bytes))
        return w.bytes
    }

    /// Reads the fixed 64 bytes: returns the full header length to read next.
    static func headerLength(fixed: UnsafeRawBufferPointer, path: String) throws(ShardError) -> Int {
        var r = ByteReader(fixed, path: path, what: "file header")
        let magic = try r.bytes(8)
        guard magic == ShardLayout.headerMagic else {
            throw ShardError(path: path, reason: "not a logitd shard: header magic is \(magic), expected \"LGTSHARD\"")
        }
        let major = try r.u16()
        let minor = try r.u16()
        guard major == ShardLayout.majorVersion else {
            throw ShardError(path: path, reason: "unsupported format version \(major).\(minor), this reader reads major version \(ShardLayout.majorVersion)")
        }
        let flags = try r.u32()
        guard flags == 0 else { throw ShardError(path: path, reason: "header flags 0x\(String(flags, radix: 16)): unknown flag bits set") }
        let length = Int(try r.u32())
        guard length >= ShardLayout.fixedHeaderBytes, length <= ShardLayout.maxHeaderBytes,
              length % ShardLayout.alignment == 0 else {
            throw ShardError(path: path, reason: "header length \(length) must be a multiple of 64 in 64…\(ShardLayout.maxHeaderBytes)")
        }
        return length
    }

    /// Parses and verifies a complete header (`bytes.count == headerLength`).
    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws(ShardError) -> FileHeader {
        let length = try headerLength(fixed: UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, 64)]), path: path)
        guard bytes.count == length else {
            throw ShardError(path: path, reason: "header truncated: \(bytes.count) of \(length) bytes")
        }
        var copy = Array(bytes)
        var r = ByteReader(bytes, path: path, what: "file header")
        try r.skip(20)
        let bodyLength = Int(try r.u32())
        guard bodyLength <= length - ShardLayout.fixedHeaderBytes,
              ShardLayout.aligned(ShardLayout.fixedHeaderBytes + bodyLength) == length else {
            throw ShardError(path: path, reason: "provenance length \(bodyLength) does not fit header length \(length)")
        }
        let uuidBytes = try r.bytes(16)
        let stored = try r.u64()
        for i in 40..<48 { copy[i] = 0 }
        let actual = Checksum.xxh3(copy)
        guard stored == actual else {
            throw ShardError(path: path, reason: "header checksum mismatch (stored \(hex(stored)), computed \(hex(actual)))")
        }
        let vocab = try r.u64()
        let scale = try r.f32()
        let idBytes = Int(try r.u8())
        try r.skip(3)
        guard vocab >= 2, vocab <= UInt64(ShardProvenance.maxVocabSize) else {
            throw ShardError(path: path, reason: "vocab size \(vocab) out of range 2…\(ShardProvenance.maxVocabSize)")
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[64 ..< 64 + bodyLength])
        let prov = try ShardProvenance.decodeBody(body, vocabSize: Int(vocab), logprobScale: scale, path: path)
        guard idBytes == prov.idBytes else {
            throw ShardError(path: path, reason: "header id width \(idBytes) bytes, expected \(prov.idBytes) for vocab \(vocab)")
        }
        for i in (64 + bodyLength)..<length where bytes[i] != 0 {
            throw ShardError(path: path, reason: "header padding byte \(i) is not zero")
        }
        let uuid = uuidBytes.withUnsafeBytes { $0.loadUnaligned(as: uuid_t.self) }
        return FileHeader(shardID: UUID(uuid: uuid), provenance: prov, headerLength: length)
    }
}

/// One block's fixed 64-byte header; the same fields (plus offset) form a footer index entry.
public struct BlockInfo: Sendable, Equatable {
    /// File offset of the block header; the payload starts 64 bytes later.
    public var offset: UInt64
    public var storedBytes: Int
    public var rawBytes: Int
    public var codec: BlockCodec
    public var checksum: UInt64
    public var firstSequence: Int
    public var sequenceCount: Int
    public var positions: Int
    public var candidates: Int

    /// Offset just past the block's padding: where the next block (or the footer) starts.
    public var end: UInt64 { offset + UInt64(ShardLayout.blockHeaderBytes) + ShardLayout.aligned(UInt64(storedBytes)) }

    func encodeHeader() -> [UInt8] {
        var w = ByteWriter()
        w.u32(ShardLayout.blockMagic)
        w.u8(codec.rawValue)
        w.zeros(3)
        w.u64(UInt64(storedBytes))
        w.u64(UInt64(rawBytes))
        w.u64(checksum)
        w.u64(UInt64(firstSequence))
        w.u32(UInt32(sequenceCount))
        w.u32(0)
        w.u64(UInt64(positions))
        w.u64(UInt64(candidates))
        return w.bytes
    }

    /// Block checksum: XXH3-64 over the 64-byte block header with its checksum field (bytes
    /// 24..<32) zeroed, followed by the stored payload bytes.
    static func checksum(header: [UInt8], payload: UnsafeRawBufferPointer) -> UInt64 {
        var h = header
        for i in 24..<32 { h[i] = 0 }
        let s = StreamingXXH3()
        s.update(h)
        s.update(payload)
        return s.digest()
    }

    func encodeIndexEntry(into w: inout ByteWriter) {
        w.u64(offset)
        w.u64(UInt64(storedBytes))
        w.u64(UInt64(rawBytes))
        w.u64(checksum)
        w.u64(UInt64(firstSequence))
        w.u64(UInt64(positions))
        w.u64(UInt64(candidates))
        w.u32(UInt32(sequenceCount))
        w.u8(codec.rawValue)
        w.zeros(3)
    }

    /// Range checks shared by block headers and index entries: sizes under the caps and
    /// counts consistent with the raw size, before anything is allocated.
    static func validated(offset: UInt64, stored: UInt64, raw: UInt64, codecByte: UInt8, checksum: UInt64,
                          firstSequence: UInt64, sequences: UInt64, positions: UInt64, candidates: UInt64,
                          path: String, block: Int) throws(ShardError) -> BlockInfo {
        func fail(_ r: String) -> ShardError { ShardError(path: path, block: block, reason: r) }
        guard let codec = BlockCodec(rawValue: codecByte) else { throw fail("unknown codec byte \(codecByte)") }
        guard raw <= UInt64(ShardLayout.maxBlockRawBytes) else {
            throw fail("declares \(raw) raw bytes, more than the \(ShardLayout.maxBlockRawBytes)-byte cap")
        }
        guard stored >= 1, stored <= UInt64(ShardLayout.maxBlockStoredBytes) else {
            throw fail("declares \(stored) stored bytes, expected 1…\(ShardLayout.maxBlockStoredBytes)")
        }
        guard sequences >= 1, sequences <= UInt64(ShardLayout.maxSequencesPerBlock) else {
            throw fail("declares \(sequences) sequences, expected 1…\(ShardLayout.maxSequencesPerBlock)")
        }
        // Every position costs at least 3 raw bytes and every candidate at least 1: counts
        // beyond that are lies, caught before anything is sized from them.
        guard positions >= sequences, positions <= raw / 3, candidates >= positions, candidates <= raw else {
            throw fail("counts (\(sequences) sequences, \(positions) positions, \(candidates) candidates) inconsistent with \(raw) raw bytes")
        }
        guard firstSequence < UInt64(Int.max / 2), offset % 64 == 0 else {
            throw fail("first sequence \(firstSequence) or offset \(offset) invalid")
        }
        return BlockInfo(offset: offset, storedBytes: Int(stored), rawBytes: Int(raw), codec: codec, checksum: checksum,
                         firstSequence: Int(firstSequence), sequenceCount: Int(sequences),
                         positions: Int(positions), candidates: Int(candidates))
    }

    static func decodeHeader(_ bytes: UnsafeRawBufferPointer, offset: UInt64, path: String, block: Int) throws(ShardError) -> BlockInfo {
        var r = ByteReader(bytes, path: path, block: block, what: "block header")
        let magic = try r.u32()
        guard magic == ShardLayout.blockMagic else {
            throw ShardError(path: path, block: block, reason: "block magic 0x\(String(magic, radix: 16)) at offset \(offset), expected 0x\(String(ShardLayout.blockMagic, radix: 16))")
        }
        let codec = try r.u8()
        try r.skip(3)
        let stored = try r.u64(), raw = try r.u64(), sum = try r.u64(), first = try r.u64()
        let seqs = try r.u32()
        try r.skip(4)
        let pos = try r.u64(), cand = try r.u64()
        return try validated(offset: offset, stored: stored, raw: raw, codecByte: codec, checksum: sum,
                             firstSequence: first, sequences: UInt64(seqs), positions: pos, candidates: cand,
                             path: path, block: block)
    }

    static func decodeIndexEntry(_ r: inout ByteReader, path: String, block: Int) throws(ShardError) -> BlockInfo {
        let offset = try r.u64(), stored = try r.u64(), raw = try r.u64(), sum = try r.u64()
        let first = try r.u64(), pos = try r.u64(), cand = try r.u64()
        let seqs = try r.u32()
        let codec = try r.u8()
        try r.skip(3)
        return try validated(offset: offset, stored: stored, raw: raw, codecByte: codec, checksum: sum,
                             firstSequence: first, sequences: UInt64(seqs), positions: pos, candidates: cand,
                             path: path, block: block)
    }
}

/// The fixed 64-byte trailer at the end of a sealed shard.
struct Trailer {
    var footerOffset: UInt64
    var footerLength: UInt64
    var footerChecksum: UInt64
    var blockCount: UInt64
    var sequenceCount: UInt64

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.u64(footerOffset)
        w.u64(footerLength)
        w.u64(footerChecksum)
        w.u64(blockCount)
        w.u64(sequenceCount)
        w.u16(ShardLayout.majorVersion)
        w.u16(ShardLayout.minorVersion)
        w.u32(0)
        w.u64(Checksum.xxh3(w.bytes))
        w.raw(ShardLayout.trailerMagic)
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws(ShardError) -> Trailer {
        var r = ByteReader(bytes, path: path, what: "trailer")
        let fo = try r.u64(), fl = try r.u64(), fc = try r.u64(), bc = try r.u64(), sc = try r.u64()
        let major = try r.u16(), minor = try r.u16()
        try r.skip(4)
        let stored = try r.u64()
        let magic = try r.bytes(8)
        guard magic == ShardLayout.trailerMagic else {
            throw ShardError(path: path, reason: "trailer magic missing: not a sealed shard (truncated, or still open?)")
        }
        let actual = Checksum.xxh3(UnsafeRawBufferPointer(rebasing: bytes[0..<48]))
        guard stored == actual else {
            throw ShardError(path: path, reason: "trailer checksum mismatch (stored \(hex(stored)), computed \(hex(actual)))")
        }
        guard major == ShardLayout.majorVersion else {
            throw ShardError(path: path, reason: "trailer declares unsupported format version \(major).\(minor)")
        }
        return Trailer(footerOffset: fo, footerLength: fl, footerChecksum: fc, blockCount: bc, sequenceCount: sc)
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
