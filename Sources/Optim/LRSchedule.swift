import Foundation

/// Learning rate as a pure function of the 1-based step number, so a resumed run needs only the
/// step counter to continue on the same curve.
public enum LRSchedule: Sendable, Equatable {
    /// The same rate at every step.
    case constant(Float)
    /// Linear warmup from peak/warmupSteps (step 1) to `peak` (step `warmupSteps`), then cosine
    /// decay to `minimum` at `totalSteps`; `minimum` after that.
    case warmupCosine(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float)

    /// The rate for step `step` (1-based: the first `step()` call uses step 1).
    public func learningRate(atStep step: Int) -> Float {
        switch self {
        case .constant(let lr):
            return lr
        case .warmupCosine(let peak, let warmup, let total, let minimum):
            let t = max(step, 1)
            if t <= warmup { return Float(Double(peak) * Double(t) / Double(warmup)) }
            if t >= total { return minimum }
            let progress = Double(t - warmup) / Double(total - warmup)
            let cosine = 0.5 * (1 + cos(Double.pi * progress))
            return Float(Double(minimum) + (Double(peak) - Double(minimum)) * cosine)
        }
    }

    /// The largest rate the schedule ever returns.
    public var peak: Float {
        switch self {
        case .constant(let lr): return lr
        case .warmupCosine(let peak, _, _, let minimum): return max(peak, minimum)
        }
    }

    public func validate() throws {
        switch self {
        case .constant(let lr):
            if !(lr.isFinite && lr >= 0) { throw OptimError.invalidConfig("constant learning rate \(lr), expected finite and ≥ 0") }
        case .warmupCosine(let peak, let warmup, let total, let minimum):
            if !(peak.isFinite && peak >= 0) { throw OptimError.invalidConfig("warmup-cosine peak \(peak), expected finite and ≥ 0") }
            if !(minimum.isFinite && minimum >= 0 && minimum <= peak) {
                throw OptimError.invalidConfig("warmup-cosine minimum \(minimum), expected finite, ≥ 0 and ≤ peak \(peak)")
            }
            if warmup < 0 { throw OptimError.invalidConfig("warmup-cosine warmupSteps \(warmup), expected ≥ 0") }
            if total <= warmup {
                throw OptimError.invalidConfig("warmup-cosine totalSteps \(total), expected > warmupSteps \(warmup)")
            }
        }
    }
}
