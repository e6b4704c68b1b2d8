import Optim
import Losses
import Parameters
import TinyLM

/// What a trainer step optimizes with: the recipe's LM-head loss and optimizer.
public enum OptimizerChoice: String, Sendable, CaseIterable, Codable {
    case moclip, adamw, adamAtan2 = "adam-atan2"
}

/// `restricted`: the paper's softmax over each stored set S. `tail`: S ∪ {tail}, the outside
/// held down by sampled negatives (`SampledTailLoss`). `full`: the whole vocabulary.
public enum LossChoice: String, Sendable, CaseIterable, Codable {
    case restricted, tail, full
}

/// One optimizer step: forward → fused LM head + loss (into the tied embedding's gradient) →
/// backward → optional global-norm gradient clip → optimizer. Owns the ∂loss/∂H buffer so
/// steps allocate nothing once shapes settle.
public final class Trainer {
    public let model: TinyLMModel
    public let loss: any LMHeadLoss
    public let optimizer: any Optimizer
    /// Global L2 norm the gradients are scaled down to before the update; 0 turns it off.
    public let gradClip: Float
    private var dHidden: [Float] = []

    public init(model: TinyLMModel, loss: any LMHeadLoss, optimizer: any Optimizer, gradClip: Float) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.gradClip = gradClip
    }

    public struct Result: Sendable {
        public var loss: LossResult
        public var telemetry: StepTelemetry
        /// Global gradient norm before clipping.
        public var gradNorm: Double
    }

    /// Trains on one packed batch. Throws `TrainingError.diverged` (and takes no update) when the
    /// loss or the gradient norm is not finite.
    public func step(inputs: [UInt32], rowOffsets: [Int32], batch: CandidateBatch) throws -> Result {
        optimizer.zeroGrad()
        var drawn = batch
        drawn.negativeDraw = UInt64(optimizer.stepCount)  // a resumed run draws what an uninterrupted one would
        let lossResult = try forwardBackward(inputs: inputs, rowOffsets: rowOffsets, batch: drawn)
        let norm = optimizer.gradientNorm()
        guard lossResult.loss.isFinite, norm.isFinite else {
            throw TrainingError.diverged("loss \(lossResult.loss), gradient norm \(norm) at step \(optimizer.stepCount + 1)")
        }
        if gradClip > 0, norm > Double(gradClip) {
            optimizer.scaleGradients(by: Float(Double(gradClip) / norm))
        }
        let telemetry = try optimizer.step()
        return Result(loss: lossResult, telemetry: telemetry, gradNorm: norm)
    }

    /// Forward and backward only (gradients accumulate): for gradient checks and benchmarks.
    public func forwardBackward(inputs: [UInt32], rowOffsets: [Int32], batch: CandidateBatch) throws -> LossResult {
        let d = model.config.dModel, vocab = model.config.vocabSize
        let n = inputs.count
        let hidden = try inputs.withUnsafeBufferPointer { tok in
            try rowOffsets.withUnsafeBufferPointer { rows in try model.forward(tokens: tok, rowOffsets: rows) }
        }
        if dHidden.count != n * d { dHidden = [Float](repeating: 0, count: n * d) }
        let embedding = model.embedding
        let result = try dHidden.withUnsafeMutableBufferPointer { dH in
            try loss.forwardBackward(hidden: hidden, n: n, d: d, weight: UnsafeBufferPointer(embedding.value), vocab: vocab,
                                     batch: batch, dHidden: dH, dWeight: embedding.grad)
        }
        try dHidden.withUnsafeBufferPointer { try model.backward(dHidden: $0) }
        return result
    }
}

extension OptimizerChoice {
    /// The optimizer over every tensor of `store`; weight decay on matrices only.
    public func make(store: ParameterStore, schedule: LRSchedule, weightDecay: Float) throws -> any Optimizer {
        let groups = ParameterGroup.decayMatricesOnly(store, weightDecay: weightDecay)
        switch self {
        case .adamw: return try AdamW(store: store, groups: groups, schedule: schedule)
        case .moclip: return try MoClip(store: store, groups: groups, schedule: schedule)
        case .adamAtan2: return try MoClip(store: store, groups: groups, schedule: schedule, config: .adamAtan2)
        }
    }

    /// The usual recipe clips the global gradient norm at 1 for AdamW; MoClip and Adam-atan2
    /// bound every update themselves (angle clip, atan2), so they get no extra clip by default.
    public var defaultGradClip: Float { self == .adamw ? 1 : 0 }
}

extension LossChoice {
    /// `negatives` and `seed` are the tail loss's draw size and seed; `temperature` is the
    /// restricted KD's (the tail KD is at T = 1).
    public func make(kdAlpha: Float, temperature: Float, negatives: Int = 256, seed: UInt64 = 0) -> any LMHeadLoss {
        switch self {
        case .restricted: return RestrictedSoftmaxLoss(kdAlpha: kdAlpha, temperature: temperature)
        case .tail: return SampledTailLoss(negatives: negatives, kdAlpha: kdAlpha, seed: seed)
        case .full: return FullSoftmaxLoss()
        }
    }
}

extension LRSchedule {
    /// The schedule of both training commands: linear warmup over `warmup` steps, cosine decay to
    /// a tenth of the peak at the last step. Valid for every `steps ≥ 1` (a one-step run uses the peak).
    public static func training(peak: Float, warmup: Int, steps: Int) -> LRSchedule {
        let w = max(warmup, 1)
        return .warmupCosine(peak: peak, warmupSteps: w, totalSteps: max(steps, w + 1), minimum: peak / 10)
    }
}
