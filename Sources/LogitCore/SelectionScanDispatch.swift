import CSelectKernels

/// Which implementation of the row scan a `TopKSelector` runs (public so benchmarks can
/// measure the portable baseline beside the kernel in one run). Both compute the same thing
/// (max, partition sum, sorted candidate pool; the pools are bit-identical, the sums agree to
/// ~1e-7 relative); the AVX2+FMA kernel is ~2–3× faster because the scan is bound by the
/// exp's arithmetic, which FMA and 8-lane registers shrink; the AVX-512 kernel halves the
/// instructions again. The package itself is built for the x86-64 baseline, so the kernels are
/// compiled with target attributes and chosen at run time.
public enum ScanPath: Sendable, Hashable, CustomStringConvertible {
    /// The Swift SIMD scan (`scanRow`): any CPU.
    case portable
    /// The C kernel in `CSelectKernels`: x86-64 with AVX2, FMA and F16C.
    case avx2FMA
    /// The 16-lane C kernel: x86-64 with AVX-512 F/BW/VL/DQ (and FMA, F16C).
    case avx512

    /// Checked once per process. F16C is part of the requirement because the Float16 scan uses
    /// it; every CPU with AVX2 has it, so this costs no machine the fast path.
    static let avx2FMAAvailable = select_kernels_have_avx2_fma() != 0 && select_kernels_have_f16c() != 0

    /// Checked once per process. Implies `avx2FMAAvailable` on every real CPU; required too so
    /// that `available` is always a prefix of the same order.
    static let avx512Available = avx2FMAAvailable && select_kernels_have_avx512() != 0

    /// What `TopKSelector(policy:)` uses: the widest kernel this CPU runs.
    public static let best: ScanPath = avx512Available ? .avx512 : avx2FMAAvailable ? .avx2FMA : .portable

    /// Every path this CPU can run (tests run each one).
    public static var available: [ScanPath] {
        avx512Available ? [.portable, .avx2FMA, .avx512] : avx2FMAAvailable ? [.portable, .avx2FMA] : [.portable]
    }

    /// Whether this CPU runs the path.
    public var isAvailable: Bool {
        switch self {
        case .portable: true
        case .avx2FMA: ScanPath.avx2FMAAvailable
        case .avx512: ScanPath.avx512Available
        }
    }

    public var description: String {
        switch self {
        case .portable: "portable"
        case .avx2FMA: "avx2+fma"
        case .avx512: "avx512"
        }
    }

    /// Runs the scan on this path. Same contract as `scanRow`: `pool` holds at least
    /// `2 * poolLimit + scanPoolSlack` keys, 1 ≤ poolLimit ≤ row.count; nil for a non-finite row.
    func scan<E: LogitElement>(_ row: UnsafeBufferPointer<E>, poolLimit: Int,
                               pool: UnsafeMutableBufferPointer<UInt64>) -> RowScanResult? {
        switch self {
        case .portable:
            return scanRow(row, poolLimit: poolLimit, pool: pool)
        case .avx2FMA, .avx512:
            precondition(isAvailable, "the \(self) row scan was requested on a CPU that lacks it")
            precondition(poolLimit >= 1 && poolLimit <= row.count && pool.count >= 2 * poolLimit + scanPoolSlack,
                         "row scan needs 1 ≤ poolLimit (\(poolLimit)) ≤ row (\(row.count)) and a pool of ≥ 2·poolLimit + \(scanPoolSlack) keys, got \(pool.count)")
            var out = select_scan_result()
            let n = Int64(row.count), limit = Int64(poolLimit)
            let ok: Int32
            if E.self == Float.self {
                ok = row.withMemoryRebound(to: Float.self) {
                    self == .avx512 ? select_scan_f32_avx512($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                                    : select_scan_f32($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else if E.self == Float16.self {
                ok = row.withMemoryRebound(to: UInt16.self) {
                    self == .avx512 ? select_scan_f16_avx512($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                                    : select_scan_f16($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else if E.self == BFloat16.self {
                ok = row.withMemoryRebound(to: UInt16.self) {
                    self == .avx512 ? select_scan_bf16_avx512($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                                    : select_scan_bf16($0.baseAddress!, n, limit, pool.baseAddress!, &out)
                }
            } else {
                preconditionFailure("the \(self) row scan has no kernel for element type \(E.self)")
            }
            guard ok != 0 else { return nil }
            return RowScanResult(maxLogit: out.max_logit, partition: out.partition, poolCount: Int(out.pool_count))
        }
    }
}

/// Extra pool room beyond 2·poolLimit: one block of any scan may land before the cut.
let scanPoolSlack = Swift.max(scanBlock, Int(SELECT_KERNELS_BLOCK), Int(SELECT_KERNELS_BLOCK_AVX512))

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

/// The AVX-512 kernel's e^x (x ≤ 0) on 16 floats, so
/// tests can bound its error. Only on a CPU where `ScanPath.avx512Available`.
func kernel512ExpNonPositive(_ x: [Float]) -> [Float] {
    precondition(ScanPath.avx512Available, "the AVX-512 exp was requested on a CPU without AVX-512")
    precondition(x.count == 16, "the AVX-512 exp takes 16 floats, got \(x.count)")
    var output = [Float](repeating: 0, count: 16)
    x.withUnsafeBufferPointer { xp in
        output.withUnsafeMutableBufferPointer { select_kernels_exp16_avx512(xp.baseAddress!, $0.baseAddress!) }
    }
    return output
}
