import Foundation
import Parameters

/// AdamW (decoupled weight decay), the baseline MoClip is measured against: same interface,
/// same work plan and the same degree of vectorisation and threading, so benchmark ratios
/// compare algorithms rather than implementations.
///
/// m ← β1·m + (1−β1)·g, v ← β2·v + (√(1−β2)·g)², p ← p·(1 − lr·λ) − lr·m̂/(√v̂ + ε).
/// (v's increment is formed as a square of the scaled gradient so |g| up to ~1e20 does not overflow.)
public final class AdamW: CoreBackedOptimizer, Optimizer {
    public let config: AdamWConfig

    public init(store: ParameterStore, groups: [ParameterGroup], schedule: LRSchedule,
                config: AdamWConfig = AdamWConfig()) throws {
        try config.validate()
        self.config = config
        super.init(core: try OptimizerCore(store: store, groups: groups, schedule: schedule, algorithm: .adamW))
    }

    /// One group holding every tensor, with the given weight decay.
    public convenience init(store: ParameterStore, schedule: LRSchedule, weightDecay: Float = 0,
                            config: AdamWConfig = AdamWConfig()) throws {
        try self.init(store: store, groups: ParameterGroup.all(store, weightDecay: weightDecay),
                      schedule: schedule, config: config)
    }

    /// AdamW does no angle pass, so non-finite gradients are not detected here: they propagate
    /// into m, v and the parameters as in PyTorch.
    @discardableResult
    public func step() throws -> StepTelemetry {
        let core = self.core, plan = core.plan, tensors = core.tensors
        let t = core.step + 1
        let lr = core.schedule.learningRate(atStep: t)
        var bc1 = 1.0, bc2 = 1.0
        if config.biasCorrection {
            bc1 = 1 - pow(Double(config.beta1), Double(t))
            bc2 = 1 - pow(Double(config.beta2), Double(t))
        }
        let constants: [AdamWUpdate] = tensors.indices.map { i in
            let (effective, decay) = core.rates(tensor: i, lr: lr)
            return AdamWUpdate(beta1: config.beta1, beta2: config.beta2, vGain: Float(Double(1 - config.beta2).squareRoot()), vScale: Float(1 / bc2.squareRoot()),
                               epsilon: config.epsilon, decay: decay, stepScale: Float(Double(effective) / bc1))
        }
        let buffers = core.buffers
        plan.forEachChunk { c in
            let chunk = plan.chunks[c], t = chunk.tensor
            buffers.chunkLargest[c] = adamWUpdate(p: buffers.values[t] + chunk.lower, g: buffers.grads[t] + chunk.lower,
                                                  m: buffers.m[t] + chunk.lower, v: buffers.v[t] + chunk.lower,
                                                  count: chunk.count, constants[t])
        }
        let maxStep = zip(core.reduceLargest(), constants).reduce(Float(0)) { max($0, $1.0 * $1.1.stepScale) }
        core.step = t
        return StepTelemetry(step: t, learningRate: lr, clippedFraction: 0, meanAngleBeforeClip: nil,
                             maxCoordinateStep: maxStep)
    }

}
