import Foundation

/// Which direction MoClip constrains, and how far.
public enum ClipMode: Sendable, Equatable {
    /// No clipping: the optimizer is Adam-atan2.
    case off
    /// Rotate the gradient inside span{g, m} so that angle(g, m) ≤ maxAngle, keeping ‖g‖
    /// (the paper's gradient–momentum angle clip). maxAngle ∈ [0, π]; π never clips.
    case gradientMomentumAngle(maxAngle: Double)
    /// Rotate the gradient inside span{g, m}, keeping ‖g‖, by the least amount that makes the new
    /// momentum β1·m + (1−β1)·g turn by at most maxAngle from the old one. Unlike the angle clip
    /// the gradient may still oppose m, so the momentum can slow down. maxAngle ∈ [0, π/2].
    case momentumRotation(maxAngle: Double)
}

/// The vectors one angle is measured over.
public enum ClipGranularity: Sendable, Equatable {
    /// One angle and one decision per tensor.
    case perTensor
    /// One angle over the concatenation of all tensors; every tensor gets the same rotation.
    case global
}

/// The three sums that fix the gradient–momentum geometry: everything the clip needs, so one
/// fused pass over (g, m) suffices and the rotated gradient is a combination α·g + β·m.
public struct AngleStatistics: Sendable, Equatable {
    /// ⟨g, m⟩
    public var dot: Double
    /// ‖g‖²
    public var gradNormSquared: Double
    /// ‖m‖²
    public var momentumNormSquared: Double

    public init(dot: Double, gradNormSquared: Double, momentumNormSquared: Double) {
        self.dot = dot
        self.gradNormSquared = gradNormSquared
        self.momentumNormSquared = momentumNormSquared
    }

    public static let zero = AngleStatistics(dot: 0, gradNormSquared: 0, momentumNormSquared: 0)

    public static func + (l: AngleStatistics, r: AngleStatistics) -> AngleStatistics {
        AngleStatistics(dot: l.dot + r.dot, gradNormSquared: l.gradNormSquared + r.gradNormSquared,
                        momentumNormSquared: l.momentumNormSquared + r.momentumNormSquared)
    }

    /// angle(g, m) in [0, π], or nil when g or m is zero (no direction to compare).
    public var angle: Double? {
        guard gradNormSquared > 0, momentumNormSquared > 0 else { return nil }
        return acos(cosine)
    }

    var cosine: Double {
        max(-1, min(1, dot / (gradNormSquared.squareRoot() * momentumNormSquared.squareRoot())))
    }
}

/// What to feed the moment update instead of g: g' = gradientScale·g + momentumScale·m.
public struct ClipDecision: Sendable, Equatable {
    /// α and β in Double, as decided; the fp32 update kernel rounds them once.
    public var gradientScale: Double
    public var momentumScale: Double
    public var clipped: Bool
    /// g (nearly) opposite m, or (nearly) along it, so span{g, m} has no second direction:
    /// g' is then a multiple of m (see `MoClipGeometry.decide`).
    public var degenerate: Bool
    /// The gradient–momentum angle before clipping; nil when undefined.
    public var angle: Double?

    public static func unchanged(angle: Double?) -> ClipDecision {
        ClipDecision(gradientScale: 1, momentumScale: 0, clipped: false, degenerate: false, angle: angle)
    }
}

/// The clip decision as plain 2-D geometry in the plane span{u, w}, u = m/‖m‖, w the unit
/// component of g orthogonal to u. With θ = angle(g, m) and the target angle ψ of g' to u,
///     g' = ‖g‖(cos ψ·u + sin ψ·w) = α·g + β·m,  α = sin ψ / sin θ,  β = (‖g‖/‖m‖)·sin(θ − ψ)/sin θ,
/// so ‖g'‖ = ‖g‖ and the update pass applies it element-wise without another reduction.
public enum MoClipGeometry {
    /// Below this sin θ, g is treated as exactly (anti-)parallel to m. w = (g − ⟨g,u⟩u)/(‖g‖ sin θ)
    /// is then mostly fp32 rounding of g and m, and α = sin Δ/sin θ would amplify the fp32
    /// cancellation in α·g + β·m by more than 1000.
    public static let degenerateSine = 1e-3

    public static func decide(_ stats: AngleStatistics, mode: ClipMode, beta1: Double) -> ClipDecision {
        guard let theta = stats.angle else { return .unchanged(angle: nil) }
        let c = stats.cosine
        let sinTheta = max(0, 1 - c * c).squareRoot()
        let gNorm = stats.gradNormSquared.squareRoot()
        let mNorm = stats.momentumNormSquared.squareRoot()
        let psi: Double
        switch mode {
        case .off:
            return .unchanged(angle: theta)
        case .gradientMomentumAngle(let maxAngle):
            // θ ≤ π always; test Δmax explicitly so rounding in θ can never clip at Δmax = π.
            guard maxAngle < .pi, theta > maxAngle else { return .unchanged(angle: theta) }
            if sinTheta < degenerateSine {
                // Along m (only when Δmax ≈ 0): g' = ‖g‖u. Opposite m: no plane to rotate in;
                // keep the along-m component the cap allows, ‖g‖cos Δmax·u (0 at Δmax = π/2).
                let along = c > 0 ? 1 : cos(maxAngle)
                return ClipDecision(gradientScale: 0, momentumScale: gNorm * along / mNorm,
                                    clipped: true, degenerate: true, angle: theta)
            }
            psi = maxAngle
        case .momentumRotation(let maxAngle):
            // New momentum before the cap: (A + R cos θ)·u + R sin θ·w, a point on the circle of
            // radius R around (A, 0) as g turns by ψ. Find the largest ψ ≤ θ whose point lies at
            // polar angle ≤ Δmax: the far intersection of that circle with the ray at Δmax.
            let bigA = beta1 * mNorm
            let bigR = (1 - beta1) * gNorm
            let phi = atan2(bigR * sinTheta, bigA + bigR * c)
            guard phi > maxAngle else { return .unchanged(angle: theta) }
            let sinD = sin(maxAngle), cosD = cos(maxAngle)
            let reach = bigA * cosD + max(0, bigR * bigR - bigA * bigA * sinD * sinD).squareRoot()
            let cosPsi = max(-1, min(1, (reach * cosD - bigA) / bigR))
            let sinPsi = max(0, min(1, reach * sinD / bigR))
            if sinTheta < degenerateSine {
                // g ∥ m: keep the along-m part cos ψ·‖g‖, which leaves m pointing along u.
                return ClipDecision(gradientScale: 0, momentumScale: gNorm * cosPsi / mNorm,
                                    clipped: true, degenerate: true, angle: theta)
            }
            psi = atan2(sinPsi, cosPsi)
        }
        let alpha = sin(psi) / sinTheta
        let beta = (gNorm / mNorm) * sin(theta - psi) / sinTheta
        return ClipDecision(gradientScale: alpha, momentumScale: beta,
                            clipped: true, degenerate: false, angle: theta)
    }
}
