import Foundation
import Parameters
import XCTest
@testable import Optim

/// MoClip and Adam-atan2 through the optimizer interface: the invariants of docs/DESIGN.md §7.
final class MoClipStepTests: XCTestCase {
    let lr: Float = 0.01

    func run(_ config: MoClipConfig, steps: Int, scale: Float = 1, noise: Float = 0.5, weightDecay: Float = 0.05,
             shapes: [(String, [Int])] = mixedShapes) throws -> (values: [[Float]], telemetry: [StepTelemetry]) {
        let store = try makeStore(shapes)
        let opt = try MoClip(store: store, groups: ParameterGroup.decayMatricesOnly(store, weightDecay: weightDecay),
                             schedule: .constant(lr), config: config)
        var telemetry: [StepTelemetry] = []
        for s in 1...steps {
            writeQuadraticGradients(store, step: s, scale: scale, noise: noise)
            telemetry.append(try opt.step())
        }
        return (snapshot(store), telemetry)
    }

    func testMaxAnglePiIsExactlyAdamAtan2() throws {
        var clipAtPi = MoClipConfig()
        clipAtPi.clip = .gradientMomentumAngle(maxAngle: .pi)
        // Strong gradient noise, so gradients often point against the momentum.
        let a = try run(clipAtPi, steps: 12, noise: 20)
        let b = try run(.adamAtan2, steps: 12, noise: 20)
        XCTAssertTrue(bitsEqual(a.values, b.values), "Δmax = π must reproduce Adam-atan2 bit for bit")
        XCTAssertTrue(a.telemetry.allSatisfy { $0.clippedFraction == 0 })
        XCTAssertNotNil(a.telemetry[3].meanAngleBeforeClip, "angles are still measured at Δmax = π")
        XCTAssertNil(b.telemetry[3].meanAngleBeforeClip, "Adam-atan2 measures no angle")
        // And the clip does change something at π/2 on the same problem.
        let c = try run(MoClipConfig(), steps: 12, noise: 20)
        XCTAssertTrue(c.telemetry.contains { $0.clippedFraction > 0 })
        XCTAssertFalse(bitsEqual(c.values, b.values))
    }

    func testEveryCoordinateMovesAtMostLrTimesAPiOverTwo() throws {
        let store = try makeStore(smallShapes)
        var config = MoClipConfig()
        config.clip = .gradientMomentumAngle(maxAngle: .pi / 4)
        let opt = try MoClip(store: store, schedule: .constant(lr), weightDecay: 0, config: config)
        let bound = lr * config.a * .pi / 2
        var rng = TestRNG(5)
        var observedMax: Float = 0
        for s in 1...25 {
            // Adversarial gradients: huge, tiny, sign flips, sparse.
            for t in store.tensors {
                for i in 0..<t.count {
                    let magnitude: Float = [1e-30, 1e-3, 1, 1e6, 1e15][(i + s) % 5]
                    t.grad[i] = (i + s) % 11 == 0 ? 0 : magnitude * (rng.unit() < 0.5 ? -1 : 1)
                }
            }
            let before = snapshot(store)
            let telemetry = try opt.step()
            var stepMax: Float = 0
            for (t, old) in zip(store.tensors, before) {
                for i in 0..<t.count { stepMax = max(stepMax, abs(t.value[i] - old[i])) }
            }
            XCTAssertLessThanOrEqual(stepMax, bound * (1 + 1e-5) + 2 * Float(2).ulp, "step \(s)")
            XCTAssertLessThanOrEqual(telemetry.maxCoordinateStep, bound * (1 + 1e-6))
            XCTAssertEqual(telemetry.maxCoordinateStep, stepMax, accuracy: 1e-6 + 1e-3 * stepMax,
                           "telemetry reports the largest step actually taken")
            observedMax = max(observedMax, stepMax)
        }
        XCTAssertGreaterThan(observedMax, 0.5 * bound, "the test drives steps near the bound")
    }

    func testOverflowingSecondMomentGivesFiniteBoundedSteps() throws {
        // Adam-atan2 has no angle pass to refuse such gradients; v overflows to ∞ and the update
        // must stay finite and within the bound (atan2(m, ∞) → 0), never NaN.
        let store = ParameterStore()
        let t = try store.add(name: "p", shape: [9])
        let opt = try MoClip(store: store, schedule: .constant(lr), config: .adamAtan2)
        let bound = lr * 1.27 * .pi / 2
        for s in 0..<5 {
            let grads: [Float] = [3e38, -3e38, 1e30, 1e20, -1e19, 1, 0, .greatestFiniteMagnitude, 1e-38]
            for i in 0..<9 { t.grad[i] = s % 2 == 0 ? grads[i] : -grads[i] }
            let before = Array(t.value)
            try opt.step()
            for i in 0..<9 {
                XCTAssertTrue(t.value[i].isFinite, "coordinate \(i) step \(s)")
                XCTAssertLessThanOrEqual(abs(t.value[i] - before[i]), bound * (1 + 1e-5))
            }
        }
        XCTAssertTrue(opt.core.v[0].allSatisfy { !$0.isNaN })
    }

    func testScalingTheLossChangesNothing() throws {
        let config = MoClipConfig()
        let base = try run(config, steps: 15, shapes: smallShapes)
        let times1024 = try run(config, steps: 15, scale: 1024, shapes: smallShapes)
        XCTAssertTrue(bitsEqual(base.values, times1024.values), "a power-of-two loss scale is exact: bit-identical")
        let times1000 = try run(config, steps: 15, scale: 1000, shapes: smallShapes)
        var worst: Float = 0
        for (x, y) in zip(base.values, times1000.values) { for (a, b) in zip(x, y) { worst = max(worst, abs(a - b)) } }
        // 15 steps of size ≤ 0.02: rounding differences only.
        XCTAssertLessThan(worst, 1e-5, "loss ×1000 must not change the trajectory")
        for (a, b) in zip(base.telemetry, times1000.telemetry) {
            XCTAssertEqual(a.clippedFraction, b.clippedFraction)
        }
    }

    func testFirstStepOfAdamAtan2ByHand() throws {
        // Step 1: m̂ = g, v̂ = g², so each coordinate moves by lr·a·atan2(g, |g|) = ±lr·a·π/4.
        let store = ParameterStore()
        let t = try store.add(name: "p", shape: [5])
        let values: [Float] = [1, -2, 0.5, 3, 0]
        let grads: [Float] = [0.3, -7, 1e-15, 0, -1e10]   // (|g| < ~1e-19 makes v subnormal: fp32 precision loss)
        for i in 0..<5 { t.value[i] = values[i]; t.grad[i] = grads[i] }
        let opt = try MoClip(store: store, schedule: .constant(0.1), config: .adamAtan2)
        let telemetry = try opt.step()
        let stepSize = Float(0.1) * 1.27 * .pi / 4
        let expected: [Float] = [1 - stepSize, -2 + stepSize, 0.5 - stepSize, 3, 0 + stepSize]
        for i in 0..<5 { XCTAssertEqual(t.value[i], expected[i], accuracy: 2e-6, "coordinate \(i)") }
        XCTAssertEqual(telemetry.maxCoordinateStep, stepSize, accuracy: 1e-6)
        XCTAssertEqual(telemetry.step, 1)
        XCTAssertEqual(opt.stepCount, 1)
    }

    func testClipIsAppliedToTheGradientThatEntersTheMoments() throws {
        let store = ParameterStore()
        let t = try store.add(name: "w", shape: [64, 33])
        var rng = TestRNG(3)
        let opt = try MoClip(store: store, schedule: .constant(1e-3), config: MoClipConfig())
        let direction = (0..<t.count).map { _ in rng.symmetric() }
        for i in 0..<t.count { t.grad[i] = direction[i] }
        try opt.step()
        // Now a gradient about 150° from the momentum.
        for i in 0..<t.count { t.grad[i] = -direction[i] + 0.6 * rng.symmetric() }
        let mOld = Array(opt.core.m[0]).map(Double.init)
        let g = Array(t.grad).map(Double.init)
        let telemetry = try opt.step()
        XCTAssertEqual(telemetry.clippedFraction, 1)
        XCTAssertGreaterThan(telemetry.meanAngleBeforeClip!, .pi / 2)
        XCTAssertEqual(telemetry.meanAngleBeforeClip!, angle(g, mOld), accuracy: 1e-5)
        // Recover g' from m_new = β1·m_old + (1−β1)·g'.
        let mNew = Array(opt.core.m[0]).map(Double.init)
        let gClipped = zip(mNew, mOld).map { ($0 - 0.9 * $1) / 0.1 }
        XCTAssertEqual(angle(gClipped, mOld), .pi / 2, accuracy: 1e-4)
        XCTAssertEqual(norm(gClipped), norm(g), accuracy: 1e-4 * norm(g))
        // The gradient buffer itself is left as the model wrote it.
        XCTAssertEqual(Array(t.grad).map(Double.init), g)
    }

    func testSecondMomentSourceOption() throws {
        // After a clipped step, v has seen g' (default) or the raw g (option off).
        for fromClipped in [true, false] {
            let store = ParameterStore()
            let t = try store.add(name: "w", shape: [40])
            var config = MoClipConfig()
            config.secondMomentFromClippedGradient = fromClipped
            let opt = try MoClip(store: store, schedule: .constant(1e-3), config: config)
            for i in 0..<40 { t.grad[i] = Float(i % 7) + 1 }
            try opt.step()
            for i in 0..<40 { t.grad[i] = -t.grad[i] + (i % 2 == 0 ? 0.5 : -0.5) }
            let mOld = Array(opt.core.m[0]).map(Double.init), vOld = Array(opt.core.v[0]).map(Double.init)
            let g = Array(t.grad).map(Double.init)
            XCTAssertEqual(try opt.step().clippedFraction, 1)
            let mNew = Array(opt.core.m[0]).map(Double.init), vNew = Array(opt.core.v[0]).map(Double.init)
            for i in 0..<40 {
                let gClipped = (mNew[i] - 0.9 * mOld[i]) / 0.1
                let seen = fromClipped ? gClipped : g[i]
                XCTAssertEqual(vNew[i], 0.99 * vOld[i] + 0.01 * seen * seen, accuracy: 1e-4 * max(1, vNew[i]),
                               "v[\(i)] with secondMomentFromClippedGradient = \(fromClipped)")
            }
        }
    }

    func testWithoutBiasCorrection() throws {
        // Two equal gradients g: with correction m̂ = g, v̂ = g², atan2 = π/4; without it
        // atan2(0.19·g, √0.0199·|g|) = atan(0.19/√0.0199).
        for corrected in [true, false] {
            let store = ParameterStore()
            let t = try store.add(name: "p", shape: [1])
            var config = MoClipConfig.adamAtan2
            config.biasCorrection = corrected
            let opt = try MoClip(store: store, schedule: .constant(0.1), config: config)
            t.grad[0] = 2
            try opt.step()
            let before = t.value[0]
            try opt.step()
            let expected = corrected ? Double.pi / 4 : atan(0.19 / 0.0199.squareRoot())
            // π/4 is exact in the kernel's polynomial; other angles carry its documented error.
            let tolerance = corrected ? 1e-6 : 1e-6 + 0.1 * 1.27 * FastAtan2.updateAngleMaxError
            XCTAssertEqual(Double(before - t.value[0]), 0.1 * 1.27 * expected, accuracy: tolerance, "biasCorrection = \(corrected)")
        }
    }

    func testGlobalGranularityDecidesOnceForAllTensors() throws {
        // Tensor a: gradient opposite its momentum; tensor b: much larger and aligned. Per tensor
        // only a clips; globally the combined angle is small, so nothing clips.
        let store = ParameterStore()
        let a = try store.add(name: "a", shape: [10]), b = try store.add(name: "b", shape: [10])
        var perTensor = MoClipConfig(); perTensor.granularity = .perTensor
        var global = MoClipConfig(); global.granularity = .global
        let snapshot0 = snapshot(store)
        func drive(_ config: MoClipConfig) throws -> StepTelemetry {
            restore(store, snapshot0)
            let opt = try MoClip(store: store, schedule: .constant(0.01), config: config)
            for i in 0..<10 { a.grad[i] = 1; b.grad[i] = 10 }
            try opt.step()
            for i in 0..<10 { a.grad[i] = -1; b.grad[i] = 10 }
            return try opt.step()
        }
        let local = try drive(perTensor)
        XCTAssertEqual(local.clippedFraction, 0.5)
        XCTAssertEqual(local.meanAngleBeforeClip!, Double.pi / 2, accuracy: 1e-6)   // mean of π and 0
        let whole = try drive(global)
        XCTAssertEqual(whole.clippedFraction, 0)
        // Global angle: ⟨g,m⟩ over both tensors.
        let g = [Double](repeating: -1, count: 10) + [Double](repeating: 10, count: 10)
        let m = [Double](repeating: 0.1, count: 10) + [Double](repeating: 1, count: 10)
        XCTAssertEqual(whole.meanAngleBeforeClip!, angle(g, m), accuracy: 1e-6)
        // Flip b too: now the global angle is π and every tensor is clipped.
        restore(store, snapshot0)
        let opt = try MoClip(store: store, schedule: .constant(0.01), config: global)
        for i in 0..<10 { a.grad[i] = 1; b.grad[i] = 10 }
        try opt.step()
        for i in 0..<10 { a.grad[i] = -1; b.grad[i] = -10 }
        XCTAssertEqual(try opt.step().clippedFraction, 1)
    }

    func testMomentumRotationModeCapsMomentumTurn() throws {
        let store = ParameterStore()
        let t = try store.add(name: "w", shape: [200])
        var config = MoClipConfig()
        config.clip = .momentumRotation(maxAngle: 0.05)
        let opt = try MoClip(store: store, schedule: .constant(1e-3), config: config)
        var rng = TestRNG(11)
        for i in 0..<200 { t.grad[i] = rng.symmetric() }
        try opt.step()
        var clipped = 0
        for _ in 0..<20 {
            for i in 0..<200 { t.grad[i] = 3 * rng.symmetric() }   // unrelated gradients: would turn m a lot
            let mOld = Array(opt.core.m[0]).map(Double.init)
            let telemetry = try opt.step()
            let mNew = Array(opt.core.m[0]).map(Double.init)
            XCTAssertLessThanOrEqual(angle(mNew, mOld), 0.05 + 1e-4)
            clipped += telemetry.clippedFraction == 1 ? 1 : 0
        }
        XCTAssertGreaterThan(clipped, 10)
    }

    func testNonFiniteGradientIsRefusedBeforeAnyChange() throws {
        let store = try makeStore(mixedShapes)
        let opt = try MoClip(store: store, schedule: .constant(lr))
        writeQuadraticGradients(store, step: 1)
        try opt.step()
        let before = snapshot(store)
        let mBefore = opt.core.m.map { Array($0) }
        writeQuadraticGradients(store, step: 2)
        store["b1"]!.grad[3] = .nan
        assertThrowsMessage(try opt.step(), "gradient of tensor 'b1' contains NaN")
        XCTAssertTrue(bitsEqual(before, snapshot(store)))
        XCTAssertTrue(bitsEqual(mBefore, opt.core.m.map { Array($0) }))
        XCTAssertEqual(opt.stepCount, 1)
        store["b1"]!.grad[3] = .infinity
        assertThrowsMessage(try opt.step(), "'b1'")
    }

    func testTelemetryOnFirstStepAndZeroGrad() throws {
        let store = try makeStore(mixedShapes)
        let opt = try MoClip(store: store, schedule: .warmupCosine(peak: 0.01, warmupSteps: 4, totalSteps: 10, minimum: 0))
        writeQuadraticGradients(store, step: 1)
        let first = try opt.step()
        XCTAssertNil(first.meanAngleBeforeClip, "no momentum yet: angle undefined")
        XCTAssertEqual(first.clippedFraction, 0)
        XCTAssertEqual(first.learningRate, 0.0025, accuracy: 1e-9)
        opt.zeroGrad()
        XCTAssertTrue(store.tensors.allSatisfy { $0.grad.allSatisfy { $0 == 0 } })
        let before = snapshot(store)
        let second = try opt.step()   // zero gradient: no angle, moments decay, parameters still move on m
        XCTAssertNil(second.meanAngleBeforeClip)
        XCTAssertFalse(bitsEqual(before, snapshot(store)))
    }

    func testInvalidConfigurationsAreRefused() throws {
        let store = try makeStore(mixedShapes)
        var c = MoClipConfig(); c.clip = .gradientMomentumAngle(maxAngle: 4)
        assertThrowsMessage(try MoClip(store: store, schedule: .constant(lr), config: c), "within [0, π]")
        c = MoClipConfig(); c.clip = .momentumRotation(maxAngle: 2)
        assertThrowsMessage(try MoClip(store: store, schedule: .constant(lr), config: c), "within [0, π/2]")
        c = MoClipConfig(); c.beta1 = 1
        assertThrowsMessage(try MoClip(store: store, schedule: .constant(lr), config: c), "beta1 = 1.0")
        c = MoClipConfig(); c.a = 0
        assertThrowsMessage(try MoClip(store: store, schedule: .constant(lr), config: c), "a = 0.0")
        assertThrowsMessage(try MoClip(store: ParameterStore(), schedule: .constant(lr)), "no tensors")
        assertThrowsMessage(try MoClip(store: store, schedule: .constant(-1)), "constant learning rate -1.0")
    }
}
