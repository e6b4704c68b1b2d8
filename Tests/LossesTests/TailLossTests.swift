import LogitCore
import XCTest
@testable import Losses

/// `SampledTailLoss` against its definition (docs/DESIGN.md §6.3), computed here in Double from
/// the same draw, and against the full softmax where the estimator becomes exact.
final class TailLossTests: LossTestCase {
    /// The loss of the type doc, in Double, straight from the definitions.
    func reference(_ p: Problem, negatives: Int, alpha: Double, seed: UInt64, draw: UInt64) -> Double {
        let drawn = SampledTailLoss.drawNegatives(count: min(negatives, p.vocab), vocab: p.vocab, seed: seed, draw: draw)
        var total = 0.0, supervised = 0
        for i in 0..<p.n where p.mask[i] != 0 {
            supervised += 1
            func z(_ v: Int) -> Double { (0..<p.d).reduce(0.0) { $0 + Double(p.hidden[i * p.d + $1]) * Double(p.weight[v * p.d + $1]) } }
            let set = p.ids[Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])].map(Int.init)
            let lps = p.logprobs[Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])].map(Double.init)
            let outside = drawn.map(Int.init).filter { !set.contains($0) }
            let zS = set.reduce(0.0) { $0 + exp(z($1)) }
            let w = outside.isEmpty ? 0 : Double(p.vocab - set.count) / Double(outside.count)
            let zOut = w * outside.reduce(0.0) { $0 + exp(z($1)) }
            let zHat = zS + zOut
            let ce = log(zHat) - z(Int(p.gold[i]))
            var t = lps.map { exp($0) }
            var rhoT = outside.isEmpty ? 0 : max(0, 1 - t.reduce(0, +))
            let norm = t.reduce(0, +) + rhoT
            t = t.map { $0 / norm }
            rhoT /= norm
            var kd = 0.0
            for (j, v) in set.enumerated() where t[j] > 0 { kd += t[j] * (log(t[j]) - (z(v) - log(zHat))) }
            if rhoT > 0 { kd += rhoT * (log(rhoT) - log(zOut / zHat)) }
            total += (1 - alpha) * ce + alpha * kd
        }
        return total / Double(max(supervised, 1))
    }

    /// A problem whose teacher leaves real mass outside the sets (Σ_S t ≈ 0.3–0.6).
    func tailProblem(seed: UInt64, n: Int = 4, d: Int = 5, vocab: Int = 40, mask: [UInt8]? = nil) -> Problem {
        makeProblem(seed: seed, n: n, d: d, vocab: vocab, mask: mask)
    }

    func runTail(_ loss: SampledTailLoss, _ p: Problem, draw: UInt64, initialDW: Float = 0) throws -> (LossResult, dH: [Float], dW: [Float]) {
        try run(loss, p, initialDW: initialDW, negativeDraw: draw)
    }

    func testValueMatchesTheDefinition() throws {
        for (seed, negatives, alpha) in [(21 as UInt64, 8, 0.0 as Float), (22, 8, 0.5), (23, 3, 1), (24, 40, 0.3)] {
            let p = tailProblem(seed: seed, mask: [1, 1, 0, 1])
            let loss = SampledTailLoss(negatives: negatives, kdAlpha: alpha, seed: 5)
            for draw: UInt64 in [0, 7] {
                let (r, _, _) = try runTail(loss, p, draw: draw)
                XCTAssertEqual(r.loss, reference(p, negatives: negatives, alpha: Double(alpha), seed: 5, draw: draw), accuracy: 2e-5,
                               "seed \(seed) n \(negatives) α \(alpha) draw \(draw)")
                XCTAssertEqual(r.supervised, 3)
            }
        }
    }

    /// Drawing the whole vocabulary makes Ẑ exact: CE is the full CE, to float rounding.
    func testWholeVocabularyDrawIsTheFullCrossEntropy() throws {
        let p = tailProblem(seed: 25, mask: [1, 0, 1, 1])
        let (t, tdH, tdW) = try runTail(SampledTailLoss(negatives: p.vocab), p, draw: 3)
        let (f, fdH, fdW) = try run(FullSoftmaxLoss(chunkRows: 3), p)
        XCTAssertEqual(t.loss, f.loss, accuracy: 1e-5)
        assertClose(tdH, fdH, tol: 1e-5, "dH")
        assertClose(tdW, fdW, tol: 1e-5, "dW")
    }

    /// S = V leaves no tail: the loss is the full CE whatever the draw.
    func testWholeVocabularySetIsTheFullCrossEntropy() throws {
        let p = makeProblem(seed: 26, wholeVocab: true, mask: [1, 1, 1, 0])
        let (t, tdH, tdW) = try runTail(SampledTailLoss(negatives: 4, kdAlpha: 0), p, draw: 1)
        let (f, fdH, fdW) = try run(FullSoftmaxLoss(), p)
        XCTAssertEqual(t.loss, f.loss, accuracy: 1e-5)
        assertClose(tdH, fdH, tol: 1e-5, "dH")
        assertClose(tdW, fdW, tol: 1e-5, "dW")
    }

    /// With the whole vocabulary drawn, KD over S ∪ {tail} is the exact tail-bucket KL with the
    /// full softmax: Σ_S t (log t − log p) + ρ_T (log ρ_T − log ρ).
    func testWholeVocabularyDrawIsTheExactTailBucketKL() throws {
        let p = tailProblem(seed: 27)
        let (r, _, _) = try runTail(SampledTailLoss(negatives: p.vocab, kdAlpha: 1), p, draw: 0)
        var expected = 0.0
        for i in 0..<p.n {
            let z = (0..<p.vocab).map { v in (0..<p.d).reduce(0.0) { $0 + Double(p.hidden[i * p.d + $1]) * Double(p.weight[v * p.d + $1]) } }
            let m = z.max()!
            let lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
            let range = Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])
            let t = p.logprobs[range].map { exp(Double($0)) }
            let rhoT = 1 - t.reduce(0, +)
            XCTAssertGreaterThan(rhoT, 0.05, "the fixture must leave teacher mass outside")
            let inside = p.ids[range].map { z[Int($0)] - lse }
            let rho = 1 - inside.reduce(0) { $0 + exp($1) }
            expected += zip(t, inside).reduce(0) { $0 + $1.0 * (log($1.0) - $1.1) } + rhoT * (log(rhoT) - log(rho))
        }
        XCTAssertEqual(r.distillation, expected / Double(p.n), accuracy: 1e-4)
    }

    func testFiniteDifferenceGradients() throws {
        for (seed, negatives, alpha) in [(31 as UInt64, 8, 0.0 as Float), (32, 8, 0.6), (33, 20, 1)] {
            var p = tailProblem(seed: seed, mask: [1, 1, 0, 1])
            let loss = SampledTailLoss(negatives: negatives, kdAlpha: alpha, seed: 9)
            let (_, dH, dW) = try runTail(loss, p, draw: 4)
            let eps: Float = 1e-3, tol: Float = 2e-3
            for i in 0..<p.hidden.count {
                let x = p.hidden[i]
                p.hidden[i] = x + eps; let up = try runTail(loss, p, draw: 4).0.loss
                p.hidden[i] = x - eps; let down = try runTail(loss, p, draw: 4).0.loss
                p.hidden[i] = x
                XCTAssertEqual(Float((up - down) / Double(2 * eps)), dH[i], accuracy: tol, "dH[\(i)] seed \(seed)")
            }
            for i in 0..<p.weight.count {
                let x = p.weight[i]
                p.weight[i] = x + eps; let up = try runTail(loss, p, draw: 4).0.loss
                p.weight[i] = x - eps; let down = try runTail(loss, p, draw: 4).0.loss
                p.weight[i] = x
                XCTAssertEqual(Float((up - down) / Double(2 * eps)), dW[i], accuracy: tol, "dW[\(i)] seed \(seed)")
            }
        }
    }

    /// Drawn outside rows get gradient (they are pushed down); rows neither in a set nor drawn get none.
    func testGradientReachesOnlyDrawnAndSetRows() throws {
        let p = tailProblem(seed: 34, mask: [1, 1, 1, 1])
        let drawn = Set(SampledTailLoss.drawNegatives(count: 6, vocab: p.vocab, seed: 2, draw: 11).map(Int.init))
        let inSets = Set(p.ids.map(Int.init))
        let (_, _, dW) = try runTail(SampledTailLoss(negatives: 6, seed: 2), p, draw: 11)
        for v in 0..<p.vocab {
            let touched = (0..<p.d).contains { dW[v * p.d + $0] != 0 }
            XCTAssertEqual(touched, drawn.contains(v) || inSets.contains(v), "row \(v)")
        }
    }

    func testDrawsAreDistinctReproducibleAndVaryWithTheDraw() {
        let a = SampledTailLoss.drawNegatives(count: 256, vocab: 49_152, seed: 1, draw: 0)
        XCTAssertEqual(a.count, 256)
        XCTAssertEqual(Set(a).count, 256)
        XCTAssertEqual(a, a.sorted())
        XCTAssertTrue(a.allSatisfy { $0 < 49_152 })
        XCTAssertEqual(a, SampledTailLoss.drawNegatives(count: 256, vocab: 49_152, seed: 1, draw: 0))
        XCTAssertNotEqual(a, SampledTailLoss.drawNegatives(count: 256, vocab: 49_152, seed: 1, draw: 1))
        XCTAssertNotEqual(a, SampledTailLoss.drawNegatives(count: 256, vocab: 49_152, seed: 2, draw: 0))
        XCTAssertEqual(SampledTailLoss.drawNegatives(count: 10, vocab: 10, seed: 0, draw: 0), (0..<10).map(UInt32.init))
        // Uniform: over many draws every id of a small vocabulary comes up about equally often.
        var counts = [Int](repeating: 0, count: 50)
        for draw in 0..<2_000 { for id in SampledTailLoss.drawNegatives(count: 5, vocab: 50, seed: 3, draw: UInt64(draw)) { counts[Int(id)] += 1 } }
        XCTAssertLessThan(counts.max()! - counts.min()!, 90, "\(counts)")  // mean 200, σ ≈ 13
    }

    func testDeterministicAndAccumulating() throws {
        let p = makeProblem(seed: 35, n: 64, d: 40, vocab: 300)
        let loss = SampledTailLoss(negatives: 32, kdAlpha: 0.5, seed: 1)
        let a = try runTail(loss, p, draw: 2)
        let b = try runTail(loss, p, draw: 2)
        XCTAssertEqual(a.dW, b.dW)
        XCTAssertEqual(a.dH, b.dH)
        let (_, _, dW) = try runTail(loss, p, draw: 2, initialDW: 1)
        assertClose(dW, a.dW.map { $0 + 1 }, tol: 1e-6, "accumulated dW")
        XCTAssertNotEqual(try runTail(loss, p, draw: 3).0.loss, a.0.loss, "another draw estimates the tail from other ids")
    }

    func testRejectsBadOptionsAndInput() throws {
        let p = tailProblem(seed: 36)
        XCTAssertThrowsError(try runTail(SampledTailLoss(negatives: 0), p, draw: 0)) { XCTAssertTrue("\($0)".contains("negatives 0")) }
        XCTAssertThrowsError(try runTail(SampledTailLoss(kdAlpha: -0.1), p, draw: 0)) { XCTAssertTrue("\($0)".contains("kdAlpha")) }
        XCTAssertThrowsError(try runTail(SampledTailLoss(kdAlpha: .nan), p, draw: 0))
        var q = tailProblem(seed: 37)
        q.logprobs[1] = .nan
        XCTAssertThrowsError(try runTail(SampledTailLoss(kdAlpha: 0.5), q, draw: 0)) { XCTAssertTrue("\($0)".contains("not finite")) }
        var r = tailProblem(seed: 38)
        let lo = Int(r.setOffsets[0]), hi = Int(r.setOffsets[1])
        r.gold[0] = (0..<UInt32(r.vocab)).first { !r.ids[lo..<hi].contains($0) }!
        XCTAssertThrowsError(try runTail(SampledTailLoss(), r, draw: 0)) { XCTAssertTrue("\($0)".contains("not in its candidate set")) }
        let none = tailProblem(seed: 39, mask: [0, 0, 0, 0])
        let (z, dH, dW) = try runTail(SampledTailLoss(kdAlpha: 0.5), none, draw: 0)
        XCTAssertEqual(z.loss, 0)
        XCTAssertTrue(dH.allSatisfy { $0 == 0 } && dW.allSatisfy { $0 == 0 })
    }

    /// Quantised teacher log-probs can sum a little above 1: ρ_T clamps to 0 and the KD stays finite.
    func testTeacherMassAboveOneIsRenormalised() throws {
        var p = tailProblem(seed: 40)
        for i in 0..<p.n {
            let range = Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])
            for j in range { p.logprobs[j] = Float(log(1.004 / Double(range.count))) }
        }
        let (r, _, _) = try runTail(SampledTailLoss(negatives: 8, kdAlpha: 1), p, draw: 0)
        XCTAssertTrue(r.loss.isFinite)
        XCTAssertEqual(r.loss, reference(p, negatives: 8, alpha: 1, seed: 0, draw: 0), accuracy: 2e-5)
    }
}
