import Foundation
import XCTest
@testable import LogitCore

/// Every kernel row scan (AVX2+FMA, AVX-512) against the portable Swift scan: same pool bit for
/// bit, same max, partition sums within the fast exps' error. (The selection-level exactness
/// tests in `SelectionTopKTests`, against a full sort, run on every path in `ScanPath.available`.)
final class SelectionScanKernelTests: XCTestCase {
    var rng = SplitMix64(seed: 0xA5A5)

    func gaussian() -> Float {
        let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    func requireKernel() throws {
        guard ScanPath.avx2FMAAvailable else { throw XCTSkip("this CPU lacks AVX2, FMA or F16C: only the portable scan runs") }
        XCTAssertEqual(ScanPath.best, ScanPath.avx512Available ? .avx512 : .avx2FMA,
                       "the selector must use the widest kernel the CPU has")
    }

    /// The kernel paths this CPU runs (the portable scan is the reference they are compared with).
    var kernelPaths: [ScanPath] { ScanPath.available.filter { $0 != .portable } }

    func testAvailablePathsMatchTheCPU() throws {
        XCTAssertEqual(ScanPath.available.first, .portable)
        XCTAssertEqual(ScanPath.available.last, ScanPath.best, "best must be the last (widest) available path")
        for path in [ScanPath.portable, .avx2FMA, .avx512] {
            XCTAssertEqual(path.isAvailable, ScanPath.available.contains(path), "path \(path)")
            if !path.isAvailable {
                XCTAssertThrowsError(try TopKSelector(policy: .default, scanPath: path), "unavailable \(path) accepted")
            }
        }
    }

    func testAVX512ExpIsBitIdenticalToAVX2Exp() throws {
        guard ScanPath.avx512Available else { throw XCTSkip("this CPU lacks AVX-512 F/BW/VL/DQ") }
        var x: Float = -90
        var checked = 0
        while x <= 0 {
            let v = (0..<16).map { x + Float($0) * 1e-3 }
            let wide = kernel512ExpNonPositive(v)
            let lo = kernelExpNonPositive(ScanFloats(v[0..<8])), hi = kernelExpNonPositive(ScanFloats(v[8..<16]))
            for l in 0..<16 {
                let narrow = l < 8 ? lo[l] : hi[l - 8]
                XCTAssertEqual(wide[l].bitPattern, narrow.bitPattern, "e^\(v[l]): avx512 \(wide[l]) vs avx2 \(narrow)")
                checked += 1
            }
            x += 0.0173
        }
        XCTAssertGreaterThan(checked, 80_000)
        let special = kernel512ExpNonPositive([0, -0.0, -1e30, -.infinity, .nan, -87.3, -88, -1e-30] + [Float](repeating: -1, count: 8))
        XCTAssertEqual(special[0], 1)
        XCTAssertEqual(special[1], 1)
        XCTAssertLessThan(special[2], 1.3e-38)
        XCTAssertLessThan(special[3], 1.3e-38)
        XCTAssertTrue(special[4].isNaN)
        XCTAssertEqual(Double(special[8]), exp(-1.0), accuracy: 2.5e-7 * exp(-1.0))
    }

    func testKernelExpRelativeError() throws {
        try requireKernel()
        var worst = 0.0
        var x: Float = -87
        while x <= 0 {
            let v = ScanFloats((0..<scanLanes).map { x + Float($0) * 1e-3 })
            let e = kernelExpNonPositive(v)
            for l in 0..<scanLanes where v[l] <= 0 {
                let exact = exp(Double(v[l]))
                worst = max(worst, abs(Double(e[l]) - exact) / exact)
            }
            x += 0.0173
        }
        XCTAssertLessThan(worst, 2.5e-7, "kernel exp worst relative error \(worst)")
        XCTAssertEqual(kernelExpNonPositive(ScanFloats(repeating: 0))[scanLanes - 1], 1)
        XCTAssertLessThan(kernelExpNonPositive(ScanFloats(repeating: -1e30))[0], 1.3e-38)
        XCTAssertLessThan(kernelExpNonPositive(ScanFloats(repeating: -.infinity))[3], 1.3e-38)
        XCTAssertTrue(kernelExpNonPositive(ScanFloats(repeating: .nan))[0].isNaN)
    }

    /// Scans `row` on the portable path and every kernel path and compares everything the selection uses.
    func assertPathsAgree<E: LogitElement>(_ row: [E], poolLimit: Int, _ what: String,
                                           file: StaticString = #filePath, line: UInt = #line) {
        let capacity = 2 * poolLimit + scanPoolSlack
        var pools: [[UInt64]] = []
        var results: [RowScanResult?] = []
        let paths = ScanPath.available
        for path in paths {
            var pool = [UInt64](repeating: 0, count: capacity)
            let r = row.withUnsafeBufferPointer { buf in
                pool.withUnsafeMutableBufferPointer { path.scan(buf, poolLimit: poolLimit, pool: $0) }
            }
            results.append(r)
            pools.append(Array(pool.prefix(r?.poolCount ?? 0)))
        }
        XCTAssertGreaterThanOrEqual(paths.count, 2, "no kernel path to compare", file: file, line: line)
        for k in 1..<paths.count {
            let which = "\(paths[k]) vs portable: \(what)"
            guard let a = results[0], let b = results[k] else {
                XCTAssertTrue(results[0] == nil && results[k] == nil, "one path rejected the row: \(which)", file: file, line: line)
                continue
            }
            XCTAssertEqual(a.poolCount, b.poolCount, "pool count: \(which)", file: file, line: line)
            XCTAssertEqual(pools[0], pools[k], "pool keys: \(which)", file: file, line: line)
            XCTAssertEqual(a.maxLogit, b.maxLogit, "max: \(which)", file: file, line: line)
            XCTAssertEqual(a.partition, b.partition, accuracy: 1e-6 * a.partition, "partition: \(which)", file: file, line: line)
        }
    }

    func testKernelScanEqualsPortableScan() throws {
        try requireKernel()
        for v in [1, 7, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 191, 1000, 4097, 20_000] {
            for poolLimit in Set([1, min(5, v), min(64, v), v]) {
                for scale: Float in [0.1, 3, 40] {
                    var z = (0..<v).map { _ in scale * gaussian() }
                    assertPathsAgree(z, poolLimit: poolLimit, "Float32 V=\(v) limit \(poolLimit) scale \(scale)")
                    assertPathsAgree(z.map { Float16($0) }, poolLimit: poolLimit, "Float16 V=\(v) limit \(poolLimit)")
                    assertPathsAgree(z.map { BFloat16($0) }, poolLimit: poolLimit, "BFloat16 V=\(v) limit \(poolLimit)")
                    z = z.map { ($0 / 2).rounded() } // many ties: the strict threshold decides
                    assertPathsAgree(z, poolLimit: poolLimit, "ties V=\(v) limit \(poolLimit) scale \(scale)")
                }
            }
        }
        // Rising rows make every block a candidate block and cut the pool again and again.
        let rising = (0..<10_000).map { Float($0) * 1e-3 }
        assertPathsAgree(rising, poolLimit: 32, "rising")
        assertPathsAgree(Array(rising.reversed()), poolLimit: 32, "falling")
        assertPathsAgree(rising, poolLimit: SelectionPolicy.kMaxLimit, "rising, largest pool")
        // Extreme but finite logits, −0 beside +0, and every lane's max rising late.
        var extreme = (0..<700).map { _ in Float([-3e38, -1e30, 0, -0.0, 1e30, 3e38][Int(rng.next() % 6)]) }
        assertPathsAgree(extreme, poolLimit: 64, "extremes")
        extreme = (0..<700).map { Float($0 % 9) - 4 + ($0 > 600 ? 50 : 0) }
        assertPathsAgree(extreme, poolLimit: 10, "late max")
        // Full-vocabulary teacher rows, as in the benchmark.
        let teacher = SyntheticTeacher()
        var row = [Float](repeating: 0, count: teacher.vocabSize)
        for p in 0..<3 {
            _ = row.withUnsafeMutableBufferPointer { teacher.fillRow(position: p, into: $0) }
            assertPathsAgree(row, poolLimit: 64, "synthetic teacher position \(p)")
        }
    }

    func testKernelRejectsEveryNonFiniteKind() throws {
        try requireKernel()
        for v in [40, 200, 4099] {
            for at in Set([0, 31, 32, 63, 64, v / 2, v - 1].filter { $0 < v }) {
                for bad in [Float.nan, .infinity, -.infinity] {
                    var z = (0..<v).map { _ in gaussian() }
                    z[at] = bad
                    assertPathsAgree(z, poolLimit: 16, "V=\(v) \(bad) at \(at)")
                    for path in kernelPaths {
                        var pool = [UInt64](repeating: 0, count: 32 + scanPoolSlack)
                        let r = z.withUnsafeBufferPointer { buf in
                            pool.withUnsafeMutableBufferPointer { path.scan(buf, poolLimit: 16, pool: $0) }
                        }
                        XCTAssertNil(r, "\(path) kernel accepted \(bad) at \(at) of \(v)")
                        let halves = z.map { Float16($0) }
                        let rh = halves.withUnsafeBufferPointer { buf in
                            pool.withUnsafeMutableBufferPointer { path.scan(buf, poolLimit: 16, pool: $0) }
                        }
                        XCTAssertNil(rh, "\(path) Float16 kernel accepted \(bad) at \(at) of \(v)")
                    }
                }
            }
        }
    }

    func testBeyondFloatRangeOnEveryPath() throws {
        var wide = [Float](repeating: -3e38, count: 100)
        wide[9] = 3e38
        for path in ScanPath.available {
            let got = try TopKSelector(policy: .default, scanPath: path).select(row: wide.withUnsafeBufferPointer { $0 }, gold: 2)
            XCTAssertEqual(got.ids, [9, 2], "path \(path)")
            XCTAssertEqual(got.logprobs, [0, -.greatestFiniteMagnitude], "path \(path)")
        }
    }
}
