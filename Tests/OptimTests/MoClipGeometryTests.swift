import Foundation
import XCTest
@testable import Optim

/// The clip as geometry: statistics from the real fused kernel, decision, then g' = α·g + β·m
/// evaluated in Double and measured.
final class MoClipGeometryTests: XCTestCase {
    /// A gradient at roughly `targetAngle` from a random momentum, in `dim` dimensions.
    func pair(dim: Int, targetAngle: Double, seed: UInt64) -> (g: [Float], m: [Float]) {
        var rng = TestRNG(seed)
        let m = (0..<dim).map { _ in Float(rng.normal()) }
        var noise = (0..<dim).map { _ in rng.normal() }
        let md = m.map(Double.init)
        let mm = md.reduce(0) { $0 + $1 * $1 }
        let proj = zip(noise, md).reduce(0) { $0 + $1.0 * $1.1 } / mm
        noise = zip(noise, md).map { $0 - proj * $1 }
        let u = md.map { $0 / mm.squareRoot() }, w = noise.map { $0 / norm(noise) }
        let scale = 0.5 + 3 * rng.unit()
        let g = (0..<dim).map { Float(scale * (cos(targetAngle) * u[$0] + sin(targetAngle) * w[$0])) }
        return (g, m)
    }

    func stats(_ g: [Float], _ m: [Float]) -> AngleStatistics {
        var g = g, m = m
        return g.withUnsafeMutableBufferPointer { gp in
            m.withUnsafeMutableBufferPointer { mp in angleStatistics(gp.baseAddress!, mp.baseAddress!, count: gp.count) }
        }
    }

    func clipped(_ g: [Float], _ m: [Float], _ d: ClipDecision) -> [Double] {
        zip(g, m).map { d.gradientScale * Double($0) + d.momentumScale * Double($1) }
    }

    func testStatisticsKernelMatchesDoubleReference() {
        for dim in [2, 7, 8, 15, 16, 17, 1023, 1024, 1025, 5000] {
            let (g, m) = pair(dim: dim, targetAngle: 1.0, seed: UInt64(dim))
            let s = stats(g, m)
            let dot = zip(g, m).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let gg = g.reduce(0.0) { $0 + Double($1) * Double($1) }
            let mm = m.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(s.dot, dot, accuracy: 1e-12 * (gg * mm).squareRoot(), "dim \(dim)")
            XCTAssertEqual(s.gradNormSquared, gg, accuracy: 1e-12 * gg, "dim \(dim)")
            XCTAssertEqual(s.momentumNormSquared, mm, accuracy: 1e-12 * mm, "dim \(dim)")
        }
    }

    func testAngleClipBoundsAngleAndKeepsNorm() {
        var clippedCases = 0
        for (k, maxAngle) in [Double.pi / 6, .pi / 4, .pi / 3, .pi / 2, 2 * .pi / 3].enumerated() {
            for (j, target) in stride(from: 0.05, through: 3.1, by: 0.15).enumerated() {
                let (g, m) = pair(dim: 601, targetAngle: target, seed: UInt64(100 * k + j))
                let d = MoClipGeometry.decide(stats(g, m), mode: .gradientMomentumAngle(maxAngle: maxAngle), beta1: 0.9)
                let gc = clipped(g, m, d)
                let after = angle(gc, m.map(Double.init))
                XCTAssertLessThanOrEqual(after, maxAngle + 1e-6, "Δmax \(maxAngle), θ \(target)")
                XCTAssertEqual(norm(gc), norm(g.map(Double.init)), accuracy: 1e-6 * norm(g.map(Double.init)),
                               "‖g‖ must be unchanged (Δmax \(maxAngle), θ \(target))")
                XCTAssertEqual(d.clipped, target > maxAngle + 1e-4 ? true : d.clipped)
                if target > maxAngle + 1e-4 {
                    clippedCases += 1
                    XCTAssertEqual(after, maxAngle, accuracy: 1e-6, "a clipped gradient sits exactly at Δmax")
                } else if target < maxAngle - 1e-4 {
                    XCTAssertFalse(d.clipped)
                    XCTAssertEqual(d.gradientScale, 1); XCTAssertEqual(d.momentumScale, 0)
                }
            }
        }
        XCTAssertGreaterThan(clippedCases, 40)
    }

    func testAntiParallelGradient() throws {
        let m: [Float] = (0..<100).map { Float($0 % 9) - 4 + 0.5 }
        let g = m.map { -3 * $0 }
        let s = stats(g, m)
        XCTAssertEqual(s.angle!, .pi, accuracy: 1e-3)
        // Δmax = π/3: g' = ‖g‖ cos(π/3)·u = 1.5·m.
        let d = MoClipGeometry.decide(s, mode: .gradientMomentumAngle(maxAngle: .pi / 3), beta1: 0.9)
        XCTAssertTrue(d.clipped); XCTAssertTrue(d.degenerate)
        XCTAssertEqual(d.gradientScale, 0)
        XCTAssertEqual(d.momentumScale, 1.5, accuracy: 1e-5)
        XCTAssertEqual(angle(clipped(g, m, d), m.map(Double.init)), 0, accuracy: 1e-6)
        // Δmax = π/2: nothing of g survives.
        let half = MoClipGeometry.decide(s, mode: .gradientMomentumAngle(maxAngle: .pi / 2), beta1: 0.9)
        XCTAssertEqual(half.gradientScale, 0)
        XCTAssertEqual(half.momentumScale, 0, accuracy: 1e-6)
        // Δmax = π never clips, even exactly opposite.
        let none = MoClipGeometry.decide(s, mode: .gradientMomentumAngle(maxAngle: .pi), beta1: 0.9)
        XCTAssertEqual(none, .unchanged(angle: s.angle))
    }

    func testZeroVectorsAreLeftAlone() {
        let zero = AngleStatistics(dot: 0, gradNormSquared: 0, momentumNormSquared: 4)
        XCTAssertEqual(MoClipGeometry.decide(zero, mode: .gradientMomentumAngle(maxAngle: 0.1), beta1: 0.9), .unchanged(angle: nil))
        let noMomentum = AngleStatistics(dot: 0, gradNormSquared: 4, momentumNormSquared: 0)
        XCTAssertEqual(MoClipGeometry.decide(noMomentum, mode: .momentumRotation(maxAngle: 0.1), beta1: 0.9), .unchanged(angle: nil))
    }

    func testMomentumRotationCapBoundsTheNewMomentum() {
        let beta1 = 0.9
        var clippedCases = 0
        for (k, maxAngle) in [0.02, 0.1, 0.3, Double.pi / 2].enumerated() {
            for (j, target) in stride(from: 0.05, through: 3.1, by: 0.2).enumerated() {
                var (g, m) = pair(dim: 400, targetAngle: target, seed: UInt64(7000 + 100 * k + j))
                // Large gradients relative to m make big rotations possible.
                if j % 2 == 0 { g = g.map { $0 * 20 } }
                let d = MoClipGeometry.decide(stats(g, m), mode: .momentumRotation(maxAngle: maxAngle), beta1: beta1)
                let gc = clipped(g, m, d)
                let md = m.map(Double.init)
                let mNew = zip(md, gc).map { beta1 * $0 + (1 - beta1) * $1 }
                XCTAssertLessThanOrEqual(angle(mNew, md), maxAngle + 1e-6, "Δmax \(maxAngle), θ \(target)")
                XCTAssertEqual(norm(gc), norm(g.map(Double.init)), accuracy: 2e-6 * norm(g.map(Double.init)))
                if d.clipped {
                    clippedCases += 1
                    XCTAssertEqual(angle(mNew, md), maxAngle, accuracy: 1e-6, "clipped momentum turns exactly Δmax")
                    // Least rotation: g' lies between m's direction and g.
                    XCTAssertLessThanOrEqual(angle(gc, md), d.angle! + 1e-9)
                }
            }
        }
        XCTAssertGreaterThan(clippedCases, 5)
    }

    func testMomentumRotationStillLetsMomentumSlowDown() {
        // g opposite-ish to m but small: m shrinks without turning, so no clip.
        let (g, m) = pair(dim: 500, targetAngle: 3.0, seed: 3)
        let s = stats(g.map { $0 * 0.1 }, m)
        let d = MoClipGeometry.decide(s, mode: .momentumRotation(maxAngle: 0.1), beta1: 0.9)
        XCTAssertFalse(d.clipped, "a small opposing gradient only decelerates m")
        // The gradient–momentum clip at π/2 would have removed the braking component.
        let angleClip = MoClipGeometry.decide(s, mode: .gradientMomentumAngle(maxAngle: .pi / 2), beta1: 0.9)
        XCTAssertTrue(angleClip.clipped)
    }

    func testMomentumRotationAntiParallelLargeGradient() {
        let m: [Float] = (0..<64).map { Float($0 % 5) + 1 }
        let g = m.map { -50 * $0 }     // would flip m: rotation π
        let d = MoClipGeometry.decide(stats(g, m), mode: .momentumRotation(maxAngle: 0.2), beta1: 0.9)
        XCTAssertTrue(d.clipped); XCTAssertTrue(d.degenerate)
        let md = m.map(Double.init)
        let mNew = zip(md, clipped(g, m, d)).map { 0.9 * $0 + 0.1 * $1 }
        XCTAssertEqual(angle(mNew, md), 0, accuracy: 1e-6, "the new momentum keeps m's direction")
    }
}
