/// Vectorized e^x for x ≤ 0, the only range the partition sum needs (x = z − max).
///
/// Why not `Foundation.exp`: one call per vocabulary entry costs more than reading the row
/// from memory. Cody–Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2 (ln2 split into a
/// 9-bit head, so n·ln2_hi is exact without FMA), then e^r ≈ 1 + r + c2·r² + … + c5·r⁵ with
/// c2…c5 fitted for minimax relative error on that interval (≈1.0e-7 in exact arithmetic,
/// ≈1.7e-7 evaluated in Float), scaled by 2^n written straight into the exponent bits.
/// Arguments below −87.3 are clamped there (result ≈ 1.2e-38 instead of a subnormal or 0):
/// negligible against a partition sum ≥ 1, and it keeps 2^n a normal number. NaN stays NaN.
@inline(__always)
func fastExpNonPositive(_ x: ScanFloats) -> ScanFloats {
    let xc = laneMax(x, ScanFloats(repeating: -87.3))
    // Round x·log2(e) to nearest with the 1.5·2^23 trick; the +127 bias rides along, so the
    // low bits of t hold n + 127 and (bits << 23) is 2^n as a Float.
    let shifter: Float = 12_582_912 + 127
    let t = xc * 1.442_695_04 + shifter
    let n = t - shifter
    let r = (xc - n * 0.693_359_375) - n * -2.121_944_4e-4
    // Estrin's scheme: the same 10 operations as Horner, but a dependency chain of 5 instead
    // of 10, so more of the block's independent exps overlap in the out-of-order window.
    let r2 = r * r
    let low = r + 1
    let mid = r * 0.166_670_9 + 0.499_992_3
    let high = r * 8.314_719_4e-3 + 4.189_020_8e-2
    let p = low + r2 * (mid + r2 * high)
    let scale = unsafeBitCast(unsafeBitCast(t, to: ScanBits.self) &<< 23, to: ScanFloats.self)
    return p * scale
}
