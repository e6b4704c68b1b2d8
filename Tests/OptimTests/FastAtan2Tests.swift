import Foundation
import XCTest
@testable import Optim

final class FastAtan2Tests: XCTestCase {
    /// Magnitudes spanning subnormals to the largest float, with both signs and infinities.
    static let specials: [Float] = {
        let magnitudes: [Float] = [0, .leastNonzeroMagnitude, 0x1p-133, .leastNormalMagnitude, 1e-30, 1e-7, 1e-3, 0.1,
                                   0.4142135, 0.5, 0.99999, 1, 1.00001, 2, 2.4142135, 10, 1e3, 1e7, 1e30,
                                   .greatestFiniteMagnitude, .infinity]
        return magnitudes + magnitudes.map { -$0 }
    }()

    func reference(_ y: Float, _ x: Float) -> Double { Foundation.atan2(Double(y), Double(x)) }

    func testMatchesFoundationOnSpecialGrid() {
        var worst = 0.0
        for y in Self.specials {
            for x in Self.specials {
                let got = FastAtan2.atan2(y, x)
                let want = reference(y, x)
                XCTAssertFalse(got.isNaN, "atan2(\(y), \(x)) gave NaN, expected \(want)")
                worst = max(worst, abs(Double(got) - want))
                XCTAssertLessThanOrEqual(abs(Double(got) - want), 1e-6, "atan2(\(y), \(x)) = \(got), expected \(want)")
                // Same sign as C's atan2, zeros included.
                XCTAssertEqual(got.sign, Float(want).sign, "sign of atan2(\(y), \(x))")
            }
        }
        XCTAssertLessThan(worst, 5e-7)
    }

    func testMatchesFoundationOnRandomValues() {
        var rng = TestRNG(42)
        var worst = 0.0
        for _ in 0..<200_000 {
            // Log-uniform magnitudes over 40 decades, random signs.
            let y = Float(exp((rng.unit() - 0.5) * 92)) * (rng.unit() < 0.5 ? -1 : 1)
            let x = Float(exp((rng.unit() - 0.5) * 92)) * (rng.unit() < 0.5 ? -1 : 1)
            worst = max(worst, abs(Double(FastAtan2.atan2(y, x)) - reference(y, x)))
        }
        XCTAssertLessThan(worst, 5e-7, "max error over random inputs")
    }

    func testDenseRatioSweepNearOctantBoundaries() {
        var worst = 0.0
        for i in 0...100_000 {
            let r = Float(i) / 50_000   // ratio 0...2 crosses |y| = |x|
            for (y, x) in [(r, Float(1)), (Float(1), r), (-r, Float(-1))] {
                worst = max(worst, abs(Double(FastAtan2.atan2(y, x)) - reference(y, x)))
            }
        }
        XCTAssertLessThan(worst, 5e-7)
    }

    func testSignedZerosAndNaN() {
        XCTAssertEqual(FastAtan2.atan2(0, 0).bitPattern, Float(0).bitPattern)
        XCTAssertEqual(FastAtan2.atan2(-0.0, 0).bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(FastAtan2.atan2(0, -0.0), .pi, accuracy: 1e-6)
        XCTAssertEqual(FastAtan2.atan2(-0.0, -0.0), -.pi, accuracy: 1e-6)
        XCTAssertEqual(FastAtan2.atan2(.infinity, .infinity), .pi / 4, accuracy: 1e-6)
        XCTAssertEqual(FastAtan2.atan2(-.infinity, -.infinity), -3 * .pi / 4, accuracy: 1e-6)
        XCTAssertTrue(FastAtan2.atan2(.nan, 1).isNaN)
        XCTAssertTrue(FastAtan2.atan2(1, .nan).isNaN)
        XCTAssertTrue(FastAtan2.atan2(0, .nan).isNaN)
        XCTAssertTrue(FastAtan2.atan2(.nan, 0).isNaN)
    }

    func testVectorLanesAreIndependent() {
        let y = SIMD8<Float>(1, -1, 0, -0.0, .infinity, 3, -1e-30, 5)
        let x = SIMD8<Float>(1, 1, -1, 0, 2, -4, 1e30, .nan)
        let v = FastAtan2.atan2(y, x)
        for k in 0..<7 { XCTAssertEqual(Double(v[k]), reference(y[k], x[k]), accuracy: 1e-6, "lane \(k)") }
        XCTAssertTrue(v[7].isNaN)
    }

    /// The optimizer's fused form atan2(y, √w) against Foundation, within its documented error.
    func testAtan2OverSquareRoot() {
        let tolerance = FastAtan2.updateAngleMaxError
        var rng = TestRNG(7)
        var worst = 0.0
        for _ in 0..<100_000 {
            let y = Float(exp((rng.unit() - 0.5) * 80)) * (rng.unit() < 0.5 ? -1 : 1)
            let w = Float(exp((rng.unit() - 0.5) * 160))
            let got = FastAtan2.atan2OverSquareRoot(SIMD8(repeating: y), SIMD8(repeating: w))[0]
            worst = max(worst, abs(Double(got) - Foundation.atan2(Double(y), Double(w).squareRoot())))
        }
        XCTAssertLessThan(worst, tolerance)
        XCTAssertGreaterThan(worst, 1e-6, "the random sweep should reach the polynomial's error (else the bound is untested)")
        let y = SIMD8<Float>(0, -0.0, 1e-30, -3, .greatestFiniteMagnitude, 0, 2, -1e-20)
        let w = SIMD8<Float>(0, 0, 1e-30, .infinity, 1, .infinity, 4, 0x1p-133)
        let v = FastAtan2.atan2OverSquareRoot(y, w)
        XCTAssertEqual(v[0].bitPattern, Float(0).bitPattern, "atan2(+0, 0) must be +0: a zero moment must not move the parameter")
        XCTAssertEqual(v[1].bitPattern, Float(-0.0).bitPattern)
        XCTAssertEqual(Double(v[2]), Foundation.atan2(1e-30, 1e-15), accuracy: tolerance)
        XCTAssertEqual(v[3], 0, accuracy: 1e-18, "w = ∞ acts as the largest float: a vanishing angle")
        XCTAssertEqual(v[4], .pi / 2, accuracy: 1e-6)
        XCTAssertEqual(v[5].bitPattern, Float(0).bitPattern)
        // Pinned to π/4 at |y| = √w; the 1/√w estimate (relative error ≤ 5e-6) moves it by half that.
        XCTAssertEqual(v[6], .pi / 4, accuracy: 3e-6, "the polynomial is pinned to π/4 at |y| = √w")
        // Subnormal w is floored at the smallest normal float (documented).
        XCTAssertEqual(Double(v[7]), Foundation.atan2(-1e-20, Double(Float.leastNormalMagnitude).squareRoot()), accuracy: tolerance)
    }

    /// Extreme ratios where t = |y|/√w or 1/t = (w·q)·(1/|y|) over- or underflows in fp32: the
    /// result must still be the right end of [0, π/2], never NaN.
    func testAtan2OverSquareRootExtremeRatios() {
        let y = SIMD8<Float>(1e38, 1e-40, -1e38, .leastNonzeroMagnitude, 3e38, 1e-30, -1e30, 1)
        let w = SIMD8<Float>(1e-30, 1, 1e-38, 1e30, .leastNormalMagnitude, 3e38, 0, .greatestFiniteMagnitude)
        let v = FastAtan2.atan2OverSquareRoot(y, w)
        for k in 0..<8 {
            let want = Foundation.atan2(Double(y[k]), Double(max(w[k], .leastNormalMagnitude)).squareRoot())
            XCTAssertFalse(v[k].isNaN, "lane \(k)")
            XCTAssertEqual(Double(v[k]), want, accuracy: FastAtan2.updateAngleMaxError, "atan2(\(y[k]), √\(w[k]))")
        }
    }

    /// Dense sweep of the ratio |y|/√w across the fold at 1: within the error bound, never above
    /// π/2 (the per-coordinate step bound), monotone up to the error bound, and continuous at 1.
    func testAtan2OverSquareRootRatioSweep() {
        let tolerance = FastAtan2.updateAngleMaxError
        var previous: Float = 0
        var worst = 0.0
        for i in 0...200_000 {
            let ratio = Float(i) / 20_000   // 0 ... 10
            let got = FastAtan2.atan2OverSquareRoot(SIMD8(repeating: ratio), SIMD8(repeating: 1))[0]
            worst = max(worst, abs(Double(got) - Foundation.atan(Double(ratio))))
            XCTAssertLessThanOrEqual(got, .pi / 2, "ratio \(ratio)")
            XCTAssertGreaterThanOrEqual(got, previous - Float(2 * tolerance), "ratio \(ratio)")
            previous = got
        }
        XCTAssertLessThan(worst, tolerance)
        let below = FastAtan2.atan2OverSquareRoot(SIMD8(repeating: 1 - 0x1p-20), SIMD8(repeating: 1))[0]
        let above = FastAtan2.atan2OverSquareRoot(SIMD8(repeating: 1 + 0x1p-20), SIMD8(repeating: 1))[0]
        XCTAssertEqual(below, above, accuracy: 1e-5, "no jump where the fold switches branch")
    }

    func testSquareRootLanesAgainstHardware() {
        var rng = TestRNG(9)
        var values: [Float] = [0, .leastNonzeroMagnitude, 0x1p-146, 0x1p-133, .leastNormalMagnitude, 0x1p-60, 0x1.fffffep-61,
                               1e-10, 0.25, 1, 2, 3, 1e10, 1e30, .greatestFiniteMagnitude]
        for _ in 0..<100_000 { values.append(Float(exp((rng.unit() - 0.5) * 190))) }
        var worstUlps: Float = 0
        var i = 0
        while i < values.count {
            var lanes = SIMD8<Float>.zero
            for k in 0..<8 where i + k < values.count { lanes[k] = values[i + k] }
            let got = squareRootLanes(lanes)
            for k in 0..<8 where i + k < values.count {
                let want = values[i + k].squareRoot()
                if want == 0 { XCTAssertEqual(got[k], 0, "√0"); continue }
                worstUlps = max(worstUlps, abs(got[k] - want) / want.ulp)
            }
            i += 8
        }
        XCTAssertLessThanOrEqual(worstUlps, 1, "square root error in ulps")
    }
}
