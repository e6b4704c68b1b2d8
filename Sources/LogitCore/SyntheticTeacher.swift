import Foundation

/// Deterministic synthetic teacher rows for benchmarks and tests (the rows of `logit-bench`):
///
///     z_j = c · (−1.1 · ln r_j + 2.0 · ε_j),   ε_j ~ N(0, 1),   c ~ U(0.3, 3.0) per position,
///
/// where r_j is the 1-based frequency rank of token j. At even positions token id = rank − 1;
/// at odd positions token id = perm[rank − 1] for one fixed random permutation of the vocabulary
/// (so half of the sets are spread over the id space, as with a real tokenizer). The gold
/// token is drawn from the row's own softmax, as if the corpus followed the teacher.
///
/// ε comes from a 64-bit hash of (seed, position, rank) mapped through a 4096-entry inverse
/// normal CDF table: exact enough for benchmarking (it is quantized to 1/4096 in probability),
/// reproducible on every machine, and cheap enough to draw 150k values per row.
/// Row `p` depends only on (seed, vocab, p), so rows can be generated in any order or in parallel.
public struct SyntheticTeacher: Sendable {
    public let vocabSize: Int
    public let seed: UInt64
    /// −1.1 · ln r for r = 1…V, indexed by rank − 1.
    private let rankTerm: [Float]
    /// Token id of rank r − 1 at odd positions.
    public let permutation: [UInt32]
    private let normalTable: [Float]

    public static let benchmarkVocab = 151_936
    public static let benchmarkSeed: UInt64 = 0x5EED_2510_0915_2025

    public init(vocabSize: Int = SyntheticTeacher.benchmarkVocab, seed: UInt64 = SyntheticTeacher.benchmarkSeed) {
        precondition(vocabSize >= 2)
        self.vocabSize = vocabSize
        self.seed = seed
        rankTerm = (1...vocabSize).map { Float(-1.1 * log(Double($0))) }
        var rng = SplitMix64(seed: seed)
        var perm = (0..<UInt32(vocabSize)).map { $0 }
        for i in stride(from: vocabSize - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            perm.swapAt(i, j)
        }
        permutation = perm
        normalTable = (0..<4096).map { Float(inverseNormalCDF((Double($0) + 0.5) / 4096)) }
    }

    /// Writes row `position`'s logits into `row` (count == vocabSize); returns the gold id.
    public func fillRow(position: Int, into row: UnsafeMutableBufferPointer<Float>) -> UInt32 {
        precondition(row.count == vocabSize)
        var rng = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: position) &* 0x9E37_79B9_7F4A_7C15))
        let c = Float(0.3 + 2.7 * rng.nextUnit())
        let permuted = position % 2 == 1
        let base = rng.next()
        rankTerm.withUnsafeBufferPointer { rt in
            normalTable.withUnsafeBufferPointer { nt in
                permutation.withUnsafeBufferPointer { pm in
                    for r in 0..<vocabSize {
                        let h = SplitMix64.mix(base &+ UInt64(truncatingIfNeeded: r))
                        let eps = nt[Int(h >> 52)]
                        let z = c * (rt[r] + 2.0 * eps)
                        row[permuted ? Int(pm[r]) : r] = z
                    }
                }
            }
        }
        // Gold ~ softmax(z): one pass for the max and the partition, one walk to the draw.
        var m = -Float.infinity
        for v in row { m = max(m, v) }
        var sum = 0.0
        for v in row { sum += Double(expf(v - m)) }
        let u = rng.nextUnit() * sum
        var acc = 0.0
        for (j, v) in row.enumerated() {
            acc += Double(expf(v - m))
            if acc >= u { return UInt32(j) }
        }
        return UInt32(vocabSize - 1)
    }
}

/// SplitMix64: a tiny, well-mixed, portable PRNG (same stream on every machine).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }
    @inlinable public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    @inlinable public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    /// Uniform index in 0..<bound by Lemire's multiply-high (no modulo, no rejection: the bias is
    /// below 2⁻³² for any realistic bound, and the result is exactly reproducible). The replay
    /// order (schema/REPLAY_ORDER.md) and the tail loss's negative draws are defined with it.
    @inlinable public mutating func below(_ bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}

/// Acklam's rational approximation of the standard normal quantile (|error| < 1.2e-9).
func inverseNormalCDF(_ p: Double) -> Double {
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
             6.680131188771972e+01, -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    if p < low {
        let q = (-2 * log(p)).squareRoot()
        return (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1)
    } else if p <= 1 - low {
        let q = p - 0.5, r = q * q
        return (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r+a[5])*q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r+1)
    } else {
        let q = (-2 * log(1 - p)).squareRoot()
        return -(((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1)
    }
}
