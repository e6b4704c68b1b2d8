import CZstd
import Foundation
import LogitCore

/// Writer tuning. Defaults were chosen with `logit-bench format` (see SHARD_FORMAT.md).
public struct ShardWriterOptions: Sendable {
    public var codec: BlockCodec = .zstd
    /// zstd level (1…19 useful; negative = fast levels). Decompression speed barely depends on it.
    public var zstdLevel: Int = 3
    /// A block is cut once its raw (uncompressed) payload reaches this many bytes.
    public var targetBlockBytes: Int = 1 << 20

    public init(codec: BlockCodec = .zstd, zstdLevel: Int = 3, targetBlockBytes: Int = 1 << 20) {
        self.codec = codec
        self.zstdLevel = zstdLevel
        self.targetBlockBytes = targetBlockBytes
    }

    func validate(path: String) throws(ShardError) {
        let levels = Int(ZSTD_minCLevel()) ... Int(ZSTD_maxCLevel())
        guard levels.contains(zstdLevel) else {
            throw ShardError(path: path, reason: "zstd level \(zstdLevel) outside \(levels)")
        }
        guard targetBlockBytes >= 1024, targetBlockBytes <= ShardLayout.maxBlockRawBytes else {
            throw ShardError(path: path, reason: "target block size \(targetBlockBytes) outside 1024…\(ShardLayout.maxBlockRawBytes)")
        }
    }
}

/// Where `append` put a sequence: block index and ordinal within the block.
public struct SequenceLocation: Sendable, Equatable, Hashable {
    public var block: Int
    public var ordinal: Int
    public init(block: Int, ordinal: Int) { self.block = block; self.ordinal = ordinal }
}

/// The result of sealing: what the catalog records about the immutable file.
public struct SealedShard: Sendable, Equatable {
    public var path: String
    public var bytes: UInt64
    /// XXH3-64 of the whole file.
    public var fileHash: UInt64
    public var blocks: Int
    public var sequences: Int
}

/// Appends sequences to a new shard. Blocks are cut by size and written as they fill, but only
/// `flush()` makes them durable; `seal` adds footer and trailer and renames into place. Bytes
/// are only ever appended, never rewritten (readers may have them mapped). Single owner.
/// After any I/O error the writer refuses further work: the file is recovered from its last
/// committed length instead (a failed fsync is never retried).
public final class ShardWriter {
    public let path: String
    public let provenance: ShardProvenance
    public let shardID: UUID
    public let options: ShardWriterOptions
    public private(set) var committedLength: UInt64
    public private(set) var sequenceCount: Int

    private var descriptor: OwnedDescriptor?
    private var fd: Int32 { descriptor?.fd ?? -1 }
    private var fileLength: UInt64
    private var blocks: [BlockInfo]
    private var builder: BlockBuilder
    private let hasher: StreamingXXH3
    private let provenanceBody: [UInt8]
    private var failure: String?
    private var sealed = false

    public var blockCount: Int { blocks.count }
    public var pendingSequences: Int { builder.sequenceCount }

    private init(path: String, fd: Int32, provenance: ShardProvenance, shardID: UUID, options: ShardWriterOptions,
                 length: UInt64, blocks: [BlockInfo], sequences: Int, hasher: StreamingXXH3) {
        self.path = path
        self.descriptor = OwnedDescriptor(fd)
        self.provenance = provenance
        self.shardID = shardID
        self.options = options
        self.committedLength = length
        self.fileLength = length
        self.blocks = blocks
        self.sequenceCount = sequences
        self.hasher = hasher
        self.builder = BlockBuilder(idBytes: provenance.idBytes, scale: provenance.logprobScale)
        self.provenanceBody = provenance.encodeBody()
    }

    /// Creates `path` (which must not exist), writes the header and makes it durable.
    public convenience init(creating path: String, provenance: ShardProvenance, shardID: UUID,
                            options: ShardWriterOptions = ShardWriterOptions()) throws(ShardError) {
        try provenance.validate(path: path)
        try options.validate(path: path)
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ShardError(path: path, reason: "cannot create", errno: errno) }
        let header = FileHeader.encode(shardID: shardID, provenance: provenance)
        do throws(ShardError) {
            try writeAll(fd, header, at: 0, path: path)
            try syncFile(fd, path: path)
            try syncDirectory(of: path)
        } catch {
            close(fd)
            throw error
        }
        let hasher = StreamingXXH3()
        hasher.update(header)
        self.init(path: path, fd: fd, provenance: provenance, shardID: shardID, options: options,
                  length: UInt64(header.count), blocks: [], sequences: 0, hasher: hasher)
    }

    /// Recovery: reopens an unsealed shard, verifies the header and every block up to
    /// `committedLength` (checksums and full decode), cuts the file back to `committedLength`
    /// and continues appending after it. Provenance and shard id come from the header.
    public static func resume(path: String, committedLength: UInt64,
                              options: ShardWriterOptions = ShardWriterOptions()) throws(ShardError) -> ShardWriter {
        let reader = try ShardReader(openAt: path, committedLength: committedLength, access: .pread)
        for b in 0..<reader.blockCount { try reader.verifyBlock(b) }
        try options.validate(path: path)
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw ShardError(path: path, reason: "cannot reopen for writing", errno: errno) }
        do throws(ShardError) {
            guard ftruncate(fd, off_t(committedLength)) == 0 else {
                throw ShardError(path: path, reason: "truncate to \(committedLength)", errno: errno)
            }
            try syncFile(fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        let hasher = StreamingXXH3()
        var offset: UInt64 = 0
        while offset < committedLength {
            let n = Int(min(UInt64(1 << 20), committedLength - offset))
            try reader.file.withBytes(offset: offset, count: n, what: "file") { (b) throws(ShardError) in hasher.update(b) }
            offset += UInt64(n)
        }
        let blocks = (0..<reader.blockCount).map { reader.blockInfo($0) }
        return ShardWriter(path: path, fd: fd, provenance: reader.provenance, shardID: reader.shardID, options: options,
                           length: committedLength, blocks: blocks, sequences: reader.sequenceCount, hasher: hasher)
    }


    private func checkUsable() throws(ShardError) {
        if sealed { throw ShardError(path: path, reason: "writer is sealed") }
        if let failure { throw ShardError(path: path, reason: "writer failed earlier (\(failure)); recover from the committed length") }
    }

    /// Validates `record` against the provenance's vocab and policy, then buffers it in the
    /// pending block; writes the block when it reaches the target size (not durable until `flush`).
    @discardableResult
    public func append(_ record: SequenceRecord) throws(ShardError) -> SequenceLocation {
        try checkUsable()
        do throws(LogitError) {
            try record.validate(vocabSize: provenance.vocabSize, policy: provenance.policy, logprobScale: provenance.logprobScale)
        } catch {
            throw ShardError(path: path, reason: error.description)
        }
        return try appendValidated(record)
    }

    /// `append` for a record the caller has already validated against this shard's vocab and
    /// policy (the store validates each batch before taking its lock; twice is waste).
    @discardableResult
    public func appendValidated(_ record: SequenceRecord) throws(ShardError) -> SequenceLocation {
        try checkUsable()
        if try builder.mustCut(before: record, idBytes: provenance.idBytes, path: path) { try writePendingBlock() }
        builder.append(record)
        let location = SequenceLocation(block: blocks.count, ordinal: builder.sequenceCount - 1)
        sequenceCount += 1
        if builder.rawBytes >= options.targetBlockBytes { try writePendingBlock() }
        return location
    }

    /// Writes the pending block (if any) and fsyncs. Returns the durable length: everything
    /// appended so far lies below it.
    @discardableResult
    public func flush() throws(ShardError) -> UInt64 {
        let length = try writePending()
        do { try durabilityHandle().sync() } catch { failure = error.reason; throw error }
        markDurable(upTo: length)
        return committedLength
    }

    /// Writes the pending block (if any) to the file, not yet durable; returns the file length.
    /// With `durabilityHandle().sync()` and `markDurable` this is `flush()` in three steps, so
    /// that a group commit can fsync without holding the lock that serializes appends.
    public func writePending() throws(ShardError) -> UInt64 {
        try checkUsable()
        if !builder.isEmpty { try writePendingBlock() }
        return fileLength
    }

    /// Something that can fsync this shard from another thread while appends continue; it keeps
    /// the descriptor open even if the writer is dropped meanwhile.
    public func durabilityHandle() -> DurabilityHandle {
        DurabilityHandle(descriptor: descriptor, path: path)
    }

    /// Records that everything below `length` is durable (a `sync()` that started after
    /// `writePending` returned `length` succeeded).
    public func markDurable(upTo length: UInt64) {
        committedLength = max(committedLength, min(length, fileLength))
    }

    /// Encodes and compresses validated records into whole blocks, cut at the target size, with
    /// no writer state: concurrent requests can do this in parallel and then only place the
    /// finished blocks with `append(encoded:)`.
    public static func encodeBlocks(_ records: [SequenceRecord], provenance: ShardProvenance,
                                    options: ShardWriterOptions, path: String) throws(ShardError) -> [EncodedBlock] {
        var out: [EncodedBlock] = []
        var builder = BlockBuilder(idBytes: provenance.idBytes, scale: provenance.logprobScale)
        func cut() throws(ShardError) {
            let raw = builder.build()
            let stored = try raw.withUnsafeBytes { r in
                Result { () throws(ShardError) -> [UInt8] in
                    try BlockCompression.compress(r, codec: options.codec, zstdLevel: options.zstdLevel, path: path, block: -1)
                }
            }.get()
            out.append(EncodedBlock(rawBytes: raw.count, stored: stored, codec: options.codec,
                                    sequenceCount: builder.sequenceCount, positions: builder.positions,
                                    candidates: builder.candidates))
            builder.reset()
        }
        for record in records {
            if try builder.mustCut(before: record, idBytes: provenance.idBytes, path: path) { try cut() }
            builder.append(record)
            if builder.rawBytes >= options.targetBlockBytes { try cut() }
        }
        if !builder.isEmpty { try cut() }
        return out
    }

    /// Places a block made by `encodeBlocks` (after any pending block, so order is kept).
    /// Returns its block index; its sequences have ordinals 0..<sequenceCount.
    public func append(encoded block: EncodedBlock) throws(ShardError) -> Int {
        try checkUsable()
        guard block.codec == options.codec else {
            throw ShardError(path: path, reason: "encoded block uses \(block.codec), this writer \(options.codec)")
        }
        if !builder.isEmpty { try writePendingBlock() }
        let index = blocks.count
        try writeBlock(stored: block.stored, rawBytes: block.rawBytes, sequences: block.sequenceCount,
                       positions: block.positions, candidates: block.candidates)
        sequenceCount += block.sequenceCount
        return index
    }

    /// Flushes, writes footer and trailer, fsyncs, renames to `finalPath`, fsyncs the directory.
    public func seal(to finalPath: String) throws(ShardError) -> SealedShard {
        try flush()
        let footer = ShardFooter.encode(blocks: blocks, sequences: sequenceCount, provenanceBody: provenanceBody)
        var w = ByteWriter()
        w.raw(footer)
        w.pad(to: ShardLayout.alignment)
        let trailer = Trailer(footerOffset: fileLength, footerLength: UInt64(footer.count),
                              footerChecksum: Checksum.xxh3(footer), blockCount: UInt64(blocks.count),
                              sequenceCount: UInt64(sequenceCount))
        w.raw(trailer.encode())
        do throws(ShardError) {
            try writeAll(fd, w.bytes, at: fileLength, path: path)
            hasher.update(w.bytes)
            fileLength += UInt64(w.bytes.count)
            try syncFile(fd, path: path)
            guard rename(path, finalPath) == 0 else {
                throw ShardError(path: path, reason: "rename to \(finalPath)", errno: errno)
            }
            try syncDirectory(of: finalPath)
            let from = (path as NSString).deletingLastPathComponent, to = (finalPath as NSString).deletingLastPathComponent
            if from != to { try syncDirectory(of: path) }
        } catch {
            failure = error.reason
            throw error
        }
        descriptor = nil
        sealed = true
        committedLength = fileLength
        return SealedShard(path: finalPath, bytes: fileLength, fileHash: hasher.digest(), blocks: blocks.count,
                           sequences: sequenceCount)
    }

    private func writePendingBlock() throws(ShardError) {
        let index = blocks.count
        let raw = builder.build()
        let (codec, level, path) = (options.codec, options.zstdLevel, self.path)
        let stored = try raw.withUnsafeBytes { r in
            Result { () throws(ShardError) -> [UInt8] in
                try BlockCompression.compress(r, codec: codec, zstdLevel: level, path: path, block: index)
            }
        }.get()
        // The builder's sequences were already counted by `append`.
        try writeBlock(stored: stored, rawBytes: raw.count, sequences: builder.sequenceCount,
                       positions: builder.positions, candidates: builder.candidates,
                       firstSequence: sequenceCount - builder.sequenceCount)
        builder.reset()
    }

    /// Header (with its checksum over header and payload), payload, padding; then the index entry.
    private func writeBlock(stored: [UInt8], rawBytes: Int, sequences: Int, positions: Int, candidates: Int,
                            firstSequence: Int? = nil) throws(ShardError) {
        var info = BlockInfo(offset: fileLength, storedBytes: stored.count, rawBytes: rawBytes, codec: options.codec,
                             checksum: 0, firstSequence: firstSequence ?? sequenceCount,
                             sequenceCount: sequences, positions: positions, candidates: candidates)
        info.checksum = stored.withUnsafeBytes { BlockInfo.checksum(header: info.encodeHeader(), payload: $0) }
        var w = ByteWriter()
        w.bytes.reserveCapacity(64 + stored.count + 64)
        w.raw(info.encodeHeader())
        w.raw(stored)
        w.pad(to: ShardLayout.alignment)
        do throws(ShardError) {
            try writeAll(fd, w.bytes, at: fileLength, path: path)
        } catch {
            failure = error.reason
            throw error
        }
        hasher.update(w.bytes)
        fileLength += UInt64(w.bytes.count)
        blocks.append(info)
    }
}

/// A block encoded and compressed by `ShardWriter.encodeBlocks`, not yet placed in a file.
public struct EncodedBlock: Sendable {
    public let rawBytes: Int
    public let stored: [UInt8]
    public let codec: BlockCodec
    public let sequenceCount: Int
    public let positions: Int
    public let candidates: Int
}

/// A shard's descriptor, closed when the last owner lets go.
final class OwnedDescriptor: Sendable {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

/// Fsyncs one shard file from any thread (see `ShardWriter.durabilityHandle`).
public struct DurabilityHandle: Sendable {
    let descriptor: OwnedDescriptor?
    public let path: String

    public func sync() throws(ShardError) {
        guard let descriptor else { throw ShardError(path: path, reason: "writer is sealed or closed") }
        try syncFile(descriptor.fd, path: path)
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64, path: String) throws(ShardError) {
    var done = 0
    // nil: written; 0: the file took no bytes without an error; else errno.
    let failed: Int32? = bytes.withUnsafeBytes { b in
        while done < b.count {
            let n = pwrite(fd, b.baseAddress! + done, b.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return errno }
            if n == 0 { return 0 }
            done += n
        }
        return nil
    }
    if let failed {
        throw ShardError(path: path, reason: "write of \(bytes.count) bytes at \(offset)", errno: failed == 0 ? nil : failed)
    }
}

func syncFile(_ fd: Int32, path: String) throws(ShardError) {
    guard fsync(fd) == 0 else { throw ShardError(path: path, reason: "fsync", errno: errno) }
}

func syncDirectory(of path: String) throws(ShardError) {
    do { try fsyncPath((path as NSString).deletingLastPathComponent) } catch { throw ShardError(path: path, error) }
}
