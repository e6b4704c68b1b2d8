import LogitCore

/// Accumulates validated sequences column by column and lays them out as one raw block
/// payload (SHARD_FORMAT.md, "Block payload"). Separate byte planes per column let zstd's
/// entropy stage model each kind of byte on its own.
struct BlockBuilder {
    let idBytes: Int
    let scale: Float

    var seqTokens: [UInt32] = []
    var seqCandidates: [UInt32] = []
    var seqEscapes: [UInt32] = []
    var seqKeyBytes: [UInt16] = []
    var seqFlags: [UInt8] = []
    var keys: [UInt8] = []
    var firstTokens: [UInt32] = []
    var ks: [UInt16] = []
    var widths: [UInt8] = []
    var goldIndex: [UInt16] = []
    var goldForced: [Bool] = []
    var mask: [Bool] = []
    /// Candidate ids by width class: `idsByWidth[w − 1]` holds the ids of sets whose largest id
    /// fits in w bytes. Splitting by class gives zstd's order-0 entropy coder homogeneous planes.
    var idsByWidth: [[UInt32]]
    var candidates = 0
    var lpFirst: [UInt16] = []
    var lpDelta: [UInt8] = []
    var lpEscapes: [UInt32] = []
    private var scratch: [UInt64] = []

    init(idBytes: Int, scale: Float) {
        self.idBytes = idBytes
        self.scale = scale
        idsByWidth = Array(repeating: [], count: idBytes)
    }

    var sequenceCount: Int { seqTokens.count }
    var positions: Int { ks.count }
    var isEmpty: Bool { seqTokens.isEmpty }

    /// Exact size of the raw payload `build()` would produce.
    var rawBytes: Int {
        Self.fixedRawBytes(sequences: sequenceCount, keyBytes: keys.count, positions: positions, maskedPositions: mask.count,
                           candidates: candidates, escapes: lpEscapes.count, idBytes: idBytes)
            + idsByWidth.enumerated().reduce(0) { $0 + ($1.offset + 1) * $1.element.count }
    }

    /// Everything but the id planes (whose size depends on the width classes).
    static func fixedRawBytes(sequences n: Int, keyBytes: Int, positions p: Int, maskedPositions m: Int,
                              candidates c: Int, escapes e: Int, idBytes b: Int) -> Int {
        15 * n + keyBytes + b * n + 2 * p + p + 2 * p + (p + 7) / 8 + (m + 7) / 8 + 2 * p + (c - p) + 4 * e
    }

    /// Whether the pending block must be cut before `record` goes in (it could overflow the block
    /// caps); throws when the record could not fit even an empty block.
    func mustCut(before record: SequenceRecord, idBytes: Int, path: String) throws(ShardError) -> Bool {
        let worst = Self.worstCaseBytes(record, idBytes: idBytes)
        guard worst <= ShardLayout.maxBlockRawBytes else {
            throw ShardError(path: path, reason: "sequence '\(record.key)' may need up to \(worst) bytes, more than a block holds (\(ShardLayout.maxBlockRawBytes)); split it")
        }
        return !isEmpty && (rawBytes + worst > ShardLayout.maxBlockRawBytes || sequenceCount >= ShardLayout.maxSequencesPerBlock)
    }

    /// Upper bound of what `record` adds to the raw size (every code escaped), used to decide
    /// block cuts before touching the builder.
    static func worstCaseBytes(_ r: SequenceRecord, idBytes: Int) -> Int {
        let p = r.positions, c = r.candidates
        return 15 + r.key.utf8.count + idBytes + 7 * p + 2 + idBytes * c + c + 4 * c
    }

    /// Appends a record that already passed `SequenceRecord.validate` (so every set is
    /// non-empty and holds its gold token).
    mutating func append(_ r: SequenceRecord) {
        let key = Array(r.key.utf8)
        seqTokens.append(UInt32(r.tokens.count))
        seqCandidates.append(UInt32(r.ids.count))
        seqKeyBytes.append(UInt16(key.count))
        seqFlags.append(r.lossMask == nil ? 0 : 1)
        keys.append(contentsOf: key)
        firstTokens.append(r.tokens[0])
        if let m = r.lossMask { mask.append(contentsOf: m.lazy.map { $0 != 0 }) }
        goldForced.append(contentsOf: r.goldForced)
        candidates += r.ids.count
        let escapesBefore = lpEscapes.count
        for t in 0..<r.positions {
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            ks.append(UInt16(hi - lo))
            canonicalOrder(ids: r.ids, logprobs: r.logprobs, range: lo..<hi, scale: scale, into: &scratch)
            let gold = r.tokens[t + 1]
            var maxId: UInt32 = 0
            for (j, key) in scratch.enumerated() {
                let id = UInt32(truncatingIfNeeded: key)
                maxId = max(maxId, id)
                if id == gold { goldIndex.append(UInt16(j)) }
            }
            let w = maxId < 1 << 8 ? 1 : maxId < 1 << 16 ? 2 : maxId < 1 << 24 ? 3 : 4
            widths.append(UInt8(w))
            var previous: UInt32 = 0
            for (j, key) in scratch.enumerated() {
                let code = UInt32(truncatingIfNeeded: key >> 32)
                idsByWidth[w - 1].append(UInt32(truncatingIfNeeded: key))
                if j == 0 {
                    if code < 0xFFFF { lpFirst.append(UInt16(code)) } else { lpFirst.append(0xFFFF); lpEscapes.append(code) }
                } else {
                    let d = code - previous
                    if d < 0xFF { lpDelta.append(UInt8(d)) } else { lpDelta.append(0xFF); lpEscapes.append(d) }
                }
                previous = code
            }
        }
        seqEscapes.append(UInt32(lpEscapes.count - escapesBefore))
    }

    mutating func reset() {
        self = BlockBuilder(idBytes: idBytes, scale: scale)
    }

    /// The raw payload, sections in the order of SHARD_FORMAT.md.
    func build() -> [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(rawBytes)
        for v in seqTokens { w.u32(v) }
        for v in seqCandidates { w.u32(v) }
        for v in seqEscapes { w.u32(v) }
        for v in seqKeyBytes { w.u16(v) }
        w.raw(seqFlags)
        w.raw(keys)
        Self.planes(firstTokens, count: idBytes, into: &w)
        Self.planes(ks.map(UInt32.init), count: 2, into: &w)
        w.raw(widths)
        Self.planes(goldIndex.map(UInt32.init), count: 2, into: &w)
        Self.bitmap(goldForced, into: &w)
        Self.bitmap(mask, into: &w)
        for (i, ids) in idsByWidth.enumerated() { Self.planes(ids, count: i + 1, into: &w) }
        Self.planes(lpFirst.map(UInt32.init), count: 2, into: &w)
        w.raw(lpDelta)
        for v in lpEscapes { w.u32(v) }
        precondition(w.bytes.count == rawBytes, "block layout size mismatch")
        return w.bytes
    }

    /// Byte plane b holds byte b (little-endian) of every value. Written through a pointer: a
    /// lazy map appended element by element was a visible share of ingest time.
    static func planes(_ values: [UInt32], count: Int, into w: inout ByteWriter) {
        let n = values.count
        let start = w.bytes.count
        w.zeros(n * count)
        w.bytes.withUnsafeMutableBufferPointer { out in
            values.withUnsafeBufferPointer { v in
                for b in 0..<count {
                    let shift = UInt32(8 * b), base = start + b * n
                    for i in 0..<n { out[base + i] = UInt8(truncatingIfNeeded: v[i] &>> shift) }
                }
            }
        }
    }

    /// Bit i of the bitmap is byte i/8, bit i%8 (least significant first); padding bits are 0.
    static func bitmap(_ bits: [Bool], into w: inout ByteWriter) {
        var byte: UInt8 = 0
        for (i, b) in bits.enumerated() {
            if b { byte |= 1 << UInt8(i & 7) }
            if i & 7 == 7 { w.u8(byte); byte = 0 }
        }
        if bits.count & 7 != 0 { w.u8(byte) }
    }
}
