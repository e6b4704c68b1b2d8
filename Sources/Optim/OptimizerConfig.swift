/// MoClip hyper-parameters. Defaults follow the reading of the paper in docs/DESIGN.md §7:
/// β = (0.9, 0.99), a = 1.27 ≈ 4/π, b = 1, gradient–momentum clip at Δmax = π/2, per tensor.
public struct MoClipConfig: Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.99
    /// Update scale: each coordinate moves by lr·a·atan2(m̂, b·√v̂), at most lr·a·π/2.
    public var a: Float = 1.27
    public var b: Float = 1
    public var clip: ClipMode = .gradientMomentumAngle(maxAngle: .pi / 2)
    public var granularity: ClipGranularity = .perTensor
    /// Feed the second moment the clipped gradient g' (true, default) or the raw g. The norms are
    /// equal, the per-coordinate magnitudes are not.
    public var secondMomentFromClippedGradient = true
    /// Divide m and v by (1 − β^t). Without it early steps are not scale-consistent with later ones.
    public var biasCorrection = true

    public init() {}

    /// Adam-atan2 (Everett et al. 2024): MoClip with the clip off.
    public static var adamAtan2: MoClipConfig {
        var config = MoClipConfig()
        config.clip = .off
        return config
    }

    public func validate() throws {
        try validateBetas(beta1, beta2)
        if !(a.isFinite && a > 0) { throw OptimError.invalidConfig("MoClip a = \(a), expected finite and > 0") }
        if !(b.isFinite && b > 0) { throw OptimError.invalidConfig("MoClip b = \(b), expected finite and > 0") }
        switch clip {
        case .off: break
        case .gradientMomentumAngle(let angle):
            if !(angle >= 0 && angle <= .pi) {
                throw OptimError.invalidConfig("gradient–momentum maxAngle \(angle) rad, expected within [0, π]")
            }
        case .momentumRotation(let angle):
            if !(angle >= 0 && angle <= .pi / 2) {
                throw OptimError.invalidConfig("momentum-rotation maxAngle \(angle) rad, expected within [0, π/2]")
            }
        }
    }
}

/// AdamW hyper-parameters (Loshchilov & Hutter), PyTorch's defaults.
public struct AdamWConfig: Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    /// Added to √v̂ in the denominator.
    public var epsilon: Float = 1e-8
    public var biasCorrection = true

    public init() {}

    public func validate() throws {
        try validateBetas(beta1, beta2)
        if !(epsilon.isFinite && epsilon > 0) { throw OptimError.invalidConfig("AdamW epsilon \(epsilon), expected finite and > 0") }
    }
}

func validateBetas(_ beta1: Float, _ beta2: Float) throws {
    if !(beta1 >= 0 && beta1 < 1) { throw OptimError.invalidConfig("beta1 = \(beta1), expected within [0, 1)") }
    if !(beta2 >= 0 && beta2 < 1) { throw OptimError.invalidConfig("beta2 = \(beta2), expected within [0, 1)") }
}
