import LogitCore

/// One decompressed block payload with its section offsets and per-sequence prefix sums, so any
/// sequence decodes without touching the others. Immutable after `init`, hence shareable across
/// threads (the reader caches a few of these).
final class DecodedBlock: @unchecked Sendable {
    let raw: UnsafeMutableRawBufferPointer
    let info: BlockInfo
    let idBytes: Int
    let vocabSize: Int
    let kLow: Int
    let kHigh: Int
    let inverseScale: Float
    let path: String
    let block: Int

    // Section starts (byte offsets into `raw`).
    let keysAt: Int, firstTokenAt: Int, kAt: Int, widthAt: Int, goldIndexAt: Int, goldAt: Int, maskAt: Int
    let lpFirstAt: Int, lpDeltaAt: Int, escAt: Int
    /// Start and length of the id planes of width class w at index w − 1.
    let classAt: [Int], classCount: [Int]
    // Per-sequence prefix sums, count n + 1.
    let posStart: [Int], candStart: [Int], escStart: [Int], keyStart: [Int], maskStart: [Int]
    /// Candidates of width class w before sequence i: `classStart[i * idBytes + w − 1]`.
    let classStart: [Int]

    /// Takes ownership of `raw` (allocated by the caller; deallocated here once `init` succeeds)
    /// and validates the sequence table, every K and width class, and the section sizes against
    /// the block header before anything else.
    init(raw: UnsafeMutableRawBufferPointer, info: BlockInfo, provenance: ShardProvenance, path: String, block: Int) throws(ShardError) {
        func fail(_ r: String) -> ShardError { ShardError(path: path, block: block, reason: r) }
        let n = info.sequenceCount
        let b = provenance.idBytes
        let kLow = min(provenance.policy.kMin, provenance.vocabSize), kHigh = provenance.policy.kMax + 1
        let buf = UnsafeRawBufferPointer(raw)
        guard 15 * n <= buf.count else { throw fail("sequence table of \(n) sequences exceeds the \(buf.count)-byte payload") }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        var posStart = [Int](repeating: 0, count: n + 1), candStart = posStart
        var escStart = posStart, keyStart = posStart, maskStart = posStart
        for i in 0..<n {
            let l = u32(4 * i), c = u32(4 * n + 4 * i), e = u32(8 * n + 4 * i)
            let kb = Int(UInt16(littleEndian: buf.loadUnaligned(fromByteOffset: 12 * n + 2 * i, as: UInt16.self)))
            let flags = buf[14 * n + i]
            guard l >= 2, l <= SequenceRecord.maxTokens else { throw fail("sequence \(i) declares \(l) tokens, expected 2…\(SequenceRecord.maxTokens)") }
            guard c >= (l - 1) * kLow, c <= (l - 1) * kHigh else {
                throw fail("sequence \(i) declares \(c) candidates for \(l - 1) positions, expected K in \(kLow)…\(kHigh)")
            }
            guard e <= c else { throw fail("sequence \(i) declares \(e) log-prob escapes for \(c) candidates") }
            guard kb >= 1, kb <= SequenceRecord.maxKeyBytes else { throw fail("sequence \(i) key of \(kb) bytes, expected 1…\(SequenceRecord.maxKeyBytes)") }
            guard flags <= 1 else { throw fail("sequence \(i) has unknown flag bits 0x\(String(flags, radix: 16))") }
            posStart[i + 1] = posStart[i] + l - 1
            candStart[i + 1] = candStart[i] + c
            escStart[i + 1] = escStart[i] + e
            keyStart[i + 1] = keyStart[i] + kb
            maskStart[i + 1] = maskStart[i] + (flags == 1 ? l - 1 : 0)
        }
        let p = posStart[n], c = candStart[n]
        guard p == info.positions, c == info.candidates else {
            throw fail("sequence table sums to \(p) positions and \(c) candidates, block header says \(info.positions) and \(info.candidates)")
        }
        let fixed = BlockBuilder.fixedRawBytes(sequences: n, keyBytes: keyStart[n], positions: p, maskedPositions: maskStart[n],
                                               candidates: c, escapes: escStart[n], idBytes: b)
        guard fixed <= buf.count else { throw fail("section sizes need at least \(fixed) bytes, payload has \(buf.count)") }
        let keysAt = 15 * n
        let firstTokenAt = keysAt + keyStart[n]
        let kAt = firstTokenAt + b * n
        let widthAt = kAt + 2 * p
        // One pass over K and width class of every position: bounds, per-sequence sums.
        var classStart = [Int](repeating: 0, count: (n + 1) * b)
        var classCount = [Int](repeating: 0, count: b)
        for i in 0..<n {
            var sum = 0
            for t in posStart[i]..<posStart[i + 1] {
                let k = Int(buf[kAt + t]) | Int(buf[kAt + p + t]) << 8
                let w = Int(buf[widthAt + t])
                guard k >= kLow, k <= kHigh else { throw fail("sequence \(i) position \(t - posStart[i]): K = \(k), expected \(kLow)…\(kHigh)") }
                guard w >= 1, w <= b else { throw fail("sequence \(i) position \(t - posStart[i]): id width class \(w), expected 1…\(b)") }
                sum += k
                classCount[w - 1] += k
            }
            guard sum == candStart[i + 1] - candStart[i] else {
                throw fail("sequence \(i): K values sum to \(sum), the sequence table declares \(candStart[i + 1] - candStart[i]) candidates")
            }
            for w in 0..<b { classStart[(i + 1) * b + w] = classCount[w] }
        }
        let idBytesTotal = classCount.enumerated().reduce(0) { $0 + ($1.offset + 1) * $1.element }
        guard fixed + idBytesTotal == buf.count else {
            throw fail("section sizes add up to \(fixed + idBytesTotal) bytes, payload has \(buf.count)")
        }
        goldIndexAt = widthAt + p
        goldAt = goldIndexAt + 2 * p
        maskAt = goldAt + (p + 7) / 8
        var at = maskAt + (maskStart[n] + 7) / 8
        var classAt: [Int] = []
        for w in 0..<b { classAt.append(at); at += (w + 1) * classCount[w] }
        lpFirstAt = at
        lpDeltaAt = lpFirstAt + 2 * p
        escAt = lpDeltaAt + (c - p)
        self.keysAt = keysAt; self.firstTokenAt = firstTokenAt; self.kAt = kAt; self.widthAt = widthAt
        self.classAt = classAt; self.classCount = classCount; self.classStart = classStart
        self.posStart = posStart; self.candStart = candStart
        self.escStart = escStart; self.keyStart = keyStart; self.maskStart = maskStart
        self.raw = raw
        self.info = info
        self.idBytes = b
        self.vocabSize = provenance.vocabSize
        self.kLow = kLow
        self.kHigh = kHigh
        self.inverseScale = 1 / provenance.logprobScale
        self.path = path
        self.block = block
    }

    deinit { raw.deallocate() }

    /// Decodes sequence `i` into `r`, reusing its arrays' storage. Checks ids < vocab, gold
    /// indexes < K, escape counts and code range; K was checked when the block was opened, and
    /// log-probs are finite and ≤ 0 by construction.
    func decode(_ i: Int, into r: inout SequenceRecord) throws(ShardError) {
        func fail(_ reason: String) -> ShardError { ShardError(path: path, block: block, reason: "sequence \(i): \(reason)") }
        let base = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: UInt8.self)
        let p0 = posStart[i], c0 = candStart[i]
        let p = posStart[i + 1] - p0
        let c = candStart[i + 1] - c0
        let b = idBytes
        let totalP = info.positions

        let keyBytes = UnsafeBufferPointer(start: base + keysAt + keyStart[i], count: keyStart[i + 1] - keyStart[i])
        guard let key = String(validating: keyBytes, as: UTF8.self) else { throw fail("key is not valid UTF-8") }
        r.key = key

        // Loss mask.
        if maskStart[i + 1] > maskStart[i] {
            var m = r.lossMask ?? []
            resize(&m, p)
            let bit0 = maskStart[i], maskBase = base + maskAt
            m.withUnsafeMutableBufferPointer { out in
                for t in 0..<p { let bit = bit0 + t; out[t] = (maskBase[bit >> 3] >> UInt8(bit & 7)) & 1 }
            }
            r.lossMask = m
        } else {
            r.lossMask = nil
        }

        // K → set offsets; gold-forced flags.
        resize(&r.setOffsets, p + 1)
        resize(&r.goldForced, p)
        let kLo = base + kAt + p0, kHi = base + kAt + totalP + p0
        r.setOffsets.withUnsafeMutableBufferPointer { offs in
            var acc: UInt32 = 0
            offs[0] = 0
            for t in 0..<p {
                acc &+= UInt32(kLo[t]) | UInt32(kHi[t]) << 8
                offs[t + 1] = acc
            }
        }
        let goldBase = base + goldAt
        r.goldForced.withUnsafeMutableBufferPointer { out in
            for t in 0..<p { let bit = p0 + t; out[t] = (goldBase[bit >> 3] >> UInt8(bit & 7)) & 1 != 0 }
        }

        // Candidate ids, set by set from the planes of each set's width class.
        resize(&r.ids, c)
        let widths = base + widthAt + p0
        var planeBase: (UnsafePointer<UInt8>, UnsafePointer<UInt8>, UnsafePointer<UInt8>, UnsafePointer<UInt8>) = (base, base, base, base)
        var stride = (0, 0, 0, 0)
        for w in 0..<b {
            let start = base + classAt[w] + classStart[i * b + w]
            let s = classCount[w]
            switch w { case 0: planeBase.0 = start; stride.0 = s
                       case 1: planeBase.1 = start; stride.1 = s
                       case 2: planeBase.2 = start; stride.2 = s
                       default: planeBase.3 = start; stride.3 = s }
        }
        let maxId: UInt32 = r.setOffsets.withUnsafeBufferPointer { offs in
            r.ids.withUnsafeMutableBufferPointer { outBuffer in
                let out = outBuffer.baseAddress!
                var maxId: UInt32 = 0
                for t in 0..<p {
                    let lo = Int(offs[t]), k = Int(offs[t + 1]) - lo
                    switch widths[t] {
                    case 1:
                        let a = planeBase.0
                        for j in 0..<k { out[lo + j] = UInt32(a[j]) }
                        planeBase.0 += k
                    case 2:
                        let a = planeBase.1, s = stride.1
                        for j in 0..<k { out[lo + j] = UInt32(a[j]) | UInt32(a[s + j]) << 8 }
                        planeBase.1 += k
                    case 3:
                        let a = planeBase.2, s = stride.2
                        for j in 0..<k { out[lo + j] = UInt32(a[j]) | UInt32(a[s + j]) << 8 | UInt32(a[2 * s + j]) << 16 }
                        planeBase.2 += k
                    default:
                        let a = planeBase.3, s = stride.3
                        for j in 0..<k {
                            out[lo + j] = UInt32(a[j]) | UInt32(a[s + j]) << 8 | UInt32(a[2 * s + j]) << 16 | UInt32(a[3 * s + j]) << 24
                        }
                        planeBase.3 += k
                    }
                }
                for j in 0..<c { maxId = max(maxId, out[j]) }
                return maxId
            }
        }
        guard Int(maxId) < vocabSize else { throw fail("candidate id \(maxId) ≥ vocab size \(vocabSize)") }

        // Tokens: the first stored as is, the rest as the gold's index in its set.
        resize(&r.tokens, p + 1)
        var first: UInt32 = 0
        for w in 0..<b { first |= UInt32(base[firstTokenAt + w * info.sequenceCount + i]) << UInt32(8 * w) }
        guard Int(first) < vocabSize else { throw fail("first token \(first) ≥ vocab size \(vocabSize)") }
        let giLo = base + goldIndexAt + p0, giHi = base + goldIndexAt + totalP + p0
        let goldOK: Bool = r.setOffsets.withUnsafeBufferPointer { offs in
            r.ids.withUnsafeBufferPointer { ids in
                r.tokens.withUnsafeMutableBufferPointer { tokens in
                    tokens[0] = first
                    var ok = true
                    for t in 0..<p {
                        let lo = offs[t], k = offs[t + 1] - lo
                        let gi = UInt32(giLo[t]) | UInt32(giHi[t]) << 8
                        ok = ok && gi < k
                        tokens[t + 1] = ids[Int(lo + min(gi, k - 1))]
                    }
                    return ok
                }
            }
        }
        guard goldOK else { throw fail("a gold index lies outside its candidate set") }

        // Log-probs: first code per set, then non-negative deltas; 0xFFFF / 0xFF escape to u32.
        resize(&r.logprobs, c)
        let firstLo = base + lpFirstAt + p0, firstHi = base + lpFirstAt + totalP + p0
        let deltas = base + lpDeltaAt + (c0 - p0)
        let escapes = base + escAt + 4 * escStart[i]
        let escapeLimit = escStart[i + 1] - escStart[i]
        let inv = inverseScale
        let escapesUsed: Int = r.setOffsets.withUnsafeBufferPointer { offs in
            r.logprobs.withUnsafeMutableBufferPointer { out in
                var e = 0
                var d = 0
                for t in 0..<p {
                    var code = UInt64(firstLo[t]) | UInt64(firstHi[t]) << 8
                    if code == 0xFFFF {
                        if e >= escapeLimit { return -1 }
                        code = UInt64(UInt32(littleEndian: UnsafeRawPointer(escapes + 4 * e).loadUnaligned(as: UInt32.self)))
                        e += 1
                    }
                    let lo = Int(offs[t]), hi = Int(offs[t + 1])
                    out[lo] = -(Float(code) * inv)
                    var j = lo + 1
                    while j < hi {
                        let delta = deltas[d]
                        d += 1
                        if delta == 0xFF {
                            if e >= escapeLimit { return -1 }
                            code &+= UInt64(UInt32(littleEndian: UnsafeRawPointer(escapes + 4 * e).loadUnaligned(as: UInt32.self)))
                            e += 1
                        } else {
                            code &+= UInt64(delta)
                        }
                        out[j] = -(Float(code) * inv)
                        j += 1
                    }
                    if code > UInt64(UInt32.max) { return -2 }
                }
                return e
            }
        }
        guard escapesUsed == escapeLimit else {
            throw fail(escapesUsed == -2 ? "log-prob code exceeds 2^32 − 1"
                       : "log-prob escapes do not match the declared \(escapeLimit)")
        }
    }

    /// For each candidate of sequence `i` (already decoded, so its escapes are known to be in
    /// range): whether its code equals the previous candidate's in the same set. Canonical order
    /// is defined on codes, and two codes can map to one f32 value (16777216 and 16777217 do), so
    /// ties must be read from the deltas, not from the decoded log-probs.
    func codeTies(_ i: Int, setOffsets: [UInt32]) -> [Bool] {
        let base = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: UInt8.self)
        let p0 = posStart[i], c0 = candStart[i], p = posStart[i + 1] - p0
        let totalP = info.positions
        let firstLo = base + lpFirstAt + p0, firstHi = base + lpFirstAt + totalP + p0
        let deltas = base + lpDeltaAt + (c0 - p0)
        let escapes = base + escAt + 4 * escStart[i]
        var ties = [Bool](repeating: false, count: candStart[i + 1] - c0)
        var e = 0, d = 0
        for t in 0..<p {
            if (UInt16(firstLo[t]) | UInt16(firstHi[t]) << 8) == 0xFFFF { e += 1 }
            for j in (Int(setOffsets[t]) + 1)..<max(Int(setOffsets[t]) + 1, Int(setOffsets[t + 1])) {
                let delta = deltas[d]
                d += 1
                if delta == 0xFF {
                    ties[j] = UnsafeRawPointer(escapes + 4 * e).loadUnaligned(as: UInt32.self) == 0
                    e += 1
                } else {
                    ties[j] = delta == 0
                }
            }
        }
        return ties
    }

    /// Full semantic check of sequence `r` decoded from this block: canonical order, distinct
    /// ids, gold present, K = kMax + 1 only when forced. (Mass is not checked: quantization may
    /// raise Σp by up to e^(0.5/scale).)
    func verifySemantics(_ r: SequenceRecord, sequence i: Int) throws(ShardError) {
        func fail(_ reason: String) -> ShardError { ShardError(path: path, block: block, reason: "sequence \(i): \(reason)") }
        let ties = codeTies(i, setOffsets: r.setOffsets)
        var seen = Set<UInt32>()
        for t in 0..<r.positions {
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            if hi - lo == kHigh && !r.goldForced[t] { throw fail("position \(t) has K = kMax + 1 without gold_forced") }
            seen.removeAll(keepingCapacity: true)
            var goldSeen = false
            for j in lo..<hi {
                if !seen.insert(r.ids[j]).inserted { throw fail("position \(t): candidate id \(r.ids[j]) appears twice") }
                if r.ids[j] == r.tokens[t + 1] { goldSeen = true }
                if j > lo && ties[j] && r.ids[j] < r.ids[j - 1] {
                    throw fail("position \(t): tied candidates not in ascending id order")
                }
            }
            if !goldSeen { throw fail("position \(t): gold token \(r.tokens[t + 1]) is not among its candidates") }
        }
    }
}


/// Sets `a.count` to `n`, keeping storage (no reallocation once the array has grown).
@inline(__always)
func resize<T: FixedWidthInteger>(_ a: inout [T], _ n: Int) {
    if a.count > n { a.removeLast(a.count - n) } else if a.count < n { a.append(contentsOf: repeatElement(0, count: n - a.count)) }
}

@inline(__always)
func resize(_ a: inout [Float], _ n: Int) {
    if a.count > n { a.removeLast(a.count - n) } else if a.count < n { a.append(contentsOf: repeatElement(0, count: n - a.count)) }
}

@inline(__always)
func resize(_ a: inout [Bool], _ n: Int) {
    if a.count > n { a.removeLast(a.count - n) } else if a.count < n { a.append(contentsOf: repeatElement(false, count: n - a.count)) }
}
