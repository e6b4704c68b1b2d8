import Foundation
import Parameters
import XCTest
@testable import Optim

/// All three optimizers must actually optimise: a noisy ill-conditioned quadratic and a small
/// logistic regression on synthetic data.
final class ConvergenceTests: XCTestCase {
    enum Kind: CaseIterable { case moclip, adamAtan2, adamW }

    func make(_ kind: Kind, _ store: ParameterStore, _ schedule: LRSchedule) throws -> any Optimizer {
        switch kind {
        case .moclip: return try MoClip(store: store, schedule: schedule)
        case .adamAtan2: return try MoClip(store: store, schedule: schedule, config: .adamAtan2)
        case .adamW: return try AdamW(store: store, schedule: schedule)
        }
    }

    func testNoisyQuadratic() throws {
        // f(p) = ½ Σ hᵢ (pᵢ − p*ᵢ)², hᵢ from 0.1 to 10, gradient noise σ = 0.5.
        let dim = 64
        let curvature = (0..<dim).map { 0.1 * pow(100, Double($0) / Double(dim - 1)) }
        let target = (0..<dim).map { sin(Double($0)) * 2 }
        for kind in Kind.allCases {
            let store = ParameterStore()
            let p = try store.add(name: "p", shape: [dim])
            let opt = try make(kind, store, .warmupCosine(peak: 0.05, warmupSteps: 50, totalSteps: 2000, minimum: 0.0005))
            var rng = TestRNG(17)
            func distance() -> Double { (0..<dim).reduce(0) { $0 + pow(Double(p.value[$1]) - target[$1], 2) }.squareRoot() }
            let start = distance()
            for _ in 0..<2000 {
                for i in 0..<dim { p.grad[i] = Float(curvature[i] * (Double(p.value[i]) - target[i]) + 0.5 * rng.normal()) }
                try opt.step()
            }
            XCTAssertLessThan(distance(), 0.05 * start, "\(kind): distance \(distance()) from start \(start)")
        }
    }

    func testLogisticRegression() throws {
        // 400 points in 8 dimensions, labels from a true hyperplane with 5% flipped.
        let n = 400, d = 8
        var rng = TestRNG(23)
        let trueW = (0..<d).map { _ in rng.normal() }
        var x = [[Double]](), y = [Double]()
        for _ in 0..<n {
            let row = (0..<d).map { _ in rng.normal() }
            var label = zip(row, trueW).reduce(0.5) { $0 + $1.0 * $1.1 } > 0 ? 1.0 : 0.0
            if rng.unit() < 0.05 { label = 1 - label }
            x.append(row); y.append(label)
        }
        for kind in Kind.allCases {
            let store = ParameterStore()
            let w = try store.add(name: "w", shape: [1, d]), b = try store.add(name: "b", shape: [1])
            let opt = try make(kind, store, .constant(0.05))
            func lossAndAccuracy(writeGradients: Bool) -> (Double, Double) {
                var loss = 0.0, correct = 0
                var gw = [Double](repeating: 0, count: d), gb = 0.0
                for k in 0..<n {
                    var z = Double(b.value[0])
                    for j in 0..<d { z += Double(w.value[j]) * x[k][j] }
                    let prob = 1 / (1 + exp(-z))
                    loss += y[k] == 1 ? -log(max(prob, 1e-12)) : -log(max(1 - prob, 1e-12))
                    if (prob > 0.5) == (y[k] == 1) { correct += 1 }
                    let dz = (prob - y[k]) / Double(n)
                    for j in 0..<d { gw[j] += dz * x[k][j] }
                    gb += dz
                }
                if writeGradients {
                    for j in 0..<d { w.grad[j] = Float(gw[j]) }
                    b.grad[0] = Float(gb)
                }
                return (loss / Double(n), Double(correct) / Double(n))
            }
            let (initialLoss, _) = lossAndAccuracy(writeGradients: false)
            for _ in 0..<400 {
                _ = lossAndAccuracy(writeGradients: true)
                try opt.step()
            }
            let (loss, accuracy) = lossAndAccuracy(writeGradients: false)
            XCTAssertLessThan(loss, 0.5 * initialLoss, "\(kind): loss \(loss) from \(initialLoss)")
            XCTAssertGreaterThan(accuracy, 0.88, "\(kind): accuracy \(accuracy)")
        }
    }
}
