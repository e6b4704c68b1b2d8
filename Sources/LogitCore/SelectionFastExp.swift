/// Vectorized e^x for x ≤ 0, the only range the partition sum needs (x = z − max).
///
/// Why not `Foundation.exp`: one call per vocabulary entry costs more than reading the row
/// from memory. This is Cody–Waite range reduction (x = n·ln2 + r, |r| ≤ ln2/2, with ln2 split
/// in a 9-bit head, so n·ln2_hi is exact) and a degree-7 Taylor polynomial for e^r
/// (truncation < 2^-24 relative on |r| ≤ ln2/2), scaled by 2^n through the exponent bits.
/// Measured relative error against Double `exp` is ≈ 1e-7 (see SelectionFastExpTests).
/// Arguments below −87.3 are clamped there (result ≈ 1.2e-38 instead of a subnormal or
/// 0): negligible against a partition sum ≥ 1, and it keeps 2^n a normal number.
@inline(__always)
func fastExpNonPositive(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let xc = x.replacing(with: -87.3, where: x .< -87.3)
    // Round x·log2(e) to nearest with the 1.5·2^23 trick: the integer lands in the low bits.
    let shifter: Float = 12_582_912
    let t = xc * 1.442_695_04 + shifter
    let n = t - shifter
    let r = (xc - n * 0.693_359_375) - n * -2.121_944_4e-4
    var p: SIMD16<Float> = SIMD16(repeating: 1.0 / 5040)
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // 2^n: (n + 127) << 23; t's bit pattern is 0x4B40_0000 + n.
    let tb = unsafeBitCast(t, to: SIMD16<UInt32>.self)
    let scale = unsafeBitCast((tb &- 0x4B3F_FF81) &<< 23, to: SIMD16<Float>.self)
    return p * scale
}
