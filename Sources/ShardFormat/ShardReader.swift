import Foundation
import LogitCore
import Synchronization

/// Reads a shard. Sealed shards are opened from the trailer and footer; open (unsealed) shards
/// by scanning block headers up to a committed length. Header, footer and index are validated
/// against the file size before anything is trusted; a block's checksum is verified the first
/// time it is touched; decoded content is checked against the header's vocab and policy.
/// Thread-safe: share one reader between threads.
public final class ShardReader: Sendable {
    public enum Access: Sendable { case mmap, pread }

    public let path: String
    public let provenance: ShardProvenance
    public let shardID: UUID
    public let isSealed: Bool
    let headerLength: Int
    let blocks: [BlockInfo]
    let file: ShardFile
    private let state: Mutex<ReaderState>

    struct ReaderState: ~Copyable {
        var verified: [Bool]
        /// Most recently used decompressed blocks, newest last.
        var cache: [(block: Int, data: DecodedBlock)] = []
    }

    /// Decompressed blocks kept per reader (a few MiB each at the default block size).
    public static let cachedBlocks = 4

    public convenience init(sealedAt path: String, access: Access = .mmap) throws(ShardError) {
        let file = try ShardFile(path: path, access: access)
        let size = file.size
        guard size >= UInt64(ShardLayout.fixedHeaderBytes + ShardLayout.trailerBytes), size % 64 == 0 else {
            throw ShardError(path: path, reason: "file size \(size) is not a sealed shard (needs ≥ 128 bytes, a multiple of 64)")
        }
        let header = try Self.readHeader(file)
        let trailer = try file.withBytes(offset: size - 64, count: 64, what: "trailer") { (b) throws(ShardError) in
            try Trailer.decode(b, path: path)
        }
        let fo = trailer.footerOffset, fl = trailer.footerLength
        let (footerEnd, overflow) = fo.addingReportingOverflow(fl)
        guard !overflow, fo >= UInt64(header.headerLength), fo % 64 == 0,
              fl >= UInt64(ShardLayout.footerFixedBytes), footerEnd <= size - 64,
              ShardLayout.aligned(footerEnd) == size - 64 else {
            throw ShardError(path: path, reason: "trailer places the footer at \(fo) with length \(fl), inconsistent with header length \(header.headerLength) and file size \(size)")
        }
        let body = header.provenance.encodeBody()
        let blocks = try file.withBytes(offset: fo, count: Int(fl), what: "footer") { (b) throws(ShardError) in
            let actual = Checksum.xxh3(b)
            guard actual == trailer.footerChecksum else {
                throw ShardError(path: path, reason: "footer checksum mismatch (stored \(hex(trailer.footerChecksum)), computed \(hex(actual)))")
            }
            return try ShardFooter.decode(b, trailer: trailer, headerLength: header.headerLength,
                                          headerProvenanceBody: body, path: path)
        }
        try file.withBytes(offset: footerEnd, count: Int(size - 64 - footerEnd), what: "footer padding") { (b) throws(ShardError) in
            guard b.allSatisfy({ $0 == 0 }) else { throw ShardError(path: path, reason: "footer padding is not zero") }
        }
        self.init(path: path, file: file, header: header, blocks: blocks, sealed: true)
    }

    public convenience init(openAt path: String, committedLength: UInt64, access: Access = .mmap) throws(ShardError) {
        let file = try ShardFile(path: path, access: access, limit: committedLength)
        guard committedLength >= UInt64(ShardLayout.fixedHeaderBytes), committedLength % 64 == 0 else {
            throw ShardError(path: path, reason: "committed length \(committedLength) must be ≥ 64 and a multiple of 64")
        }
        let header = try Self.readHeader(file)
        var blocks: [BlockInfo] = []
        var offset = UInt64(header.headerLength)
        var nextSequence = 0
        while offset < committedLength {
            let index = blocks.count
            guard committedLength - offset >= 128 else {
                throw ShardError(path: path, block: index, reason: "only \(committedLength - offset) bytes left at offset \(offset), a block needs ≥ 128")
            }
            let info = try file.withBytes(offset: offset, count: 64, block: index, what: "block header") { (b) throws(ShardError) in
                try BlockInfo.decodeHeader(b, offset: offset, path: path, block: index)
            }
            guard info.firstSequence == nextSequence else {
                throw ShardError(path: path, block: index, reason: "first sequence \(info.firstSequence), expected \(nextSequence)")
            }
            guard info.end <= committedLength else {
                throw ShardError(path: path, block: index, reason: "block ends at \(info.end), past the committed length \(committedLength)")
            }
            blocks.append(info)
            nextSequence += info.sequenceCount
            offset = info.end
        }
        guard offset == committedLength else {
            throw ShardError(path: path, reason: "committed length \(committedLength) falls inside the header (\(header.headerLength) bytes)")
        }
        self.init(path: path, file: file, header: header, blocks: blocks, sealed: false)
    }

    private init(path: String, file: ShardFile, header: FileHeader, blocks: [BlockInfo], sealed: Bool) {
        self.path = path
        self.file = file
        self.provenance = header.provenance
        self.shardID = header.shardID
        self.headerLength = header.headerLength
        self.blocks = blocks
        self.isSealed = sealed
        self.state = Mutex(ReaderState(verified: [Bool](repeating: false, count: blocks.count)))
    }

    private static func readHeader(_ file: ShardFile) throws(ShardError) -> FileHeader {
        let length = try file.withBytes(offset: 0, count: 64, what: "file header") { (b) throws(ShardError) in
            try FileHeader.headerLength(fixed: b, path: file.path)
        }
        return try file.withBytes(offset: 0, count: length, what: "file header") { (b) throws(ShardError) in
            try FileHeader.decode(b, path: file.path)
        }
    }

    public var blockCount: Int { blocks.count }
    public var sequenceCount: Int { blocks.last.map { $0.firstSequence + $0.sequenceCount } ?? 0 }
    /// Bytes of the file this reader covers (file size, or the committed length).
    public var fileBytes: UInt64 { file.size }

    /// Where block `block` lies and what it holds. Precondition: `0 <= block < blockCount`.
    public func blockInfo(_ block: Int) -> BlockInfo { blocks[block] }

    public func sequence(block: Int, ordinal: Int) throws(ShardError) -> SequenceRecord {
        var r = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
        try decode(block: block, ordinal: ordinal, into: &r)
        return r
    }

    /// Decodes one sequence into `into`, reusing its arrays (no allocation once they have grown).
    public func decode(block: Int, ordinal: Int, into record: inout SequenceRecord) throws(ShardError) {
        let data = try load(block)
        guard ordinal >= 0, ordinal < data.info.sequenceCount else {
            throw ShardError(path: path, block: block, reason: "ordinal \(ordinal) out of range 0..<\(data.info.sequenceCount)")
        }
        try data.decode(ordinal, into: &record)
    }

    /// Decodes every sequence of a block in one go (sequential scans); `records` is resized to
    /// the block's sequence count and its elements' storage reused.
    public func decodeBlock(_ block: Int, into records: inout [SequenceRecord]) throws(ShardError) {
        let data = try load(block)
        let n = data.info.sequenceCount
        if records.count > n { records.removeLast(records.count - n) }
        while records.count < n {
            records.append(SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: []))
        }
        for i in 0..<n { try data.decode(i, into: &records[i]) }
    }

    /// Checksum plus a full decode of every sequence with semantic checks (canonical order,
    /// distinct ids, gold present): what `logitctl verify` runs.
    public func verifyBlock(_ block: Int) throws(ShardError) {
        let data = try load(block)
        var r = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
        for i in 0..<data.info.sequenceCount {
            try data.decode(i, into: &r)
            try data.verifySemantics(r, sequence: i)
        }
    }

    /// Returns the decompressed block, verifying header and checksum on first touch.
    func load(_ block: Int) throws(ShardError) -> DecodedBlock {
        guard block >= 0, block < blocks.count else {
            throw ShardError(path: path, reason: "block \(block) out of range 0..<\(blocks.count)")
        }
        if let hit = state.withLock({ s in s.cache.first(where: { $0.block == block })?.data }) { return hit }
        let info = blocks[block]
        let verified = state.withLock { $0.verified[block] }
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(info.rawBytes, 1), alignment: 64)
        let data: DecodedBlock
        do throws(ShardError) {
            try file.withBytes(offset: info.offset, count: 64 + info.storedBytes, block: block, what: "block") { (b) throws(ShardError) in
                let headerBytes = UnsafeRawBufferPointer(rebasing: b[0..<64])
                let payload = UnsafeRawBufferPointer(rebasing: b[64...])
                if !verified {
                    let onDisk = try BlockInfo.decodeHeader(headerBytes, offset: info.offset, path: path, block: block)
                    guard onDisk == info else {
                        throw ShardError(path: path, block: block, reason: "block header disagrees with the footer index entry")
                    }
                    let actual = BlockInfo.checksum(header: Array(headerBytes), payload: payload)
                    guard actual == info.checksum else {
                        throw ShardError(path: path, block: block, reason: "checksum mismatch (stored \(hex(info.checksum)), computed \(hex(actual)))")
                    }
                }
                try BlockCompression.decompress(payload, codec: info.codec,
                                                into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<info.rawBytes]),
                                                path: path, block: block)
            }
            data = try DecodedBlock(raw: UnsafeMutableRawBufferPointer(rebasing: raw[0..<info.rawBytes]), info: info,
                                    provenance: provenance, path: path, block: block)
        } catch {
            raw.deallocate()
            throw error
        }
        state.withLock { s in
            s.verified[block] = true
            s.cache.removeAll { $0.block == block }
            s.cache.append((block, data))
            if s.cache.count > Self.cachedBlocks { s.cache.removeFirst() }
        }
        return data
    }

    /// XXH3-64 of the whole file, streamed in 1 MiB reads.
    public static func fileHash(path: String) throws(ShardError) -> UInt64 {
        let file = try ShardFile(path: path, access: .pread)
        let hasher = StreamingXXH3()
        var offset: UInt64 = 0
        while offset < file.size {
            let n = Int(min(UInt64(1 << 20), file.size - offset))
            try file.withBytes(offset: offset, count: n, what: "file") { (b) throws(ShardError) in hasher.update(b) }
            offset += UInt64(n)
        }
        return hasher.digest()
    }
}
