import Foundation
import Optim
import Replay
import Losses
import TinyLM

/// The loop both training commands share: steps, metrics lines, progress, periodic held-out
/// perplexity, checkpoints, and the loss plot at the end. The batch source is the caller's
/// (random windows of a corpus, or the replay loader).
public final class TrainingLoop {
    public struct Settings: Sendable {
        public var totalSteps: Int
        public var evalEvery: Int
        public var checkpointEvery: Int
        public var evalLength: Int
        public var evalTokens: Int
        public var label: String
        /// Score the held-out streams before the first step (off when the caller already has the
        /// starting model's figures, e.g. the base model's, and wants to save the time).
        public var evalAtStart: Bool
        public init(totalSteps: Int, evalEvery: Int, checkpointEvery: Int, evalLength: Int, evalTokens: Int, label: String,
                    evalAtStart: Bool = true) {
            self.evalAtStart = evalAtStart
            self.totalSteps = totalSteps
            self.evalEvery = evalEvery
            self.checkpointEvery = checkpointEvery
            self.evalLength = evalLength
            self.evalTokens = evalTokens
            self.label = label
        }
    }

    /// What one step of the caller did.
    public struct StepOutcome {
        public var result: Trainer.Result
        public var positions: Int
        public var replay: ReplayState?
        public init(result: Trainer.Result, positions: Int, replay: ReplayState? = nil) {
            self.result = result
            self.positions = positions
            self.replay = replay
        }
    }

    public let run: String
    public let trainer: Trainer
    public let tokenizer: ByteLevelBPE
    public let settings: Settings
    /// Held-out streams scored every `evalEvery` steps and at the end, by name.
    public let evals: [(name: String, tokens: [UInt32])]
    /// The model KL(base ‖ model) is measured against at every evaluation (nil: not measured),
    /// on the streams named in `baseEvals` (nil: all of them).
    public let base: TinyLMModel?
    public let baseEvals: Set<String>?
    public private(set) var state: TrainerState
    let metrics: MetricsLog

    public init(run: String, trainer: Trainer, tokenizer: ByteLevelBPE, state: TrainerState, settings: Settings,
                evals: [(name: String, tokens: [UInt32])], base: TinyLMModel? = nil, baseEvals: Set<String>? = nil) throws {
        self.run = run
        self.trainer = trainer
        self.tokenizer = tokenizer
        self.state = state
        self.settings = settings
        self.evals = evals
        self.base = base
        self.baseEvals = baseEvals
        metrics = try MetricsLog(path: run + "/metrics.jsonl", keepingStepsThrough: state.step)
    }

    /// Runs from `state.step` to `settings.totalSteps`, calling `step(s)` for each 1-based step.
    public func run(_ step: (Int) throws -> StepOutcome) throws {
        var progress = ProgressDisplay(total: settings.totalSteps, label: settings.label)
        let resumedAt = state.step
        if resumedAt >= settings.totalSteps {
            progress.log("\(run) already finished its \(settings.totalSteps) steps; nothing to do")
            return
        }
        if resumedAt > 0 { progress.log("resuming at step \(resumedAt) of \(settings.totalSteps)") }
        if resumedAt == 0, settings.evalAtStart { try evaluate(progress) }
        var clock = Date()
        var windowTokens = 0
        var rate: Double?
        while state.step < settings.totalSteps {
            let s = state.step + 1
            let started = Date()
            let outcome = try step(s)
            let seconds = Date().timeIntervalSince(started)
            state.step = s
            state.tokensSeen += outcome.positions
            state.elapsedSeconds += seconds
            if let r = outcome.replay { state.replay = r }
            windowTokens += outcome.positions
            let sinceClock = Date().timeIntervalSince(clock)
            if sinceClock >= 2 || rate == nil {
                rate = Double(windowTokens) / max(sinceClock, 1e-9)
                clock = Date()
                windowTokens = 0
            }
            let r = outcome.result
            var line = MetricsLine(kind: .train, step: s, phase: state.phase)
            line.loss = r.loss.loss
            line.ce = r.loss.crossEntropy
            if r.loss.distillation != 0 { line.kd = r.loss.distillation }
            line.lr = Double(r.telemetry.learningRate)
            line.gradNorm = r.gradNorm
            line.tokens = state.tokensSeen
            line.stepSeconds = seconds
            line.elapsedSeconds = state.elapsedSeconds
            line.clippedFraction = r.telemetry.clippedFraction
            try metrics.append(line)
            progress.update(done: s, fields: String(format: "loss %.4f", r.loss.loss), rate: rate)
            if settings.evalEvery > 0, s % settings.evalEvery == 0, s < settings.totalSteps { try evaluate(progress) }
            if settings.checkpointEvery > 0, s % settings.checkpointEvery == 0, s < settings.totalSteps { try checkpoint() }
        }
        progress.finish()
        try evaluate(progress)
        try checkpoint()
        try plot()
    }

    func evaluate(_ progress: ProgressDisplay) throws {
        for e in evals {
            let klBase = baseEvals.map { $0.contains(e.name) } ?? true ? base : nil
            let result = try Evaluation.score(model: trainer.model, base: klBase, tokens: e.tokens, length: settings.evalLength,
                                              maxTokens: settings.evalTokens)
            var line = MetricsLine(kind: .eval, step: state.step, phase: state.phase)
            line.name = e.name
            line.ce = result.crossEntropy
            line.ppl = result.perplexity
            line.top1 = result.top1
            line.evalTokens = result.tokens
            line.klToBase = result.klToBase
            try metrics.append(line)
            let kl = result.klToBase.map { String(format: ", KL to base %.4f", $0) } ?? ""
            progress.log(String(format: "step %d  %@ perplexity %.2f, top-1 %.3f%@ (%d tokens)", state.step, e.name,
                                result.perplexity, result.top1, kl, result.tokens))
        }
    }

    public func checkpoint() throws {
        try metrics.sync()
        try RunCheckpoint.save(to: RunCheckpoint.path(inRun: run), model: trainer.model, tokenizer: tokenizer,
                               optimizer: trainer.optimizer, state: state)
    }

    /// `loss.svg`: the training loss (smoothed over 20 steps) and every held-out cross-entropy.
    public func plot() throws {
        let rows = try MetricsLog.read(path: run + "/metrics.jsonl")
        var train: [(x: Double, y: Double)] = []
        var window: [Double] = []
        for row in rows where row.kind == .train {
            guard let l = row.loss else { continue }
            let s = row.step
            window.append(l)
            if window.count > 20 { window.removeFirst() }
            train.append((Double(s), window.reduce(0, +) / Double(window.count)))
        }
        var series = [LossPlot.Series(name: "train loss", points: train)]
        for e in evals {
            let points = rows.compactMap { row -> (x: Double, y: Double)? in
                guard row.kind == .eval, row.name == e.name, let ce = row.ce else { return nil }
                return (Double(row.step), ce)
            }
            series.append(LossPlot.Series(name: "\(e.name) CE", points: points))
        }
        try LossPlot(title: "\(settings.label): loss", xLabel: "step", yLabel: "nats / token", series: series)
            .write(to: run + "/loss.svg")
    }
}
