import Foundation
import Parameters
import XCTest
@testable import Optim

final class ScheduleAndGroupTests: XCTestCase {
    func testWarmupCosineValues() throws {
        let s = LRSchedule.warmupCosine(peak: 1, warmupSteps: 10, totalSteps: 110, minimum: 0.1)
        try s.validate()
        XCTAssertEqual(s.learningRate(atStep: 1), 0.1, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(atStep: 5), 0.5, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(atStep: 10), 1, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(atStep: 60), 0.55, accuracy: 1e-6)            // half way: min + (peak−min)/2
        XCTAssertEqual(s.learningRate(atStep: 35), Float(0.1 + 0.9 * 0.5 * (1 + cos(Double.pi / 4))), accuracy: 1e-6)
        XCTAssertEqual(s.learningRate(atStep: 110), 0.1, accuracy: 1e-7)
        XCTAssertEqual(s.learningRate(atStep: 5000), 0.1, accuracy: 1e-7)
        var previous: Float = .infinity
        for t in 10...110 {
            XCTAssertLessThanOrEqual(s.learningRate(atStep: t), previous, "non-increasing after warmup (step \(t))")
            previous = s.learningRate(atStep: t)
        }
        XCTAssertEqual(LRSchedule.constant(0.3).learningRate(atStep: 77), 0.3)
        // No warmup: step 1 is already on the cosine.
        let noWarmup = LRSchedule.warmupCosine(peak: 2, warmupSteps: 0, totalSteps: 4, minimum: 0)
        XCTAssertEqual(noWarmup.learningRate(atStep: 2), 1, accuracy: 1e-6)
    }

    func testScheduleValidation() {
        assertThrowsMessage(try LRSchedule.warmupCosine(peak: 1, warmupSteps: 10, totalSteps: 10, minimum: 0).validate(), "expected > warmupSteps 10")
        assertThrowsMessage(try LRSchedule.warmupCosine(peak: 1, warmupSteps: -1, totalSteps: 10, minimum: 0).validate(), "warmupSteps -1")
        assertThrowsMessage(try LRSchedule.warmupCosine(peak: 1, warmupSteps: 1, totalSteps: 10, minimum: 2).validate(), "≤ peak")
        assertThrowsMessage(try LRSchedule.constant(.nan).validate(), "expected finite")
    }

    func testOptimizerFollowsTheSchedule() throws {
        let store = try makeStore([("p", [3])])
        let schedule = LRSchedule.warmupCosine(peak: 0.1, warmupSteps: 2, totalSteps: 6, minimum: 0.01)
        let opt = try AdamW(store: store, schedule: schedule)
        for t in 1...8 {
            XCTAssertEqual(try opt.step().learningRate, schedule.learningRate(atStep: t))
        }
    }

    /// Zero gradients isolate weight decay: matrices shrink by exactly (1 − lr·λ), vectors not at all.
    func testNoWeightDecayOnVectors() throws {
        for make in [{ (s: ParameterStore, g: [ParameterGroup]) -> any Optimizer in try MoClip(store: s, groups: g, schedule: .constant(0.1)) },
                     { (s: ParameterStore, g: [ParameterGroup]) -> any Optimizer in try AdamW(store: s, groups: g, schedule: .constant(0.1)) }] {
            let store = try makeStore([("w", [4, 6]), ("b", [6]), ("ln.g", [6])])
            let groups = ParameterGroup.decayMatricesOnly(store, weightDecay: 0.5)
            XCTAssertEqual(groups.map(\.name), ["decay", "no_decay"])
            XCTAssertEqual(groups[1].tensorNames, ["b", "ln.g"])
            let opt = try make(store, groups)
            let before = snapshot(store)
            try opt.step()
            for i in 0..<24 { XCTAssertEqual(store["w"]!.value[i], before[0][i] * (1 - Float(0.1) * 0.5)) }
            XCTAssertEqual(Array(store["b"]!.value), before[1])
            XCTAssertEqual(Array(store["ln.g"]!.value), before[2])
        }
    }

    func testLrScalePerGroup() throws {
        let store = try makeStore([("fast", [5]), ("slow", [5])])
        for t in store.tensors { for i in 0..<5 { t.grad[i] = 1 } }
        let groups = [ParameterGroup(name: "fast", tensorNames: ["fast"]),
                      ParameterGroup(name: "slow", tensorNames: ["slow"], lrScale: 0.25)]
        let before = snapshot(store)
        try MoClip(store: store, groups: groups, schedule: .constant(0.1), config: .adamAtan2).step()
        let fastStep = before[0][0] - store["fast"]!.value[0], slowStep = before[1][0] - store["slow"]!.value[0]
        XCTAssertEqual(slowStep / fastStep, 0.25, accuracy: 1e-5)
    }

    func testGroupsMustCoverEveryTensorExactlyOnce() throws {
        let store = try makeStore([("a", [2]), ("b", [2, 2])])
        let schedule = LRSchedule.constant(0.01)
        assertThrowsMessage(try AdamW(store: store, groups: [ParameterGroup(name: "g", tensorNames: ["a"])], schedule: schedule),
                            "tensor 'b' is in no parameter group")
        assertThrowsMessage(try AdamW(store: store, groups: [ParameterGroup(name: "g", tensorNames: ["a", "b"]),
                                                            ParameterGroup(name: "h", tensorNames: ["b"])], schedule: schedule),
                            "tensor 'b' is in both group 'g' and group 'h'")
        assertThrowsMessage(try AdamW(store: store, groups: [ParameterGroup(name: "g", tensorNames: ["a", "b", "c"])], schedule: schedule),
                            "names tensor 'c', which is not in the parameter store")
        assertThrowsMessage(try AdamW(store: store, groups: [], schedule: schedule), "no parameter groups")
        assertThrowsMessage(try AdamW(store: store, groups: [ParameterGroup(name: "g", tensorNames: ["a", "b"], weightDecay: 200)],
                                      schedule: .constant(0.01)), "expected < 1")
        assertThrowsMessage(try AdamW(store: store, groups: [ParameterGroup(name: "g", tensorNames: ["a", "b"], weightDecay: -1)],
                                      schedule: schedule), "weight decay -1.0")
    }

    func testParameterStoreValidation() throws {
        let store = ParameterStore()
        let t = try store.add(name: "x", shape: [3, 4])
        XCTAssertEqual(t.count, 12); XCTAssertEqual(t.rank, 2)
        XCTAssertEqual(Int(bitPattern: t.value.baseAddress!) % 64, 0, "64-byte aligned")
        XCTAssertTrue(t.value.allSatisfy { $0 == 0 } && t.grad.allSatisfy { $0 == 0 })
        assertThrowsMessage(try store.add(name: "x", shape: [1]), "already registered")
        assertThrowsMessage(try store.add(name: "", shape: [1]), "name is empty")
        assertThrowsMessage(try store.add(name: "z", shape: []), "rank 0")
        assertThrowsMessage(try store.add(name: "z", shape: [3, 0]), "dimension 1 is 0")
        assertThrowsMessage(try store.add(name: "z", shape: [-2]), "dimension 0 is -2")
        assertThrowsMessage(try store.add(name: "z", shape: [1 << 30, 1 << 30, 4]), "more than")
        assertThrowsMessage(try store.add(name: String(repeating: "n", count: 2000), shape: [1]), "UTF-8 bytes")
        XCTAssertEqual(store.tensors.map(\.name), ["x"])
        XCTAssertEqual(store.parameterCount, 12)
        t.grad[5] = 3
        store.zeroGrad()
        XCTAssertEqual(t.grad[5], 0)
    }
}
