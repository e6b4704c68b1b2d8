/// The scan's vector types. Eight lanes: two SSE registers on the default x86-64 target, one
/// AVX register when built with `-Xswiftc -target-cpu -Xswiftc haswell` (or newer). Measured
/// on the default target, 4, 8 and 16 lanes cost within 10% of each other (the exp's
/// arithmetic, not the width, bounds the loop); 8 was the fastest.
typealias ScanFloats = SIMD8<Float>
typealias ScanBits = SIMD8<UInt32>
typealias ScanHalves = SIMD8<UInt16>
typealias ScanDoubles = SIMD8<Double>
let scanLanes = ScanFloats.scalarCount

/// Lane-wise max/min as plain lane loops, which LLVM turns into one `maxps`/`minps` per
/// 4 lanes. The standard library's `pointwiseMax`/`pointwiseMin` compile to a scalar loop
/// through the stack (IEEE maxNum NaN handling per lane) — that made the row scan ~16×
/// slower — and `replacing(with:where:)` needs four instructions per 4 lanes.
/// NaN: `laneMax(a, b)` returns `a` where either is NaN (the `maxps` rule); callers detect
/// NaN elsewhere.
@inline(__always)
func laneMax(_ a: ScanFloats, _ b: ScanFloats) -> ScanFloats {
    var r = a
    for i in 0..<scanLanes { r[i] = a[i] < b[i] ? b[i] : a[i] }
    return r
}

@inline(__always)
func laneMin(_ a: ScanFloats, _ b: ScanFloats) -> ScanFloats {
    var r = a
    for i in 0..<scanLanes { r[i] = b[i] < a[i] ? b[i] : a[i] }
    return r
}

/// `scanLanes` consecutive UInt16 zero-extended to UInt32. A plain lane loop: LLVM emits
/// punpck*wd, while the generic `init(truncatingIfNeeded:)` was not inlined into the scan.
@inline(__always)
func widenHalves(_ p: UnsafeRawPointer) -> ScanBits {
    let h = p.loadUnaligned(as: ScanHalves.self)
    var r = ScanBits()
    for i in 0..<scanLanes { r[i] = UInt32(h[i]) }
    return r
}
