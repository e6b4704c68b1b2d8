import LogitCore

/// Builds batch bodies (clients, the teacher, tests, benchmarks).
public struct WireBatchEncoder {
    public private(set) var bytes: [UInt8] = []
    public let mode: WireMode
    public let dtype: WireDType?
    public let vocabSize: Int
    public private(set) var count = 0

    public init(mode: WireMode, vocabSize: Int, dtype: WireDType? = nil) {
        self.mode = mode
        self.vocabSize = vocabSize
        self.dtype = mode == .logits ? (dtype ?? .f32) : nil
        bytes.reserveCapacity(1 << 16)
        put32(WireBatchHeader.magic)
        put16(WireBatchHeader.version)
        bytes.append(mode.rawValue)
        bytes.append(self.dtype?.rawValue ?? 0)
        put32(UInt32(vocabSize))
        put32(0)   // sequence_count, patched by `finish`
        put64(0)
    }

    /// Appends a sets-mode sequence.
    public mutating func append(_ r: SequenceRecord) {
        precondition(mode == .sets)
        putPrefix(key: r.key, tokens: r.tokens, mask: r.lossMask)
        for t in 0..<r.positions { put16(UInt16(r.setOffsets[t + 1] - r.setOffsets[t])) }
        var flags = [UInt8](repeating: 0, count: (r.positions + 7) / 8)
        for (t, f) in r.goldForced.enumerated() where f { flags[t / 8] |= 1 << (t % 8) }
        bytes += flags
        for id in r.ids { put32(id) }
        for lp in r.logprobs { put32(lp.bitPattern) }
        count += 1
    }

    /// Appends a logits-mode sequence: `rows` holds (tokens.count − 1) × vocab values.
    /// `alignRows` pads the rows to a 64-byte body offset (flag 0x2) so the daemon reads them
    /// in place instead of copying them to aligned memory.
    public mutating func appendLogits(key: String, tokens: [UInt32], lossMask: [UInt8]? = nil, rows: UnsafeRawBufferPointer,
                                      alignRows: Bool = true) {
        precondition(mode == .logits)
        precondition(rows.count == (tokens.count - 1) * vocabSize * dtype!.byteWidth)
        putPrefix(key: key, tokens: tokens, mask: lossMask, flags: alignRows ? WireFlags.alignedRows : 0)
        if alignRows {
            let pad = (WireFlags.rowAlignment - bytes.count % WireFlags.rowAlignment) % WireFlags.rowAlignment
            bytes += repeatElement(0, count: pad)
        }
        bytes += rows
        count += 1
    }

    /// The finished body.
    public func finish() -> [UInt8] {
        var out = bytes
        withUnsafeBytes(of: UInt32(count).littleEndian) { out.replaceSubrange(12..<16, with: $0) }
        return out
    }

    private mutating func putPrefix(key: String, tokens: [UInt32], mask: [UInt8]?, flags: UInt8 = 0) {
        put16(UInt16(key.utf8.count))
        bytes += key.utf8
        put32(UInt32(tokens.count))
        bytes.append(flags | (mask == nil ? 0 : WireFlags.lossMask))
        for t in tokens { put32(t) }
        if let mask { bytes += mask }
    }

    private mutating func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    private mutating func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    private mutating func put64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
}
