import Foundation

/// One pass over a logits row that yields everything selection needs: the maximum m, the
/// partition sum S = Σ exp(z − m), and the best `poolLimit` entries in selection order
/// (logit descending, lower id first on ties) — without sorting the vocabulary.
///
/// Why one pass: the row is read from memory once (it is typically far larger than L2) and
/// the exps run while it streams in. The sum is "online" per SIMD lane: each lane keeps its own
/// running max and rescales its partial sum when that max rises (rare after the first blocks),
/// so no second pass for the max is needed.
///
/// Measured alternatives that were not faster on the default x86-64 (SSE2) target (thread CPU
/// time, V = 151,936, interleaved runs against this loop): a whole-row max pass then an exp
/// pass (+10%); 1,024-entry chunks, each max-then-exp from L1 (±0%); skipping or
/// coarsening (±3.6% exp, error bound 0.036·V·e^−T ≤ 1e-7) the 4-lane groups below
/// max − 24.7, branch-free or per 16 entries (+20% to +100%: the extra work and LLVM's lane
/// shuffles outweigh the saved exps, and only rows with logit scale c ≳ 2.2 have such groups).
/// The exp is ~⅔ of the row's cost and latency-bound: dropping two of its ~22 operations
/// changed nothing measurable.
///
/// Where the CPU has AVX2+FMA, `TopKSelector` runs the C kernel `select_scan_f32` (and its
/// f16/bf16 twins) in `CSelectKernels` instead: the same algorithm in 8-lane registers with
/// fused operations, 2.2–2.7× less CPU per row (see `ScanPath`). This scan stays the portable
/// path and the reference the kernel is tested against.
///
/// Candidates go into a small buffer of sortable 64-bit keys while their logit beats the
/// threshold T; when the buffer passes 2·poolLimit it is sorted and cut to poolLimit, and T
/// becomes the poolLimit-th logit. Ids are scanned in increasing order, so after a cut a later
/// logit equal to T loses every tie against the kept ones: the test is strict (z > T), which
/// keeps a row of many equal logits from flooding the buffer.
struct RowScanResult {
    /// Global maximum logit (finite: rows with NaN/±inf make `scanRow` return nil).
    var maxLogit: Double
    /// Σ exp(z − maxLogit) over the whole row, ≥ 1 for a finite row.
    var partition: Double
    /// Number of valid keys at the front of the pool buffer, in selection order.
    var poolCount: Int
}

/// Selection order as one integer: larger key = earlier in the order. High half: the logit
/// mapped to an order-preserving unsigned integer (−0 folded to +0 so equal logits tie);
/// low half: bitwise-inverted id (lower id = larger key).
@inline(__always)
func selectionKey(logit: Float, id: UInt32) -> UInt64 {
    let bits = (logit + 0).bitPattern
    let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    return UInt64(ordered) << 32 | UInt64(~id)
}

@inline(__always)
func keyLogit(_ key: UInt64) -> Float {
    let ordered = UInt32(truncatingIfNeeded: key >> 32)
    return Float(bitPattern: ordered & 0x8000_0000 != 0 ? ordered & 0x7FFF_FFFF : ~ordered)
}

@inline(__always)
func keyId(_ key: UInt64) -> UInt32 { ~UInt32(truncatingIfNeeded: key) }

/// Index and value of the first NaN/±inf in the row, or nil. Only run after the fast pass
/// has flagged the row, so it can be a plain loop.
func firstNonFinite<E: LogitElement>(_ row: UnsafeBufferPointer<E>) -> (index: Int, value: Float)? {
    for i in row.indices {
        let v = row[i].widened
        if !v.isFinite { return (i, v) }
    }
    return nil
}

/// Elements per block of the vector loop: four vectors.
let scanBlock = 4 * scanLanes

/// Runs the pass. `pool` must hold at least `2 * poolLimit + scanBlock` keys. Returns nil if
/// the row holds a NaN or an infinity (the caller locates it with `firstNonFinite`).
func scanRow<E: LogitElement>(_ row: UnsafeBufferPointer<E>, poolLimit: Int,
                              pool: UnsafeMutableBufferPointer<UInt64>) -> RowScanResult? {
    let n = row.count
    let base = row.baseAddress!
    var laneMaxima = ScanFloats(repeating: -.infinity)
    var laneMinima = ScanFloats(repeating: .infinity)
    var laneSum = ScanDoubles(repeating: 0)
    var floatSum = ScanFloats(repeating: 0)
    var threshold = -Float.infinity
    var count = 0
    let cutAt = 2 * poolLimit

    /// Sorts the pool, keeps the best `poolLimit`, raises the threshold to the last kept logit.
    @inline(__always) func cut() {
        var keys = UnsafeMutableBufferPointer(rebasing: pool[0..<count])
        keys.sort(by: >)
        count = poolLimit
        threshold = keyLogit(pool[poolLimit - 1])
    }

    var i = 0
    var blocksSinceFlush = 0
    while i + scanBlock <= n {
        let p = base + i
        let v0 = E.loadVector(p), v1 = E.loadVector(p + scanLanes)
        let v2 = E.loadVector(p + 2 * scanLanes), v3 = E.loadVector(p + 3 * scanLanes)
        // NaN reaches the sum through exp; −inf (clamped inside exp) is caught by the minima.
        let blockMax = laneMax(laneMax(v0, v1), laneMax(v2, v3))
        let blockMin = laneMin(laneMin(v1, v0), laneMin(v3, v2))
        laneMinima = laneMin(laneMinima, blockMin)
        if any(blockMax .> laneMaxima) {
            // A lane's max rose: fold its float partial into Double and rescale by e^(old − new).
            laneSum += ScanDoubles(floatSum)
            floatSum = ScanFloats(repeating: 0)
            blocksSinceFlush = 0
            let newMax = laneMax(laneMaxima, blockMax)
            for l in 0..<scanLanes where newMax[l] != laneMaxima[l] {
                laneSum[l] *= Foundation.exp(Double(laneMaxima[l]) - Double(newMax[l]))
            }
            laneMaxima = newMax
        }
        if any(blockMax .> threshold) {
            for j in 0..<scanBlock {
                let z = base[i + j].widened
                if z > threshold {
                    pool[count] = selectionKey(logit: z, id: UInt32(truncatingIfNeeded: i + j))
                    count += 1
                }
            }
            if count > cutAt { cut() }
        }
        // Pairwise inside the block, float across ≤ 4 blocks, then Double: keeps the sum's
        // relative error near 1e-7 at float speed.
        let e = (fastExpNonPositive(v0 - laneMaxima) + fastExpNonPositive(v1 - laneMaxima))
            + (fastExpNonPositive(v2 - laneMaxima) + fastExpNonPositive(v3 - laneMaxima))
        floatSum += e
        blocksSinceFlush += 1
        if blocksSinceFlush == 4 {
            laneSum += ScanDoubles(floatSum)
            floatSum = ScanFloats(repeating: 0)
            blocksSinceFlush = 0
        }
        i += scanBlock
    }
    laneSum += ScanDoubles(floatSum)

    // Combine lanes around the global max (lanes that saw no block hold −inf and add nothing).
    var m = -Double.infinity
    for l in 0..<scanLanes { m = Swift.max(m, Double(laneMaxima[l])) }
    var s = 0.0
    if m > -.infinity {
        for l in 0..<scanLanes where laneMaxima[l] > -.infinity {
            s += laneSum[l] * Foundation.exp(Double(laneMaxima[l]) - m)
        }
    }
    var tailBad = false
    // Scalar tail (< one block), in Double.
    while i < n {
        let z = base[i].widened
        if !z.isFinite { tailBad = true; break }
        let zd = Double(z)
        if zd > m {
            s *= Foundation.exp(m - zd)
            m = zd
        }
        s += Foundation.exp(zd - m)
        if z > threshold {
            pool[count] = selectionKey(logit: z, id: UInt32(truncatingIfNeeded: i))
            count += 1
            if count > cutAt { cut() }
        }
        i += 1
    }
    // NaN reaches a lane sum through exp; +inf makes a lane max infinite; −inf shows in the min.
    if tailBad || !s.isFinite || !m.isFinite { return nil }
    for l in 0..<scanLanes where !laneSum[l].isFinite || laneMaxima[l].isNaN || laneMaxima[l] == .infinity
        || laneMinima[l] == -.infinity || laneMinima[l].isNaN { return nil }

    var keys = UnsafeMutableBufferPointer(rebasing: pool[0..<count])
    keys.sort(by: >)
    return RowScanResult(maxLogit: m, partition: s, poolCount: Swift.min(count, poolLimit))
}
