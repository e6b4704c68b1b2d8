import LogitCore

/// Log-prob quantization: code = round(−lp · scale), lp' = −code / scale. For every lp in
/// [−maxCode/scale, 0] the error is at most 0.5/scale (1/128 nat at the default 64 codes/nat)
/// plus one float rounding; below that range codes clamp to `maxCode` (≈ −6.7e7 nats at scale 64,
/// where exp(lp) is 0 in every float format), so the bound is stated for the range only.
public enum LogprobQuantization {
    @inlinable @inline(__always)
    public static func code(_ lp: Float, scale: Float) -> UInt32 {
        let c = (-Double(lp) * Double(scale)).rounded(.toNearestOrEven)
        if !(c > 0) { return 0 }
        if c >= Double(UInt32.max) { return UInt32.max }
        return UInt32(c)
    }

    /// The value a reader returns for `code` (bit-identical in writer and reader).
    @inlinable @inline(__always)
    public static func value(_ code: UInt32, inverseScale: Float) -> Float {
        -(Float(code) * inverseScale)
    }

    /// Largest |lp − decoded| for in-range log-probs at `scale`.
    public static func maxError(scale: Float) -> Float { 0.5 / scale }
}

/// What the reader returns for `r`: each candidate set in canonical order (ascending code, i.e.
/// descending quantized log-prob, ties by lower id) with log-probs replaced by their quantized
/// values. Writing `r` and reading it back yields exactly this record.
public func canonicalized(_ r: SequenceRecord, logprobScale: Float) -> SequenceRecord {
    var out = r
    let inv = 1 / logprobScale
    var scratch: [UInt64] = []
    let n = r.goldForced.count
    guard r.setOffsets.count == n + 1 else { return out }
    for t in 0..<n {
        let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
        canonicalOrder(ids: r.ids, logprobs: r.logprobs, range: lo..<hi, scale: logprobScale, into: &scratch)
        for (j, key) in scratch.enumerated() {
            out.ids[lo + j] = UInt32(truncatingIfNeeded: key)
            out.logprobs[lo + j] = LogprobQuantization.value(UInt32(truncatingIfNeeded: key >> 32), inverseScale: inv)
        }
    }
    return out
}

/// Sort keys `code << 32 | id` of one set, ascending: the canonical order.
/// Teachers usually send sets already in this order (descending probability), so the sort is
/// skipped when the keys come out ascending.
@inline(__always)
func canonicalOrder(ids: [UInt32], logprobs: [Float], range: Range<Int>, scale: Float, into scratch: inout [UInt64]) {
    scratch.removeAll(keepingCapacity: true)
    var sorted = true
    var previous: UInt64 = 0
    for j in range {
        let key = UInt64(LogprobQuantization.code(logprobs[j], scale: scale)) << 32 | UInt64(ids[j])
        if key < previous { sorted = false }
        previous = key
        scratch.append(key)
    }
    if !sorted { scratch.sort() }
}

/// XXH3-64 of the canonical encoding of `r` (key, tokens, mask, sets in canonical order with
/// quantized codes, gold-forced flags). Two records the store would read back identically have
/// the same hash, so the store can tell an identical re-send from a conflicting one.
public func contentHash(_ r: SequenceRecord, logprobScale: Float) -> UInt64 {
    // The exact size first, then plain stores into one buffer: appending field by field was a
    // visible share of ingest CPU. A record whose CSR is inconsistent stops at the first bad set
    // (validation rejects such records before they are stored; the hash only has to be defined).
    var sets = 0, candidates = 0
    for t in 0..<r.goldForced.count where t + 1 < r.setOffsets.count {
        let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
        guard lo <= hi, hi <= r.ids.count, hi <= r.logprobs.count else { break }
        sets += 1
        candidates += hi - lo
    }
    let key = Array(r.key.utf8)
    let maskBytes = r.lossMask.map { 4 + $0.count } ?? 0
    let size = 4 + key.count + 4 + 4 * r.tokens.count + 1 + maskBytes + 4 + 5 * sets + 8 * candidates
    var scratch: [UInt64] = []
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        let base = UnsafeMutableRawPointer(buffer.baseAddress!)
        var o = 0
        func u8(_ v: UInt8) { base.storeBytes(of: v, toByteOffset: o, as: UInt8.self); o += 1 }
        func u32(_ v: UInt32) { base.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt32.self); o += 4 }
        func u64(_ v: UInt64) { base.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt64.self); o += 8 }
        func raw(_ v: [UInt8]) {
            v.withUnsafeBytes { if let s = $0.baseAddress { (base + o).copyMemory(from: s, byteCount: $0.count) } }
            o += v.count
        }
        u32(UInt32(truncatingIfNeeded: key.count))
        raw(key)
        u32(UInt32(truncatingIfNeeded: r.tokens.count))
        for t in r.tokens { u32(t) }
        if let mask = r.lossMask {
            u8(1)
            u32(UInt32(truncatingIfNeeded: mask.count))
            raw(mask)
        } else {
            u8(0)
        }
        u32(UInt32(truncatingIfNeeded: r.goldForced.count))
        for t in 0..<sets {
            let lo = Int(r.setOffsets[t]), hi = Int(r.setOffsets[t + 1])
            canonicalOrder(ids: r.ids, logprobs: r.logprobs, range: lo..<hi, scale: logprobScale, into: &scratch)
            u32(UInt32(hi - lo))
            u8(r.goldForced[t] ? 1 : 0)
            for k in scratch { u64(k) }
        }
        precondition(o == size, "content hash layout size mismatch")
        count = size
    }
    return Checksum.xxh3(bytes)
}
