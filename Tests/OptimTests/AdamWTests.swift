import Foundation
import Parameters
import XCTest
@testable import Optim

final class AdamWTests: XCTestCase {
    /// Three steps worked out by hand (Python, float64) from the PyTorch AdamW equations:
    /// lr 0.1, λ 0.01, β (0.9, 0.999), ε 1e-8, p₀ = (1, −2, 0).
    func testMatchesHandComputedSteps() throws {
        let store = ParameterStore()
        let t = try store.add(name: "w", shape: [1, 3])
        t.value[0] = 1; t.value[1] = -2; t.value[2] = 0
        let opt = try AdamW(store: store, schedule: .constant(0.1), weightDecay: 0.01)
        let grads: [[Float]] = [[0.5, -3, 1e-4], [-0.25, -3, 0], [2, 1, -1e-4]]
        let expected: [[Double]] = [
            [0.899000002, -1.8980000003333333, -0.0999900009999],
            [0.8714672987058463, -1.796102000666334, -0.1668863593273574],
            [0.8035310672284472, -1.7337361046649307, -0.1581337530548177],
        ]
        for (s, g) in grads.enumerated() {
            for i in 0..<3 { t.grad[i] = g[i] }
            let telemetry = try opt.step()
            for i in 0..<3 {
                XCTAssertEqual(Double(t.value[i]), expected[s][i], accuracy: 2e-6, "step \(s + 1) coordinate \(i)")
            }
            XCTAssertNil(telemetry.meanAngleBeforeClip)
            XCTAssertEqual(telemetry.clippedFraction, 0)
        }
        XCTAssertEqual(opt.stepCount, 3)
    }

    /// A double-precision reference over many coordinates and steps, including tails that are
    /// not multiples of 8 and a tensor large enough for the multi-threaded path.
    func testMatchesReferenceOnManyCoordinates() throws {
        let store = try makeStore(mixedShapes)
        let groups = ParameterGroup.decayMatricesOnly(store, weightDecay: 0.1)
        let schedule = LRSchedule.warmupCosine(peak: 0.01, warmupSteps: 3, totalSteps: 12, minimum: 0.001)
        var config = AdamWConfig(); config.beta2 = 0.99; config.epsilon = 1e-6
        let opt = try AdamW(store: store, groups: groups, schedule: schedule, config: config)
        var p = snapshot(store).map { $0.map(Double.init) }
        var m = p.map { [Double](repeating: 0, count: $0.count) }, v = m
        let decay = store.tensors.map { $0.rank >= 2 ? 0.1 : 0.0 }
        for s in 1...12 {
            writeQuadraticGradients(store, step: s)
            let lr = Double(schedule.learningRate(atStep: s))
            for (k, t) in store.tensors.enumerated() {
                for i in 0..<t.count {
                    let g = Double(t.grad[i])
                    p[k][i] *= 1 - lr * decay[k]
                    m[k][i] = 0.9 * m[k][i] + 0.1 * g
                    v[k][i] = 0.99 * v[k][i] + 0.01 * g * g
                    let mh = m[k][i] / (1 - pow(0.9, Double(s))), vh = v[k][i] / (1 - pow(0.99, Double(s)))
                    p[k][i] -= lr * mh / (vh.squareRoot() + 1e-6)
                }
            }
            try opt.step()
        }
        for (k, t) in store.tensors.enumerated() {
            for i in 0..<t.count {
                XCTAssertEqual(Double(t.value[i]), p[k][i], accuracy: 1e-5, "\(t.name)[\(i)]")
            }
        }
    }

    func testFirstStepIsLrTimesSign() throws {
        // Bias-corrected first step: m̂/√v̂ = g/|g|, so each coordinate moves by lr (less ε's share).
        let store = ParameterStore()
        let t = try store.add(name: "b", shape: [4])
        let grads: [Float] = [3, -0.01, 1e4, -7]
        for i in 0..<4 { t.grad[i] = grads[i] }
        let telemetry = try AdamW(store: store, schedule: .constant(0.5)).step()
        for i in 0..<4 { XCTAssertEqual(t.value[i], grads[i] > 0 ? -0.5 : 0.5, accuracy: 1e-5) }
        XCTAssertEqual(telemetry.maxCoordinateStep, 0.5, accuracy: 1e-5)
    }

    func testInvalidConfigurationIsRefused() throws {
        let store = try makeStore(mixedShapes)
        var c = AdamWConfig(); c.epsilon = 0
        assertThrowsMessage(try AdamW(store: store, schedule: .constant(0.1), config: c), "epsilon 0.0")
        c = AdamWConfig(); c.beta2 = -0.1
        assertThrowsMessage(try AdamW(store: store, schedule: .constant(0.1), config: c), "beta2 = -0.1")
    }
}
