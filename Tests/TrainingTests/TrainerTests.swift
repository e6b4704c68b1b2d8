import Foundation
import LogitCore
import Optim
import Losses
import TinyLM
import XCTest
@testable import Training

/// The training step and loop on a real (toy) TinyLM model.
final class TrainerTests: XCTestCase {
    static let vocab = 300

    func toyModel(seed: UInt64 = 3) throws -> TinyLMModel {
        try TinyLMModel(config: TinyLMConfig.preset("toy", vocabSize: Self.vocab, maxSequenceLength: 64), seed: seed)
    }

    /// A deterministic "text": a repeating pattern the model can learn.
    func stream(_ n: Int) -> [UInt32] { (0..<n).map { UInt32(($0 * 7 + $0 / 13) % Self.vocab) } }

    func testFullAndRestrictedStepsLowerTheLoss() throws {
        let tokens = stream(400)
        let batch = TokenBatch()
        batch.fill(tokens: tokens, starts: [0, 100, 200, 300], length: 32)
        // Full softmax + AdamW.
        let full = try toyModel()
        let trainer = Trainer(model: full, loss: FullSoftmaxLoss(),
                              optimizer: try OptimizerChoice.adamw.make(store: full.store, schedule: .constant(3e-3), weightDecay: 0), gradClip: 1)
        var losses: [Double] = []
        for _ in 0..<40 { losses.append(try batch.withCandidateBatch { try trainer.step(inputs: batch.inputs, rowOffsets: batch.rowOffsets, batch: $0) }.loss.loss) }
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "full CE + AdamW did not learn a repeated batch: \(losses)")

        // Restricted softmax + MoClip over sets {gold, two others}.
        let model = try toyModel()
        var offsets: [UInt32] = [0], ids: [UInt32] = [], lps: [Float] = []
        for g in batch.targets {
            ids += [g, (g + 1) % UInt32(Self.vocab), (g + 2) % UInt32(Self.vocab)]
            lps += [-0.1, -2.5, -3.5]
            offsets.append(UInt32(ids.count))
        }
        let restricted = Trainer(model: model, loss: RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 1),
                                 optimizer: try OptimizerChoice.moclip.make(store: model.store, schedule: .constant(3e-3), weightDecay: 0), gradClip: 0)
        var rLosses: [Double] = []
        for _ in 0..<40 {
            let r = try offsets.withUnsafeBufferPointer { so in
                try ids.withUnsafeBufferPointer { id in
                    try lps.withUnsafeBufferPointer { lp in
                        try batch.targets.withUnsafeBufferPointer { g in
                            try batch.mask.withUnsafeBufferPointer { m in
                                try restricted.step(inputs: batch.inputs, rowOffsets: batch.rowOffsets,
                                                    batch: CandidateBatch(setOffsets: so, ids: id, logprobs: lp, gold: g, mask: m))
                            }
                        }
                    }
                }
            }
            rLosses.append(r.loss.loss)
        }
        XCTAssertLessThan(rLosses.last!, 0.7 * rLosses.first!, "restricted + MoClip did not learn: \(rLosses)")
    }

    func testNonFiniteWeightsStopTheRunWithoutAnUpdate() throws {
        let model = try toyModel()
        let optimizer = try OptimizerChoice.adamw.make(store: model.store, schedule: .constant(1e-3), weightDecay: 0)
        let trainer = Trainer(model: model, loss: FullSoftmaxLoss(), optimizer: optimizer, gradClip: 1)
        model.embedding.value[5] = .nan
        let batch = TokenBatch()
        batch.fill(tokens: stream(100), starts: [0], length: 16)
        XCTAssertThrowsError(try batch.withCandidateBatch { try trainer.step(inputs: batch.inputs, rowOffsets: batch.rowOffsets, batch: $0) }) { error in
            guard case TrainingError.diverged(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("step 1"), message)
        }
        XCTAssertEqual(optimizer.stepCount, 0, "a diverged step must not update the weights")
    }

    /// Perplexity from the evaluator and cross-entropy from the full-softmax loss are two
    /// implementations of one quantity: they must agree.
    func testEvaluationAgreesWithTheFullSoftmaxLoss() throws {
        let model = try toyModel()
        let tokens = stream(129)
        let result = try Evaluation.score(model: model, tokens: tokens, length: 32, rows: 2)
        XCTAssertEqual(result.tokens, 128)
        let batch = TokenBatch()
        batch.fill(tokens: tokens, starts: [0, 32, 64, 96], length: 32)
        let trainer = Trainer(model: model, loss: FullSoftmaxLoss(),
                              optimizer: try OptimizerChoice.adamw.make(store: model.store, schedule: .constant(0), weightDecay: 0), gradClip: 0)
        let ce = try batch.withCandidateBatch { try trainer.forwardBackward(inputs: batch.inputs, rowOffsets: batch.rowOffsets, batch: $0) }.crossEntropy
        XCTAssertEqual(result.crossEntropy, ce, accuracy: 1e-4)
        XCTAssertEqual(result.perplexity, exp(result.crossEntropy), accuracy: 1e-6)
        XCTAssertThrowsError(try Evaluation.score(model: model, tokens: [1, 2, UInt32(Self.vocab)], length: 8)) {
            XCTAssertTrue("\($0)".contains("outside the model's vocabulary"), "\($0)")
        }
        XCTAssertNil(result.klToBase)
    }

    /// Top-1 and KL(base ‖ model) against a direct computation in Double from the logits of
    /// both models; a model's KL to itself is 0.
    func testTopOneAndKLToBaseAgainstADirectComputation() throws {
        let model = try toyModel(seed: 3), base = try toyModel(seed: 4)
        let tokens = stream(97)
        let scored = try Evaluation.score(model: model, base: base, tokens: tokens, length: 32, rows: 2)
        XCTAssertEqual(scored.tokens, 96)
        var kl = 0.0, hits = 0
        for start in stride(from: 0, to: 96, by: 32) {
            let window = Array(tokens[start..<(start + 32)])
            func logProbs(_ m: TinyLMModel) throws -> [[Double]] {
                let h = try window.withUnsafeBufferPointer { t in try [Int32(0), 32].withUnsafeBufferPointer { try m.forward(tokens: t, rowOffsets: $0) } }
                let z = m.logits(hidden: h, count: 32)
                return (0..<32).map { i in
                    let row = z[(i * Self.vocab)..<((i + 1) * Self.vocab)].map(Double.init)
                    let mx = row.max()!, lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
                    return row.map { $0 - lse }
                }
            }
            let lm = try logProbs(model), lb = try logProbs(base)
            for i in 0..<32 {
                if lm[i].indices.max(by: { lm[i][$0] < lm[i][$1] }) == Int(tokens[start + i + 1]) { hits += 1 }
                kl += zip(lb[i], lm[i]).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
            }
        }
        XCTAssertEqual(scored.top1, Double(hits) / 96, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(scored.klToBase), kl / 96, accuracy: 1e-4)
        XCTAssertGreaterThan(kl / 96, 0.01, "two differently seeded models must differ")
        let same = try Evaluation.score(model: model, base: try toyModel(seed: 3), tokens: tokens, length: 32)
        XCTAssertEqual(try XCTUnwrap(same.klToBase), 0, accuracy: 1e-6)
        XCTAssertEqual(same.crossEntropy, scored.crossEntropy, accuracy: 1e-9)
    }

    /// A run interrupted after a checkpoint and resumed ends bit-identical to one that never
    /// stopped: the schedule, the batches and the optimizer moments all continue exactly.
    func testResumedRunEndsBitIdenticalToAnUninterruptedOne() throws {
        let tokens = stream(2000)
        let tokenizer = try ByteLevelBPE.train(corpus: [try String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)],
                                               vocabSize: Self.vocab)
        func loop(_ run: String, model: TinyLMModel, optimizer: any Optimizer, state: TrainerState) throws -> TrainingLoop {
            let trainer = Trainer(model: model, loss: FullSoftmaxLoss(), optimizer: optimizer, gradClip: 1)
            return try TrainingLoop(run: run, trainer: trainer, tokenizer: tokenizer, state: state, settings: .init(
                totalSteps: 8, evalEvery: 0, checkpointEvery: 4, evalLength: 16, evalTokens: 64, label: "test"),
                evals: [(name: "heldout", tokens: Array(tokens[1800...]))])
        }
        let sampler = try WindowSampler(tokenCount: 1800, length: 16, batchSize: 3, seed: 9)
        func body(_ l: TrainingLoop, failAt: Int? = nil) -> (Int) throws -> TrainingLoop.StepOutcome {
            let batch = TokenBatch()
            return { step in
                if step == failAt { throw TrainingError.io("simulated crash at step \(step)") }
                batch.fill(tokens: tokens, starts: sampler.starts(step: step), length: 16)
                let r = try batch.withCandidateBatch { try l.trainer.step(inputs: batch.inputs, rowOffsets: batch.rowOffsets, batch: $0) }
                return .init(result: r, positions: batch.positions)
            }
        }
        func schedule() -> LRSchedule { .warmupCosine(peak: 3e-3, warmupSteps: 2, totalSteps: 8, minimum: 3e-4) }
        let root = NSTemporaryDirectory() + "resume-\(UUID().uuidString)"
        let straight = root + "/straight", broken = root + "/broken"
        for dir in [straight, broken] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fresh = TrainerState(phase: "pretrain", step: 0, totalSteps: 8, tokensSeen: 0, elapsedSeconds: 0)

        let m1 = try toyModel()
        let l1 = try loop(straight, model: m1, optimizer: try OptimizerChoice.adamw.make(store: m1.store, schedule: schedule(), weightDecay: 0.1), state: fresh)
        try l1.run(body(l1))

        let m2 = try toyModel()
        let l2 = try loop(broken, model: m2, optimizer: try OptimizerChoice.adamw.make(store: m2.store, schedule: schedule(), weightDecay: 0.1), state: fresh)
        XCTAssertThrowsError(try l2.run(body(l2, failAt: 6)))
        let checkpoint = RunCheckpoint.path(inRun: broken)
        let (m3, _, metadata) = try RunCheckpoint.loadModel(checkpoint)
        XCTAssertEqual(metadata["step"], "4")
        let o3 = try OptimizerChoice.adamw.make(store: m3.store, schedule: schedule(), weightDecay: 0.1)
        let resumed = try RunCheckpoint.loadTrainingState(checkpoint, into: o3)
        XCTAssertEqual(resumed.step, 4)
        let l3 = try loop(broken, model: m3, optimizer: o3, state: resumed)
        try l3.run(body(l3))

        let a = try RunCheckpoint.loadModel(RunCheckpoint.path(inRun: straight)).model, b = try RunCheckpoint.loadModel(checkpoint).model
        for (x, y) in zip(a.store.tensors, b.store.tensors) {
            XCTAssertTrue(x.value.elementsEqual(y.value), "tensor \(x.name) of the resumed run differs from the uninterrupted run's")
        }
        XCTAssertEqual(l3.state.tokensSeen, l1.state.tokensSeen)
        let trainLines = try MetricsLog.read(path: broken + "/metrics.jsonl").filter { $0.kind == .train }
        XCTAssertEqual(trainLines.map(\.step), [1, 2, 3, 4, 5, 6, 7, 8],
                       "the interrupted attempt's lines after its checkpoint are dropped, so each step is logged once")
        let svg = try String(contentsOfFile: broken + "/loss.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("heldout CE"))
    }
}
