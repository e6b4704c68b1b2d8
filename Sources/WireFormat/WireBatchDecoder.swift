import LogitCore

/// Parses an untrusted batch body. Every count is checked against the bytes that remain before
/// anything is allocated, ids against the vocabulary and log-probs for finiteness, each failure
/// naming its byte offset; what needs the whole set (gold present, distinct ids, K bounds) is
/// checked by `SequenceRecord.validate` in the store, which names sequence and position.
public struct WireBatchDecoder {
    /// `sequenceOffsets[i]`: where sequence i starts, for errors found after decoding.
    public private(set) var sequenceOffsets: [Int] = []
    public private(set) var header: WireBatchHeader?

    public init() {}

    public mutating func decode(_ body: UnsafeRawBufferPointer, expectedVocab: Int, maxK: Int) throws(WireError) -> WireBatch {
        var r = Cursor(body)
        guard body.count >= WireBatchHeader.byteCount else {
            throw WireError(offset: body.count, "body has \(body.count) bytes, shorter than the \(WireBatchHeader.byteCount)-byte header")
        }
        let magic = try r.u32()
        guard magic == WireBatchHeader.magic else {
            throw WireError(offset: 0, "bad magic 0x\(String(magic, radix: 16)), expected 0x3157474c (\"LGW1\")")
        }
        let version = try r.u16()
        guard version == WireBatchHeader.version else {
            throw WireError(offset: 4, "unsupported wire format version \(version), this daemon speaks version 1")
        }
        let modeByte = try r.u8()
        guard let mode = WireMode(rawValue: modeByte) else {
            throw WireError(offset: 6, "unknown mode \(modeByte), expected 1 (sets) or 2 (logits)")
        }
        let dtypeByte = try r.u8()
        var dtype: WireDType?
        switch mode {
        case .sets:
            guard dtypeByte == 0 else { throw WireError(offset: 7, "dtype must be 0 in sets mode, got \(dtypeByte)") }
        case .logits:
            guard let d = WireDType(rawValue: dtypeByte) else {
                throw WireError(offset: 7, "unknown logits dtype \(dtypeByte), expected 1 (f32), 2 (f16) or 3 (bf16)")
            }
            dtype = d
        }
        let vocab = Int(try r.u32())
        guard vocab == expectedVocab else {
            throw WireError(offset: 8, "vocab_size \(vocab) does not match the dataset's \(expectedVocab)")
        }
        let count = Int(try r.u32())
        guard count >= 1, count <= WireBatchHeader.maxSequences else {
            throw WireError(offset: 12, "sequence_count \(count), expected 1…\(WireBatchHeader.maxSequences)")
        }
        guard try r.u64() == 0 else { throw WireError(offset: 16, "reserved header bytes must be 0") }
        header = WireBatchHeader(mode: mode, dtype: dtype, vocabSize: vocab, sequenceCount: count)
        sequenceOffsets = []
        sequenceOffsets.reserveCapacity(min(count, body.count / 16))

        var records: [SequenceRecord] = []
        var logits: [WireLogitsSequence] = []
        for s in 0..<count {
            sequenceOffsets.append(r.offset)
            let keyLength = Int(try r.u16(s))
            guard keyLength >= 1, keyLength <= SequenceRecord.maxKeyBytes else {
                throw WireError(offset: r.offset - 2, sequence: s, "key_length \(keyLength), expected 1…\(SequenceRecord.maxKeyBytes)")
            }
            let keyStart = r.offset
            let keyBytes = try r.bytes(keyLength, s, "key")
            let key: String
            do { key = try SequenceKey.decode(keyBytes) } catch {
                throw WireError(offset: keyStart + error.offset, sequence: s, error.description)
            }
            let tokenCount = Int(try r.u32(s))
            guard tokenCount >= 2, tokenCount <= SequenceRecord.maxTokens else {
                throw WireError(offset: r.offset - 4, sequence: s, "token_count \(tokenCount), expected 2…\(SequenceRecord.maxTokens)")
            }
            let flagsOffset = r.offset
            let flags = try r.u8(s)
            guard flags & ~WireFlags.known == 0 else {
                throw WireError(offset: flagsOffset, sequence: s, "unknown flags 0x\(String(flags, radix: 16))")
            }
            guard flags & WireFlags.alignedRows == 0 || mode == .logits else {
                throw WireError(offset: flagsOffset, sequence: s, "flag 0x2 (aligned rows) applies to logits mode only")
            }
            let positions = tokenCount - 1
            try r.require(tokenCount * 4, s, "tokens")
            let tokensStart = r.offset
            var tokens = [UInt32](repeating: 0, count: tokenCount)
            for i in 0..<tokenCount {
                let t = r.unchecked32()
                guard Int(t) < vocab else {
                    throw WireError(offset: tokensStart + 4 * i, sequence: s, "token \(i) is \(t), expected < vocab_size \(vocab)")
                }
                tokens[i] = t
            }
            var mask: [UInt8]?
            if flags & 1 != 0 {
                let m = try r.bytes(positions, s, "loss_mask")
                if let bad = m.firstIndex(where: { $0 > 1 }) {
                    throw WireError(offset: r.offset - positions + bad, sequence: s, position: bad, "loss_mask value \(m[bad]), expected 0 or 1")
                }
                mask = Array(m)
            }
            switch mode {
            case .sets:
                records.append(try decodeSets(&r, s, key: key, tokens: tokens, mask: mask, vocab: vocab, maxK: maxK))
            case .logits:
                if flags & WireFlags.alignedRows != 0 {
                    let pad = (WireFlags.rowAlignment - r.offset % WireFlags.rowAlignment) % WireFlags.rowAlignment
                    let padding = try r.bytes(pad, s, "row alignment padding")
                    if let bad = padding.firstIndex(where: { $0 != 0 }) {
                        throw WireError(offset: bad, sequence: s, "row alignment padding must be 0")
                    }
                }
                let width = dtype!.byteWidth
                let (rowBytes, o1) = positions.multipliedReportingOverflow(by: vocab * width)
                guard !o1 else { throw WireError(offset: r.offset, sequence: s, "logits size overflows") }
                try r.require(rowBytes, s, "logits rows (\(positions) × \(vocab) × \(width) bytes)")
                logits.append(WireLogitsSequence(key: key, tokens: tokens, lossMask: mask, rowsOffset: r.offset))
                r.offset += rowBytes
            }
        }
        guard r.offset == body.count else {
            throw WireError(offset: r.offset, "\(body.count - r.offset) trailing byte(s) after the last sequence")
        }
        return mode == .sets ? .sets(records) : .logits(dtype: dtype!, logits)
    }

    private func decodeSets(_ r: inout Cursor, _ s: Int, key: String, tokens: [UInt32], mask: [UInt8]?, vocab: Int,
                            maxK: Int) throws(WireError) -> SequenceRecord {
        let positions = tokens.count - 1
        try r.require(positions * 2, s, "k")
        let kStart = r.offset
        var offsets = [UInt32](repeating: 0, count: positions + 1)
        var total = 0
        for t in 0..<positions {
            let k = Int(r.unchecked16())
            guard k >= 1, k <= maxK + 1 else {
                throw WireError(offset: kStart + 2 * t, sequence: s, position: t, "k = \(k), expected 1…\(maxK + 1)")
            }
            total += k
            offsets[t + 1] = UInt32(total)
        }
        let flagStart = r.offset
        let flagBytes = try r.bytes((positions + 7) / 8, s, "gold_forced")
        // Padding bits past P must be 0, or two different bodies would decode to one batch.
        if positions % 8 != 0, let last = flagBytes.last, last >> (positions % 8) != 0 {
            throw WireError(offset: flagStart + flagBytes.count - 1, sequence: s,
                            "gold_forced padding bits beyond position \(positions - 1) must be 0")
        }
        let forced = (0..<positions).map { t in flagBytes[flagBytes.startIndex + t / 8] & (1 << (t % 8)) != 0 }
        try r.require(total * 8, s, "ids and logprobs (\(total) candidates)")
        let idsStart = r.offset
        var ids = [UInt32](repeating: 0, count: total)
        for j in 0..<total {
            let id = r.unchecked32()
            guard Int(id) < vocab else {
                let t = position(of: j, offsets)
                throw WireError(offset: idsStart + 4 * j, sequence: s, position: t, "candidate id \(id), expected < vocab_size \(vocab)")
            }
            ids[j] = id
        }
        let lpStart = r.offset
        var lps = [Float](repeating: 0, count: total)
        for j in 0..<total {
            let lp = Float(bitPattern: r.unchecked32())
            guard lp.isFinite, lp <= 0 else {
                let t = position(of: j, offsets)
                throw WireError(offset: lpStart + 4 * j, sequence: s, position: t, "log-prob \(lp), expected finite and ≤ 0")
            }
            lps[j] = lp
        }
        return SequenceRecord(key: key, tokens: tokens, lossMask: mask, setOffsets: offsets, ids: ids, logprobs: lps,
                              goldForced: forced)
    }

    private func position(of candidate: Int, _ offsets: [UInt32]) -> Int {
        var lo = 0, hi = offsets.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if Int(offsets[mid]) <= candidate { lo = mid } else { hi = mid }
        }
        return lo
    }
}

/// Bounds-checked little-endian reads over the body.
struct Cursor {
    let base: UnsafeRawBufferPointer
    var offset = 0
    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    func require(_ n: Int, _ s: Int? = nil, _ what: String = "field") throws(WireError) {
        guard n >= 0, n <= base.count - offset else {
            throw WireError(offset: offset, sequence: s, "body ends inside \(what): needs \(n) byte(s), \(base.count - offset) left")
        }
    }
    mutating func u8(_ s: Int? = nil) throws(WireError) -> UInt8 { try require(1, s); defer { offset += 1 }; return base[offset] }
    mutating func u16(_ s: Int? = nil) throws(WireError) -> UInt16 { try require(2, s); return unchecked16() }
    mutating func u32(_ s: Int? = nil) throws(WireError) -> UInt32 { try require(4, s); return unchecked32() }
    mutating func u64() throws(WireError) -> UInt64 {
        try require(8)
        defer { offset += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    mutating func unchecked16() -> UInt16 {
        defer { offset += 2 }
        return UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    mutating func unchecked32() -> UInt32 {
        defer { offset += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    mutating func bytes(_ n: Int, _ s: Int, _ what: String) throws(WireError) -> UnsafeRawBufferPointer.SubSequence {
        try require(n, s, what)
        defer { offset += n }
        return base[offset..<offset + n]
    }
}
