/// The per-chunk inner loops: one fused pass for the angle sums, one fused pass for
/// rotation + moments + update. The per-8-lane helpers are `@_transparent` because
/// `@inline(__always)` was not honoured in these loops (the calls spilled every register). 8 fp32 lanes (two SSE registers on baseline x86-64, one AVX
/// register where available); tails run through the same vector code on zero-padded lanes, so
/// every element sees identical arithmetic wherever it sits in a chunk.
typealias Lanes = SIMD8<Float>

@inline(__always)
func loadLanes(_ p: UnsafeMutablePointer<Float>, _ i: Int) -> Lanes {
    UnsafeRawPointer(p + i).loadUnaligned(as: Lanes.self)
}

@inline(__always)
func storeLanes(_ x: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: x, as: Lanes.self)
}

@inline(__always)
func loadPadded(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ count: Int) -> Lanes {
    var x = Lanes.zero
    for k in 0..<count { x[k] = p[i + k] }
    return x
}

@inline(__always)
func storePartial(_ x: Lanes, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ count: Int) {
    for k in 0..<count { p[i + k] = x[k] }
}

@inline(__always)
func absLanes(_ x: Lanes) -> Lanes {
    unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & SIMD8(repeating: 0x7fff_ffff), to: Lanes.self)
}

/// ⟨g,m⟩, ‖g‖², ‖m‖² over `count` elements, products and sums in Double.
///
/// Near θ = π the clip divides by sin θ, so an error δ in cos θ becomes ~δ/sin²θ in the clipped
/// angle; fp32 accumulation (δ ~ 1e-7) left clipped angles 3e-6 rad past Δmax at θ = 175°.
/// fp32·fp32 products are exact in Double, and the conversion is two `cvtps2pd` per 4 lanes:
/// this pass is memory-bound either way.
func angleStatistics(_ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, count: Int) -> AngleStatistics {
    typealias Wide = SIMD4<Double>
    var d0 = Wide.zero, d1 = Wide.zero, gg0 = Wide.zero, gg1 = Wide.zero, mm0 = Wide.zero, mm1 = Wide.zero
    @inline(__always) func accumulate(_ g8: Lanes, _ m8: Lanes) {
        let ga = Wide(g8.lowHalf), gb = Wide(g8.highHalf)
        let ma = Wide(m8.lowHalf), mb = Wide(m8.highHalf)
        d0 += ga * ma; d1 += gb * mb
        gg0 += ga * ga; gg1 += gb * gb
        mm0 += ma * ma; mm1 += mb * mb
    }
    var i = 0
    while i + 8 <= count {
        accumulate(loadLanes(g, i), loadLanes(m, i))
        i += 8
    }
    if i < count { accumulate(loadPadded(g, i, count - i), loadPadded(m, i, count - i)) }
    return AngleStatistics(dot: (d0 + d1).sum(), gradNormSquared: (gg0 + gg1).sum(),
                           momentumNormSquared: (mm0 + mm1).sum())
}

/// ‖g‖² over `count` elements, squares and sums in Double (the global-norm clip's input: an fp32
/// running sum over a 28 M-element embedding gradient loses the small terms).
func sumOfSquares(_ g: UnsafeMutablePointer<Float>, count: Int) -> Double {
    typealias Wide = SIMD4<Double>
    var s0 = Wide.zero, s1 = Wide.zero
    var i = 0
    while i + 8 <= count {
        let g8 = loadLanes(g, i)
        let a = Wide(g8.lowHalf), b = Wide(g8.highHalf)
        s0 += a * a; s1 += b * b
        i += 8
    }
    if i < count {
        let g8 = loadPadded(g, i, count - i)
        let a = Wide(g8.lowHalf), b = Wide(g8.highHalf)
        s0 += a * a; s1 += b * b
    }
    return (s0 + s1).sum()
}

/// g ← scale·g over `count` elements.
func scaleInPlace(_ g: UnsafeMutablePointer<Float>, count: Int, by scale: Float) {
    let k = Lanes(repeating: scale)
    var i = 0
    while i + 8 <= count {
        storeLanes(loadLanes(g, i) * k, g, i)
        i += 8
    }
    while i < count { g[i] *= scale; i += 1 }
}

/// Constants of one MoClip/Adam-atan2 update of one tensor.
///
/// The clip g' = α·g + β·m is folded into the moment coefficients (computed in Double, rounded
/// once), so a rotating step costs the same vector arithmetic as an unrotated one:
/// m ← mFromMomentum·m + mFromGradient·g, with mFromMomentum = β1 + (1−β1)·β and
/// mFromGradient = (1−β1)·α; the scaled gradient of v is vFromGradient·g + vFromMomentum·m_old.
/// Unrotated: mFromMomentum = β1, mFromGradient = 1−β1, vFromGradient = √(1−β2), vFromMomentum = 0.
struct AtanUpdate {
    var mFromMomentum: Float
    var mFromGradient: Float
    /// √(1−β2)·(α, β) when v sees the clipped gradient, √(1−β2)·(1, 0) otherwise:
    /// v ← β2·v + (vFromGradient·g + vFromMomentum·m_old)², which overflows only when the new v
    /// itself would.
    var vFromGradient: Float
    var vFromMomentum: Float
    var beta2: Float
    /// atan2(m̂, b·√v̂) = atan2(m, √(xScale²·v)) with xScale = b·(1−β1^t)/√(1−β2^t).
    var xScaleSquared: Float
    /// 1 − lr·λ
    var decay: Float
    /// lr·a
    var stepScale: Float
}

/// √x lane by lane for x ≥ 0, accurate to 1 ulp (tested); +∞ gives the largest float.
///
/// `SIMD8<Float>.squareRoot()` is scalarised on Linux (the stdlib's Float.squareRoot goes through
/// an errno-setting C shim, one `sqrtf` test per lane), which alone made the update passes 4×
/// slower. Instead: bit-trick estimate of 1/√x (error ≤ 3.5%), two Newton steps (≤ 5e-6), then
/// √x = x·y and one Newton correction of √x, which squares the relative error (≈1e-11).
/// Inputs below 2⁻⁶⁰ (subnormals included) are scaled by 2⁶⁴ first so the estimate starts in
/// range; 0 gives 0. +∞ is clamped to the largest float (a Newton step on ∞ gives NaN), so an
/// overflowed second moment still yields a finite, tiny update instead of NaN parameters.
@_transparent
func squareRootLanes(_ x: Lanes) -> Lanes {
    let finite = FastAtan2.minimum(x, Lanes(repeating: .greatestFiniteMagnitude))
    let tinyLimit = Lanes(repeating: 0x1p-60)
    let w = FastAtan2.whereLess(finite, tinyLimit, finite * 0x1p64, finite)
    let bits = unsafeBitCast(w, to: SIMD8<UInt32>.self)
    var y = unsafeBitCast(SIMD8<UInt32>(repeating: 0x5F37_59DF) &- (bits &>> 1), to: Lanes.self)
    let halfW = 0.5 * w
    // (halfW·y)·y, not halfW·(y·y): for w = 0 the estimate grows and y·y would overflow to ∞·0.
    y = y * (1.5 - (halfW * y) * y)
    y = y * (1.5 - (halfW * y) * y)
    var r = w * y
    r = r + (0.5 * y) * (w - r * r)
    return FastAtan2.whereLess(finite, tinyLimit, r * 0x1p-32, r)
}

/// Lane-wise max of two non-negative vectors.
@_transparent
func maxLanes(_ a: Lanes, _ b: Lanes) -> Lanes { FastAtan2.maximum(a, b) }

/// The MoClip/Adam-atan2 arithmetic for 8 elements: returns new p, m, v and atan2(m̂, b√v̂).
@_transparent
func atanLanes(_ g: Lanes, _ mOld: Lanes, _ vOld: Lanes, _ pOld: Lanes, _ k: AtanUpdate,
               rotate: Bool, vFromClipped: Bool) -> (Lanes, Lanes, Lanes, Lanes) {
    let mNew = k.mFromMomentum * mOld + k.mFromGradient * g
    let gScaled = (rotate && vFromClipped) ? k.vFromGradient * g + k.vFromMomentum * mOld : k.vFromGradient * g
    let vNew = k.beta2 * vOld + gScaled * gScaled
    let u = FastAtan2.atan2OverSquareRoot(mNew, k.xScaleSquared * vNew)
    let pNew = pOld * k.decay - k.stepScale * u
    return (pNew, mNew, vNew, u)
}

/// Tail of fewer than 8 elements through zero-padded lanes: same arithmetic as the main loop,
/// kept out of line so the hot loop carries one inlined copy of the atan2 code.
@inline(never)
func atanTail(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
              _ v: UnsafeMutablePointer<Float>, _ n: Int, _ k: AtanUpdate, rotate: Bool, vFromClipped: Bool) -> Lanes {
    let (pn, mn, vn, u) = atanLanes(loadPadded(g, 0, n), loadPadded(m, 0, n), loadPadded(v, 0, n), loadPadded(p, 0, n),
                                    k, rotate: rotate, vFromClipped: vFromClipped)
    storePartial(pn, p, 0, n); storePartial(mn, m, 0, n); storePartial(vn, v, 0, n)
    return absLanes(u)
}

/// The three compile-time variants of the MoClip update loop. A type parameter (not Bool
/// arguments) makes the compiler emit one specialised function per variant, each small enough
/// for the atan2 and square-root code to be inlined into its loop.
protocol AtanVariant { static var rotate: Bool { get }; static var vFromClipped: Bool { get } }
enum Unrotated: AtanVariant { static var rotate: Bool { false }; static var vFromClipped: Bool { false } }
enum RotatedClippedV: AtanVariant { static var rotate: Bool { true }; static var vFromClipped: Bool { true } }
enum RotatedRawV: AtanVariant { static var rotate: Bool { true }; static var vFromClipped: Bool { false } }

/// Applies one MoClip step to `count` elements; returns max |atan2(m̂, b√v̂)| (before lr·a).
func atanUpdate(p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                v: UnsafeMutablePointer<Float>, count: Int, _ k: AtanUpdate,
                rotate: Bool, secondMomentFromClipped: Bool) -> Float {
    switch (rotate, secondMomentFromClipped) {
    case (false, _): return atanLoop(Unrotated.self, p, g, m, v, count, k)
    case (true, true): return atanLoop(RotatedClippedV.self, p, g, m, v, count, k)
    case (true, false): return atanLoop(RotatedRawV.self, p, g, m, v, count, k)
    }
}

@inline(never)
private func atanLoop<V: AtanVariant>(_: V.Type, _ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                                      _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
                                      _ count: Int, _ k: AtanUpdate) -> Float {
    var largest = Lanes.zero
    var i = 0
    while i + 8 <= count {
        let (pn, mn, vn, u) = atanLanes(loadLanes(g, i), loadLanes(m, i), loadLanes(v, i), loadLanes(p, i), k,
                                        rotate: V.rotate, vFromClipped: V.vFromClipped)
        storeLanes(pn, p, i); storeLanes(mn, m, i); storeLanes(vn, v, i)
        largest = maxLanes(largest, absLanes(u))
        i += 8
    }
    if i < count {
        largest = maxLanes(largest, atanTail(p + i, g + i, m + i, v + i, count - i, k, rotate: V.rotate, vFromClipped: V.vFromClipped))
    }
    return largest.max()
}

/// Constants of one AdamW update of one tensor.
struct AdamWUpdate {
    var beta1: Float
    var beta2: Float
    /// √(1−β2), as in `AtanUpdate`.
    var vGain: Float
    /// 1/√(1−β2^t): √v̂ = √v·vScale
    var vScale: Float
    var epsilon: Float
    /// 1 − lr·λ
    var decay: Float
    /// lr/(1−β1^t)
    var stepScale: Float
}

/// The AdamW arithmetic for 8 elements: returns new p, m, v and m/(√v̂+ε).
@_transparent
func adamWLanes(_ g: Lanes, _ mOld: Lanes, _ vOld: Lanes, _ pOld: Lanes, _ k: AdamWUpdate) -> (Lanes, Lanes, Lanes, Lanes) {
    let mNew = k.beta1 * mOld + (1 - k.beta1) * g
    let gScaled = k.vGain * g
    let vNew = k.beta2 * vOld + gScaled * gScaled
    let u = mNew / (squareRootLanes(vNew) * k.vScale + k.epsilon)
    let pNew = pOld * k.decay - k.stepScale * u
    return (pNew, mNew, vNew, u)
}

/// Applies one AdamW step to `count` elements; returns max |m/(√v̂+ε)| (before stepScale).
func adamWUpdate(p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                 v: UnsafeMutablePointer<Float>, count: Int, _ k: AdamWUpdate) -> Float {
    var largest = Lanes.zero
    var i = 0
    while i + 8 <= count {
        let (pn, mn, vn, u) = adamWLanes(loadLanes(g, i), loadLanes(m, i), loadLanes(v, i), loadLanes(p, i), k)
        storeLanes(pn, p, i); storeLanes(mn, m, i); storeLanes(vn, v, i)
        largest = maxLanes(largest, absLanes(u))
        i += 8
    }
    if i < count {
        let n = count - i
        let (pn, mn, vn, u) = adamWLanes(loadPadded(g, i, n), loadPadded(m, i, n), loadPadded(v, i, n), loadPadded(p, i, n), k)
        storePartial(pn, p, i, n); storePartial(mn, m, i, n); storePartial(vn, v, i, n)
        largest = maxLanes(largest, absLanes(u))
    }
    return largest.max()
}
