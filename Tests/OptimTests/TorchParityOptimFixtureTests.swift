import Foundation
import Parameters
import XCTest
@testable import Optim

/// Writes the optimizer half of the PyTorch parity fixture (clients/python/tests/test_torch_parity.py):
/// several MoClip configurations, Adam-atan2 and AdamW, each run for a few steps on small tensors
/// (lengths that are not multiples of 8) from given gradients — among them steps whose gradient
/// opposes the momentum (the clip applies), one exactly anti-parallel to it (the degenerate case)
/// and one zero gradient. Per step: the gradients, the scheduled learning rate, and afterwards the
/// parameters, both moments and the telemetry.
///
/// The JSON goes to `$LOGITD_PARITY_OPTIM_FIXTURE` when set, else to a temporary file that is
/// removed again. Floats are written as the exact Double of the Float.
final class TorchParityOptimFixtureTests: XCTestCase {
    let shapes: [(String, [Int])] = [("w", [5, 7]), ("b", [7]), ("s", [1]), ("m", [3, 11])]
    /// What `LRSchedule.training(peak: 0.02, warmup: 2, steps: 7)` (Sources/Training) builds.
    let schedule = LRSchedule.warmupCosine(peak: 0.02, warmupSteps: 2, totalSteps: 7, minimum: Float(0.02) / 10)
    let steps = 7

    func floats(_ a: UnsafeMutableBufferPointer<Float>) -> [Double] { a.map(Double.init) }

    /// Gradients of step s (1-based): a fixed direction times a sign/scale pattern plus noise, so the
    /// momentum is sometimes followed and sometimes opposed; step 5 is exactly −2·m (anti-parallel)
    /// for the first tensor and zero for the last.
    func writeGradients(_ opt: CoreBackedOptimizer, step s: Int) {
        let factors: [Float] = [1, -1, 0.5, -2, 1, 3, -0.7]
        for (k, t) in opt.tensors.enumerated() {
            var rng = TestRNG(UInt64(1000 * s + k))
            var base = TestRNG(UInt64(77 + k))
            for i in 0..<t.count {
                t.grad[i] = factors[s - 1] * base.symmetric() + 0.3 * rng.symmetric()
            }
            if s == 5 && k == 0 { for i in 0..<t.count { t.grad[i] = -2 * opt.core.m[k][i] } }
            if s == 5 && k == opt.tensors.count - 1 { for i in 0..<t.count { t.grad[i] = 0 } }
        }
    }

    func run(name: String, make: (ParameterStore) throws -> CoreBackedOptimizer & Optimizer,
             config: [String: Any]) throws -> [String: Any] {
        let store = try makeStore(shapes, seed: 5)
        let opt = try make(store)
        let initial = opt.tensors.map { floats($0.value) }
        var records: [[String: Any]] = []
        for s in 1...steps {
            writeGradients(opt, step: s)
            let grads = opt.tensors.map { floats($0.grad) }
            let telemetry = try opt.step()
            records.append([
                "grads": grads, "lr": Double(schedule.learningRate(atStep: s)),
                "values": opt.tensors.map { floats($0.value) },
                "m": opt.core.m.map(floats), "v": opt.core.v.map(floats),
                "clippedFraction": telemetry.clippedFraction,
                "meanAngle": telemetry.meanAngleBeforeClip.map { $0 as Any } ?? NSNull(),
                "maxCoordinateStep": Double(telemetry.maxCoordinateStep),
            ])
        }
        let groups = opt.core.groups.map { g in
            ["name": g.name, "tensors": g.tensorNames, "weightDecay": Double(g.weightDecay), "lrScale": Double(g.lrScale)] as [String: Any]
        }
        return ["name": name, "config": config, "groups": groups, "tensors": shapes.map { ["name": $0.0, "shape": $0.1] as [String: Any] },
                "initial": initial, "steps": records]
    }

    func moclip(_ name: String, _ edit: (inout MoClipConfig) -> Void, extra: [String: Any]) throws -> [String: Any] {
        var config = MoClipConfig()
        edit(&config)
        var described: [String: Any] = ["optimizer": "moclip", "beta1": Double(config.beta1), "beta2": Double(config.beta2),
                                        "a": Double(config.a), "b": Double(config.b),
                                        "secondMomentFromClippedGradient": config.secondMomentFromClippedGradient,
                                        "biasCorrection": config.biasCorrection,
                                        "granularity": config.granularity == .global ? "global" : "tensor"]
        switch config.clip {
        case .off: described["clip"] = "off"
        case .gradientMomentumAngle(let angle): described["clip"] = "angle"; described["maxAngle"] = angle
        case .momentumRotation(let angle): described["clip"] = "momentum"; described["maxAngle"] = angle
        }
        for (k, v) in extra { described[k] = v }
        let schedule = self.schedule
        return try run(name: name, make: { store in
            try MoClip(store: store, groups: ParameterGroup.decayMatricesOnly(store, weightDecay: 0.1), schedule: schedule,
                       config: config)
        }, config: described)
    }

    /// `FastAtan2.atan2OverSquareRoot` on random and special (y, w), as bit patterns.
    func atan2Table() -> [String: Any] {
        var y: [Float] = [0, -0.0, 1e-30, -3, .greatestFiniteMagnitude, 0, 2, -1e-20, 1e38, 1e-40, -1e38,
                          .leastNonzeroMagnitude, 3e38, 1e-30, -1e30, 1, 0.3, -7]
        var w: [Float] = [0, 0, 1e-30, .infinity, 1, .infinity, 4, 0x1p-133, 1e-30, 1, 1e-38, 1e30,
                          .leastNormalMagnitude, 3e38, 0, .greatestFiniteMagnitude, 0.09, 49]
        var rng = TestRNG(21)
        for _ in 0..<4000 {
            y.append(Float(exp((rng.unit() - 0.5) * 80)) * (rng.unit() < 0.5 ? -1 : 1))
            w.append(Float(exp((rng.unit() - 0.5) * 160)))
        }
        for i in 0...400 { y.append(Float(i) / 40); w.append(1) }
        var out: [UInt32] = []
        var i = 0
        while i < y.count {
            let n = min(8, y.count - i)
            var vy = SIMD8<Float>(repeating: 0), vw = SIMD8<Float>(repeating: 0)
            for k in 0..<n { vy[k] = y[i + k]; vw[k] = w[i + k] }
            let v = FastAtan2.atan2OverSquareRoot(vy, vw)
            for k in 0..<n { out.append(v[k].bitPattern) }
            i += 8
        }
        return ["y": y.map { Int($0.bitPattern) }, "w": w.map { Int($0.bitPattern) }, "out": out.map(Int.init)]
    }

    func testWriteFixture() throws {
        let env = ProcessInfo.processInfo.environment["LOGITD_PARITY_OPTIM_FIXTURE"]
        let path = env ?? NSTemporaryDirectory() + "logitd-parity-optim-\(UUID().uuidString).json"
        defer { if env == nil { try? FileManager.default.removeItem(atPath: path) } }
        var runs: [[String: Any]] = []
        runs.append(try moclip("moclip default", { _ in }, extra: [:]))
        runs.append(try moclip("moclip pi/4", { $0.clip = .gradientMomentumAngle(maxAngle: .pi / 4) }, extra: [:]))
        runs.append(try moclip("moclip 0", { $0.clip = .gradientMomentumAngle(maxAngle: 0) }, extra: [:]))
        runs.append(try moclip("moclip global", { $0.granularity = .global }, extra: [:]))
        runs.append(try moclip("moclip raw v", { $0.secondMomentFromClippedGradient = false; $0.clip = .gradientMomentumAngle(maxAngle: 1.0) }, extra: [:]))
        runs.append(try moclip("moclip momentum rotation", { $0.clip = .momentumRotation(maxAngle: .pi / 16) }, extra: [:]))
        runs.append(try moclip("moclip no bias correction, a b beta", {
            $0.biasCorrection = false; $0.a = 1; $0.b = 2; $0.beta1 = 0.8; $0.beta2 = 0.95
        }, extra: [:]))
        runs.append(try moclip("adam-atan2", { $0 = .adamAtan2 }, extra: [:]))
        let schedule = self.schedule
        runs.append(try run(name: "adamw", make: { store in
            try AdamW(store: store, groups: ParameterGroup.decayMatricesOnly(store, weightDecay: 0.1), schedule: schedule)
        }, config: ["optimizer": "adamw", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8] as [String: Any]))
        // The clip must actually have happened (and not everywhere) for the fixture to test it.
        let fractions = (runs[0]["steps"] as! [[String: Any]]).map { $0["clippedFraction"] as! Double }
        XCTAssertTrue(fractions.contains { $0 > 0 } && fractions.contains { $0 < 1 }, "\(fractions)")
        let schedulePlan: [String: Any] = ["peak": 0.02, "warmupSteps": 2, "totalSteps": 7, "minimum": Double(Float(0.02) / 10)]
        let fixture: [String: Any] = ["version": 1, "schedule": schedulePlan, "runs": runs, "atan2": atan2Table()]
        let data = try JSONSerialization.data(withJSONObject: fixture, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))))
    }
}
