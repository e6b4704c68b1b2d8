/// The footer of a sealed shard: totals, the block index, and a copy of the provenance body.
enum ShardFooter {
    static func encode(blocks: [BlockInfo], sequences: Int, provenanceBody: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(ShardLayout.footerMagic)
        w.u32(0)
        w.u64(UInt64(blocks.count))
        w.u64(UInt64(sequences))
        w.u64(UInt64(blocks.reduce(0) { $0 + $1.positions }))
        w.u64(UInt64(blocks.reduce(0) { $0 + $1.candidates }))
        w.u32(UInt32(provenanceBody.count))
        w.u32(0)
        for b in blocks { b.encodeIndexEntry(into: &w) }
        w.raw(provenanceBody)
        return w.bytes
    }

    /// Parses the footer and checks the index tiles the data region exactly: blocks start at the
    /// header end, each follows the previous one, the last ends at the footer, and sequence
    /// ordinals are contiguous from 0.
    static func decode(_ bytes: UnsafeRawBufferPointer, trailer: Trailer, headerLength: Int,
                       headerProvenanceBody: [UInt8], path: String) throws(ShardError) -> [BlockInfo] {
        func fail(_ r: String) -> ShardError { ShardError(path: path, reason: "footer: \(r)") }
        var r = ByteReader(bytes, path: path, what: "footer")
        guard try r.u32() == ShardLayout.footerMagic else { throw fail("magic mismatch") }
        try r.skip(4)
        let blockCount = try r.u64(), sequences = try r.u64(), positions = try r.u64(), candidates = try r.u64()
        let provLength = Int(try r.u32())
        try r.skip(4)
        guard blockCount == trailer.blockCount, sequences == trailer.sequenceCount else {
            throw fail("counts (\(blockCount) blocks, \(sequences) sequences) disagree with the trailer (\(trailer.blockCount), \(trailer.sequenceCount))")
        }
        // Each block occupies at least 128 bytes: cap the count before sizing anything from it.
        let dataBytes = trailer.footerOffset - UInt64(headerLength)
        guard blockCount <= dataBytes / 128 else {
            throw fail("declares \(blockCount) blocks, the \(dataBytes)-byte data region holds at most \(dataBytes / 128)")
        }
        let expectedLength = UInt64(ShardLayout.footerFixedBytes) + blockCount * UInt64(ShardLayout.indexEntryBytes) + UInt64(provLength)
        guard expectedLength == UInt64(bytes.count) else {
            throw fail("length \(bytes.count) but \(blockCount) index entries and a \(provLength)-byte provenance need \(expectedLength)")
        }
        var blocks: [BlockInfo] = []
        blocks.reserveCapacity(Int(blockCount))
        var next = UInt64(headerLength)
        var nextSequence = 0, posSum = 0, candSum = 0
        for i in 0..<Int(blockCount) {
            let b = try BlockInfo.decodeIndexEntry(&r, path: path, block: i)
            guard b.offset == next else {
                throw ShardError(path: path, block: i, reason: "index offset \(b.offset), expected \(next) (blocks must be contiguous)")
            }
            guard b.firstSequence == nextSequence else {
                throw ShardError(path: path, block: i, reason: "index first sequence \(b.firstSequence), expected \(nextSequence)")
            }
            next = b.end
            guard next <= trailer.footerOffset else {
                throw ShardError(path: path, block: i, reason: "block ends at \(next), past the footer at \(trailer.footerOffset)")
            }
            nextSequence += b.sequenceCount
            posSum += b.positions
            candSum += b.candidates
            blocks.append(b)
        }
        guard next == trailer.footerOffset else { throw fail("blocks end at \(next), but the footer starts at \(trailer.footerOffset)") }
        guard UInt64(nextSequence) == sequences, UInt64(posSum) == positions, UInt64(candSum) == candidates else {
            throw fail("totals disagree with the sum of the index entries")
        }
        let body = try r.bytes(provLength)
        guard body == headerProvenanceBody else { throw fail("provenance copy differs from the header's") }
        return blocks
    }
}
