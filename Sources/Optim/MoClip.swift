import Foundation
import Parameters

/// MoClip: gradient–momentum angle clipping + atan2-scaled Adam update (arXiv 2510.09152, our
/// reading in docs/DESIGN.md §7). With `MoClipConfig.adamAtan2` (clip off) it is Adam-atan2.
///
/// Per step t, per clipping unit (tensor, or all tensors together with global granularity):
/// 1. If the clip is on: one fused pass computes ⟨g,m⟩, ‖g‖², ‖m‖² (and refuses non-finite
///    gradients before touching any state); `MoClipGeometry.decide` turns them into
///    g' = α·g + β·m with ‖g'‖ = ‖g‖.
/// 2. One fused pass: m ← β1·m + (1−β1)·g', v ← β2·v + (1−β2)·g'² (or g², see config),
///    p ← p·(1 − lr·λ) − lr·a·atan2(m̂, b·√v̂) with bias-corrected m̂, v̂ and no ε, so every
///    coordinate moves at most lr·a·π/2 and multiplying all gradients by a constant changes nothing.
public final class MoClip: CoreBackedOptimizer, Optimizer {
    public let config: MoClipConfig

    public init(store: ParameterStore, groups: [ParameterGroup], schedule: LRSchedule,
                config: MoClipConfig = MoClipConfig()) throws {
        try config.validate()
        self.config = config
        super.init(core: try OptimizerCore(store: store, groups: groups, schedule: schedule, algorithm: .atan2Family))
    }

    /// One group holding every tensor, with the given weight decay.
    public convenience init(store: ParameterStore, schedule: LRSchedule, weightDecay: Float = 0,
                            config: MoClipConfig = MoClipConfig()) throws {
        try self.init(store: store, groups: ParameterGroup.all(store, weightDecay: weightDecay),
                      schedule: schedule, config: config)
    }

    @discardableResult
    public func step() throws -> StepTelemetry {
        let core = self.core, plan = core.plan, tensors = core.tensors
        let t = core.step + 1
        let lr = core.schedule.learningRate(atStep: t)
        var decisions = [ClipDecision](repeating: .unchanged(angle: nil), count: tensors.count)
        var clippedFraction = 0.0
        var meanAngle: Double? = nil

        if config.clip != .off {
            let buffers = core.buffers
            plan.forEachChunk { c in
                let chunk = plan.chunks[c]
                buffers.chunkStats[c] = angleStatistics(buffers.grads[chunk.tensor] + chunk.lower,
                                                        buffers.m[chunk.tensor] + chunk.lower, count: chunk.count)
            }
            let perTensor = core.reduceStats()
            try core.checkFinite(perTensor)
            let beta1 = Double(config.beta1)
            switch config.granularity {
            case .perTensor:
                decisions = perTensor.map { MoClipGeometry.decide($0, mode: config.clip, beta1: beta1) }
                clippedFraction = Double(decisions.filter(\.clipped).count) / Double(decisions.count)
                let angles = decisions.compactMap(\.angle)
                if !angles.isEmpty { meanAngle = angles.reduce(0, +) / Double(angles.count) }
            case .global:
                let total = perTensor.reduce(AngleStatistics.zero, +)
                let decision = MoClipGeometry.decide(total, mode: config.clip, beta1: beta1)
                decisions = [ClipDecision](repeating: decision, count: tensors.count)
                clippedFraction = decision.clipped ? 1 : 0
                meanAngle = decision.angle
            }
        }

        let constants = stepConstants(step: t, lr: lr, decisions: decisions)
        let buffers = core.buffers, rotate = decisions.map(\.clipped)
        let fromClipped = config.secondMomentFromClippedGradient
        plan.forEachChunk { c in
            let chunk = plan.chunks[c], t = chunk.tensor
            buffers.chunkLargest[c] = atanUpdate(p: buffers.values[t] + chunk.lower, g: buffers.grads[t] + chunk.lower,
                                                 m: buffers.m[t] + chunk.lower, v: buffers.v[t] + chunk.lower,
                                                 count: chunk.count, constants[t], rotate: rotate[t],
                                                 secondMomentFromClipped: fromClipped)
        }
        let maxStep = zip(core.reduceLargest(), constants).reduce(Float(0)) { max($0, $1.0 * $1.1.stepScale) }
        core.step = t
        return StepTelemetry(step: t, learningRate: lr, clippedFraction: clippedFraction,
                             meanAngleBeforeClip: meanAngle, maxCoordinateStep: maxStep)
    }

    private func stepConstants(step t: Int, lr: Float, decisions: [ClipDecision]) -> [AtanUpdate] {
        // atan2(m/bc1, b·√(v/bc2)) = atan2(m, b·(bc1/√bc2)·√v): scaling both arguments by bc1 > 0;
        // the kernel takes the square of that factor and never forms √v.
        var xScale = Double(config.b)
        if config.biasCorrection {
            let bc1 = 1 - pow(Double(config.beta1), Double(t))
            let bc2 = 1 - pow(Double(config.beta2), Double(t))
            xScale *= bc1 / bc2.squareRoot()
        }
        return core.tensors.indices.map { i in
            let (effective, decay) = core.rates(tensor: i, lr: lr)
            // Unrotated steps keep the exact fp32 coefficients β1 and 1−β1 (bit-identical to
            // Adam-atan2 when nothing clips); a rotation is folded in (see `AtanUpdate`).
            let d = decisions[i]
            let vGain = Double(1 - config.beta2).squareRoot()
            let rotated = d.clipped
            let beta1 = Double(config.beta1), oneMinusBeta1 = Double(1 - config.beta1)
            let fromClipped = rotated && config.secondMomentFromClippedGradient
            return AtanUpdate(
                mFromMomentum: rotated ? Float(beta1 + oneMinusBeta1 * d.momentumScale) : config.beta1,
                mFromGradient: rotated ? Float(oneMinusBeta1 * d.gradientScale) : 1 - config.beta1,
                vFromGradient: Float(fromClipped ? vGain * d.gradientScale : vGain),
                vFromMomentum: Float(fromClipped ? vGain * d.momentumScale : 0),
                beta2: config.beta2, xScaleSquared: Float(xScale * xScale),
                decay: decay, stepScale: effective * config.a)
        }
    }
}
