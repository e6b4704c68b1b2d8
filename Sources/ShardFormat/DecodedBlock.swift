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
    let keysAt: Int, tokensAt: Int, kAt: Int, goldAt: Int, maskAt: Int, idsAt: Int, lpFirstAt: Int, lpDeltaAt: Int, escAt: Int
    let totalTokens: Int
    // Per-sequence prefix sums, count n + 1.
    let tokenStart: [Int], posStart: [Int], candStart: [Int], escStart: [Int], keyStart: [Int], maskStart: [Int]

    /// Takes ownership of `raw` (allocated by the caller, deallocated here) and validates the
    /// sequence table and section sizes against the block header before anything else.
    init(raw: UnsafeMutableRawBufferPointer, info: BlockInfo, provenance: ShardProvenance, path: String, block: Int) throws(ShardError) {
        self.raw = raw
        self.info = info
        self.idBytes = provenance.idBytes
        self.vocabSize = provenance.vocabSize
        self.kLow = min(provenance.policy.kMin, provenance.vocabSize)
        self.kHigh = provenance.policy.kMax + 1
        self.inverseScale = 1 / provenance.logprobScale
        self.path = path
        self.block = block
        func fail(_ r: String) -> ShardError { ShardError(path: path, block: block, reason: r) }
        let n = info.sequenceCount
        let buf = UnsafeRawBufferPointer(raw)
        guard 15 * n <= buf.count else { throw fail("sequence table of \(n) sequences exceeds the \(buf.count)-byte payload") }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        var tokenStart = [Int](repeating: 0, count: n + 1), posStart = tokenStart, candStart = tokenStart
        var escStart = tokenStart, keyStart = tokenStart, maskStart = tokenStart
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
            tokenStart[i + 1] = tokenStart[i] + l
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
        let expected = BlockBuilder.rawBytes(sequences: n, keyBytes: keyStart[n], tokens: tokenStart[n], positions: p,
                                             maskedPositions: maskStart[n], candidates: c, escapes: escStart[n], idBytes: idBytes)
        guard expected == buf.count else {
            throw fail("section sizes add up to \(expected) bytes, payload has \(buf.count)")
        }
        let b = idBytes
        keysAt = 15 * n
        tokensAt = keysAt + keyStart[n]
        kAt = tokensAt + b * tokenStart[n]
        goldAt = kAt + 2 * p
        maskAt = goldAt + (p + 7) / 8
        idsAt = maskAt + (maskStart[n] + 7) / 8
        lpFirstAt = idsAt + b * c
        lpDeltaAt = lpFirstAt + 2 * p
        escAt = lpDeltaAt + (c - p)
        totalTokens = tokenStart[n]
        self.tokenStart = tokenStart; self.posStart = posStart; self.candStart = candStart
        self.escStart = escStart; self.keyStart = keyStart; self.maskStart = maskStart
    }

    deinit { raw.deallocate() }

    /// Decodes sequence `i` into `r`, reusing its arrays' storage. Checks ids and tokens < vocab,
    /// K bounds, the per-sequence candidate and escape counts, and code range; log-probs are
    /// finite and ≤ 0 by construction.
    func decode(_ i: Int, into r: inout SequenceRecord) throws(ShardError) {
        func fail(_ reason: String) -> ShardError { ShardError(path: path, block: block, reason: "sequence \(i): \(reason)") }
        let base = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: UInt8.self)
        let l = tokenStart[i + 1] - tokenStart[i]
        let p = l - 1
        let p0 = posStart[i], c0 = candStart[i]
        let c = candStart[i + 1] - c0
        let b = idBytes

        let keyBytes = UnsafeBufferPointer(start: base + keysAt + keyStart[i], count: keyStart[i + 1] - keyStart[i])
        guard let key = String(validating: keyBytes, as: UTF8.self) else { throw fail("key is not valid UTF-8") }
        r.key = key

        // Tokens.
        resize(&r.tokens, l)
        let maxToken = r.tokens.withUnsafeMutableBufferPointer { out in
            gatherPlanes(base + tokensAt + tokenStart[i], stride: totalTokens, planes: b, count: l, into: out.baseAddress!)
        }
        guard Int(maxToken) < vocabSize else { throw fail("token id \(maxToken) ≥ vocab size \(vocabSize)") }

        // Loss mask.
        if maskStart[i + 1] > maskStart[i] {
            var m = r.lossMask ?? []
            resize(&m, p)
            let bit0 = maskStart[i]
            m.withUnsafeMutableBufferPointer { out in
                for t in 0..<p { let bit = bit0 + t; out[t] = (base[maskAt + bit >> 3] >> UInt8(bit & 7)) & 1 }
            }
            r.lossMask = m
        } else {
            r.lossMask = nil
        }

        // K → set offsets, gold-forced flags.
        resize(&r.setOffsets, l)
        resize(&r.goldForced, p)
        let kLo = base + kAt + p0, kHi = base + kAt + info.positions + p0
        let lowK = kLow, highK = kHigh
        let kOK: Bool = r.setOffsets.withUnsafeMutableBufferPointer { offs in
            var acc = 0
            var ok = true
            offs[0] = 0
            for t in 0..<p {
                let k = Int(kLo[t]) | Int(kHi[t]) << 8
                ok = ok && k >= lowK && k <= highK
                acc += k
                offs[t + 1] = UInt32(truncatingIfNeeded: acc)
            }
            return ok && acc == c
        }
        guard kOK else { throw fail("K values out of \(kLow)…\(kHigh) or not summing to the declared \(c) candidates") }
        r.goldForced.withUnsafeMutableBufferPointer { out in
            for t in 0..<p { let bit = p0 + t; out[t] = (base[goldAt + bit >> 3] >> UInt8(bit & 7)) & 1 != 0 }
        }

        // Candidate ids.
        resize(&r.ids, c)
        let maxId = r.ids.withUnsafeMutableBufferPointer { out in
            gatherPlanes(base + idsAt + c0, stride: info.candidates, planes: b, count: c, into: out.baseAddress!)
        }
        guard Int(maxId) < vocabSize else { throw fail("candidate id \(maxId) ≥ vocab size \(vocabSize)") }

        // Log-probs: first code per set, then non-negative deltas; 0xFFFF / 0xFF escape to u32.
        resize(&r.logprobs, c)
        let firstLo = base + lpFirstAt + p0, firstHi = base + lpFirstAt + info.positions + p0
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

    /// Full semantic check of sequence `r` decoded from this block: canonical order, distinct
    /// ids, gold present, K = kMax + 1 only when forced. (Mass is not checked: quantization may
    /// raise Σp by up to e^(0.5/scale).)
    func verifySemantics(_ r: SequenceRecord, sequence i: Int) throws(ShardError) {
        func fail(_ reason: String) -> ShardError { ShardError(path: path, block: block, reason: "sequence \(i): \(reason)") }
        var seen = Set<UInt32>()
        for t in 0..<r.positions {
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            if hi - lo == kHigh && !r.goldForced[t] { throw fail("position \(t) has K = kMax + 1 without gold_forced") }
            seen.removeAll(keepingCapacity: true)
            var goldSeen = false
            for j in lo..<hi {
                if !seen.insert(r.ids[j]).inserted { throw fail("position \(t): candidate id \(r.ids[j]) appears twice") }
                if r.ids[j] == r.tokens[t + 1] { goldSeen = true }
                if j > lo && r.logprobs[j] == r.logprobs[j - 1] && r.ids[j] < r.ids[j - 1] {
                    throw fail("position \(t): tied candidates not in ascending id order")
                }
            }
            if !goldSeen { throw fail("position \(t): gold token \(r.tokens[t + 1]) is not among its candidates") }
        }
    }
}

/// Reassembles `count` little-endian values from `planes` byte planes `stride` bytes apart;
/// returns the largest value (one compare per element instead of a branch).
@inline(__always)
func gatherPlanes(_ src: UnsafePointer<UInt8>, stride: Int, planes: Int, count: Int, into out: UnsafeMutablePointer<UInt32>) -> UInt32 {
    var maxValue: UInt32 = 0
    switch planes {
    case 3:
        let a = src, b = src + stride, c = src + 2 * stride
        for j in 0..<count {
            let v = UInt32(a[j]) | UInt32(b[j]) << 8 | UInt32(c[j]) << 16
            out[j] = v
            maxValue = max(maxValue, v)
        }
    case 2:
        let a = src, b = src + stride
        for j in 0..<count {
            let v = UInt32(a[j]) | UInt32(b[j]) << 8
            out[j] = v
            maxValue = max(maxValue, v)
        }
    default:
        for j in 0..<count {
            var v: UInt32 = 0
            for k in 0..<planes { v |= UInt32(src[k * stride + j]) << UInt32(8 * k) }
            out[j] = v
            maxValue = max(maxValue, v)
        }
    }
    return maxValue
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
