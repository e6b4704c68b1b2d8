import CSelectKernels

/// Which implementation of the row scan a `TopKSelector` runs (public so benchmarks can
/// measure the portable baseline beside the kernel in one run). Both compute the same thing
/// (max, partition sum, sorted candidate pool; the pools are bit-identical, the sums agree to
/// ~1e-7 relative); the AVX2+FMA kernel is ~2–3× faster because the scan is bound by the
/// exp's arithmetic, which FMA and 8-lane registers shrink. The package itself is built for the
/// x86-64 baseline, so the kernel is compiled with a target attribute and chosen at run time.
public enum ScanPath: Sendable, Hashable, CustomStringConvertible {
    /// The Swift SIMD scan (`scanRow`): any CPU.
    case portable
    /// The C kernel in `CSelectKernels`: x86-64 with AVX2, FMA and F16C.
    case avx2FMA

    /// Checked once per process. F16C is part of the requirement because the Float16 scan uses
    /// it; every CPU with AVX2 has it, so this costs no machine the fast path.
    static let avx2FMAAvailable = select_kernels_have_avx2_fma() != 0 && select_kernels_have_f16c() != 0

    /// What `TopKSelector(policy:)` uses.
    public static let best: ScanPath = avx2FMAAvailable ? .avx2FMA : .portable

    /// Every path this CPU can run (tests run each one).
    public static var available: [ScanPath] { avx2FMAAvailable ? [.portable, .avx2FMA] : [.portable] }

    public var description: String { self == .portable ? "portable" : "avx2+fma" }

    /// Runs the scan on this path. Same contract as `scanRow`: `pool` holds at least
    /// `2 * poolLimit + scanPoolSlack` keys, 1 ≤ poolLimit ≤ row.count; nil for a non-finite row.
    func scan<E: LogitElement>(_ row: UnsafeBufferPointer<E>, poolLimit: Int,
                               pool: UnsafeMutableBufferPointer<UInt64>) -> RowScanResult? {
        switch self {
        case .portable:
            return scanRow(row, poolLimit: poolLimit, pool: pool)
        case .avx2FMA:
            precondition(ScanPath.avx2FMAAvailable, "the AVX2+FMA row scan was requested on a CPU without AVX2, FMA and F16C")
            precondition(poolLimit >= 1 && poolLimit <= row.count && pool.count >= 2 * poolLimit + scanPoolSlack,
                         "row scan needs 1 ≤ poolLimit (\(poolLimit)) ≤ row (\(row.count)) and a pool of ≥ 2·poolLimit + \(scanPoolSlack) keys, got \(pool.count)")
            var out = select_scan_result()
            let n = Int64(row.count), limit = Int64(poolLimit)
            let ok: Int32
            if E.self == Float.self {
                ok = row.withMemoryRebound(to: Float.self) {
                    select_scan_f32($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else if E.self == Float16.self {
                ok = row.withMemoryRebound(to: UInt16.self) {
                    select_scan_f16($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else if E.self == BFloat16.self {
                ok = row.withMemoryRebound(to: UInt16.self) {
                    select_scan_bf16($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else {
                preconditionFailure("the AVX2+FMA row scan has no kernel for element type \(E.self)")
            }
            guard ok != 0 else { return nil }
            return RowScanResult(maxLogit: out.max_logit, partition: out.partition, poolCount: Int(out.pool_count))
        }
    }
}

/// Extra pool room beyond 2·poolLimit: one block of either scan may land before the cut.
let scanPoolSlack = Swift.max(scanBlock, Int(SELECT_KERNELS_BLOCK))

/// The AVX2+FMA kernel's e^x (x ≤ 0) on one vector, so tests can bound its error like
/// `fastExpNonPositive`'s. Only on a CPU where `ScanPath.avx2FMAAvailable`.
func kernelExpNonPositive(_ x: ScanFloats) -> ScanFloats {
    precondition(ScanPath.avx2FMAAvailable, "the AVX2+FMA exp was requested on a CPU without AVX2, FMA and F16C")
    var input = x, output = ScanFloats()
    withUnsafePointer(to: &input) { xp in
        withUnsafeMutablePointer(to: &output) { op in
            xp.withMemoryRebound(to: Float.self, capacity: scanLanes) { x8 in
                op.withMemoryRebound(to: Float.self, capacity: scanLanes) { select_kernels_exp8(x8, $0) }
            }
        }
    }
    return output
}
