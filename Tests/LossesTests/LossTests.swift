import LogitCore
import XCTest
@testable import Losses

/// The restricted and full losses on tiny problems, checked against the definitions in docs/DESIGN.md §6.
final class LossTests: LossTestCase {
    func testRestrictedEqualsFullWhenSetIsWholeVocabulary() throws {
        let p = makeProblem(seed: 1, wholeVocab: true, mask: [1, 0, 1, 1])
        let (r, dH, dW) = try run(RestrictedSoftmaxLoss(), p)
        let (f, fdH, fdW) = try run(FullSoftmaxLoss(chunkRows: 3), p)
        XCTAssertEqual(r.supervised, 3)
        XCTAssertEqual(f.supervised, 3)
        XCTAssertEqual(r.loss, f.loss, accuracy: 1e-5)
        assertClose(dH, fdH, tol: 1e-5, "dH")
        assertClose(dW, fdW, tol: 1e-5, "dW")
        // The masked position contributes nothing.
        XCTAssertEqual(Array(dH[5..<10]), [0, 0, 0, 0, 0])
    }

    /// CE_S = CE_full + log(1 − ρ), ρ = the student's full-softmax mass outside S.
    func testRestrictedIdentityWithStudentOutsideMass() throws {
        let p = makeProblem(seed: 2)
        let (r, _, _) = try run(RestrictedSoftmaxLoss(), p)
        var expected = 0.0
        for i in 0..<p.n {
            let z = (0..<p.vocab).map { v in (0..<p.d).reduce(0.0) { $0 + Double(p.hidden[i * p.d + $1]) * Double(p.weight[v * p.d + $1]) } }
            let m = z.max()!
            let lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
            let ceFull = lse - z[Int(p.gold[i])]
            let inside = p.ids[Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])].reduce(0.0) { $0 + exp(z[Int($1)] - lse) }
            let rho = 1 - inside
            expected += ceFull + log(1 - rho)
        }
        expected /= Double(p.n)
        XCTAssertEqual(r.crossEntropy, expected, accuracy: 1e-5)
        // And it is strictly below the full CE unless S is everything.
        let (f, _, _) = try run(FullSoftmaxLoss(), p)
        XCTAssertLessThan(r.crossEntropy, f.crossEntropy)
    }

    /// Central differences on every entry of H and of the W rows the sets touch.
    func checkFiniteDifferences(_ loss: RestrictedSoftmaxLoss, seed: UInt64) throws {
        var p = makeProblem(seed: seed, mask: [1, 1, 0, 1])
        let (_, dH, dW) = try run(loss, p)
        let eps: Float = 1e-3, tol: Float = 2e-3
        for i in 0..<p.hidden.count {
            let x = p.hidden[i]
            p.hidden[i] = x + eps; let up = try run(loss, p).0.loss
            p.hidden[i] = x - eps; let down = try run(loss, p).0.loss
            p.hidden[i] = x
            XCTAssertEqual(Float((up - down) / Double(2 * eps)), dH[i], accuracy: tol, "dH[\(i)]")
        }
        for i in 0..<p.weight.count {
            let x = p.weight[i]
            p.weight[i] = x + eps; let up = try run(loss, p).0.loss
            p.weight[i] = x - eps; let down = try run(loss, p).0.loss
            p.weight[i] = x
            XCTAssertEqual(Float((up - down) / Double(2 * eps)), dW[i], accuracy: tol, "dW[\(i)]")
        }
    }

    func testFiniteDifferenceGradientsCE() throws {
        try checkFiniteDifferences(RestrictedSoftmaxLoss(), seed: 3)
    }

    func testFiniteDifferenceGradientsKD() throws {
        try checkFiniteDifferences(RestrictedSoftmaxLoss(kdAlpha: 1, temperature: 2), seed: 4)
        try checkFiniteDifferences(RestrictedSoftmaxLoss(kdAlpha: 0.4, temperature: 0.7), seed: 5)
    }

    func testFiniteDifferenceGradientsFull() throws {
        var p = makeProblem(seed: 6, mask: [1, 0, 1, 1])
        let loss = FullSoftmaxLoss(chunkRows: 2)
        let (_, dH, dW) = try run(loss, p)
        let eps: Float = 1e-3
        for i in 0..<p.hidden.count {
            let x = p.hidden[i]
            p.hidden[i] = x + eps; let up = try run(loss, p).0.loss
            p.hidden[i] = x - eps; let down = try run(loss, p).0.loss
            p.hidden[i] = x
            XCTAssertEqual(Float((up - down) / Double(2 * eps)), dH[i], accuracy: 2e-3, "dH[\(i)]")
        }
        for i in stride(from: 0, to: p.weight.count, by: 3) {
            let x = p.weight[i]
            p.weight[i] = x + eps; let up = try run(loss, p).0.loss
            p.weight[i] = x - eps; let down = try run(loss, p).0.loss
            p.weight[i] = x
            XCTAssertEqual(Float((up - down) / Double(2 * eps)), dW[i], accuracy: 2e-3, "dW[\(i)]")
        }
    }

    /// KD vanishes when the student's tempered softmax over S equals the teacher's: lp = z + c.
    func testDistillationIsZeroWhenStudentMatchesTeacher() throws {
        var p = makeProblem(seed: 7)
        for i in 0..<p.n {
            for j in Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1]) {
                let v = Int(p.ids[j])
                let z = (0..<p.d).reduce(Float(0)) { $0 + p.hidden[i * p.d + $1] * p.weight[v * p.d + $1] }
                p.logprobs[j] = z - 20
            }
        }
        let (r, _, _) = try run(RestrictedSoftmaxLoss(kdAlpha: 1, temperature: 1.5), p)
        XCTAssertEqual(r.distillation, 0, accuracy: 1e-5)
        XCTAssertEqual(r.loss, 0, accuracy: 1e-5)
    }

    /// dW is accumulated (+=), and identical bit for bit from run to run (row-owned phase 2).
    func testWeightGradientAccumulatesAndIsDeterministic() throws {
        let p = makeProblem(seed: 8, n: 64, d: 40, vocab: 50)
        let a = try run(RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 2), p)
        let b = try run(RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 2), p)
        XCTAssertEqual(a.dW, b.dW)
        XCTAssertEqual(a.dH, b.dH)
        let (_, _, dW) = try run(RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 2), p, initialDW: 1)
        assertClose(dW, a.dW.map { $0 + 1 }, tol: 1e-6, "accumulated dW")
    }

    func testRejectsBadInput() throws {
        var p = makeProblem(seed: 9)
        // Gold outside its set.
        let lo = Int(p.setOffsets[1]), hi = Int(p.setOffsets[2])
        let inSet = Set(p.ids[lo..<hi])
        p.gold[1] = (0..<UInt32(p.vocab)).first { !inSet.contains($0) }!
        XCTAssertThrowsError(try run(RestrictedSoftmaxLoss(), p)) { error in
            XCTAssertTrue("\(error)".contains("not in its candidate set"), "\(error)")
        }
        // Full CE does not need sets, so it accepts it.
        XCTAssertNoThrow(try run(FullSoftmaxLoss(), p))
        // Candidate id ≥ vocab.
        var q = makeProblem(seed: 10)
        q.ids[0] = UInt32(q.vocab)
        XCTAssertThrowsError(try run(RestrictedSoftmaxLoss(), q))
        // Wrong shapes and options.
        var s = makeProblem(seed: 11)
        s.hidden.removeLast()
        XCTAssertThrowsError(try run(FullSoftmaxLoss(), s)) { XCTAssertTrue("\($0)".contains("hidden has")) }
        XCTAssertThrowsError(try run(RestrictedSoftmaxLoss(kdAlpha: 1.5), makeProblem(seed: 12)))
        XCTAssertThrowsError(try run(RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 0), makeProblem(seed: 12)))
        var t = makeProblem(seed: 13)
        t.setOffsets[2] = t.setOffsets[1] - 1
        XCTAssertThrowsError(try run(RestrictedSoftmaxLoss(), t))
    }

    func testNoSupervisedPositionsGivesZero() throws {
        let p = makeProblem(seed: 14, mask: [0, 0, 0, 0])
        let (r, dH, dW) = try run(RestrictedSoftmaxLoss(kdAlpha: 0.5), p)
        XCTAssertEqual(r.supervised, 0)
        XCTAssertEqual(r.loss, 0)
        XCTAssertTrue(dH.allSatisfy { $0 == 0 } && dW.allSatisfy { $0 == 0 })
    }
}
