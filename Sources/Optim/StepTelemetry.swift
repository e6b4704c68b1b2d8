/// What one `step()` did, for logging: enough to see a clip firing constantly or updates
/// hitting their bound without re-reading any buffer.
public struct StepTelemetry: Sendable, Equatable {
    /// The step just taken (1-based).
    public var step: Int
    /// The scheduled learning rate of this step, before group multipliers.
    public var learningRate: Float
    /// Fraction of tensors whose gradient was rotated (0 or 1 with global granularity; 0 when
    /// the clip is off).
    public var clippedFraction: Double
    /// Mean gradient–momentum angle before clipping, radians, over tensors where it is defined
    /// (the one global angle with global granularity); nil when not measured or undefined
    /// (clip off, first step, zero gradients).
    public var meanAngleBeforeClip: Double?
    /// Largest |lr·update| over all coordinates, weight decay excluded: for MoClip at most
    /// lr·a·π/2.
    public var maxCoordinateStep: Float

    public init(step: Int, learningRate: Float, clippedFraction: Double, meanAngleBeforeClip: Double?,
                maxCoordinateStep: Float) {
        self.step = step
        self.learningRate = learningRate
        self.clippedFraction = clippedFraction
        self.meanAngleBeforeClip = meanAngleBeforeClip
        self.maxCoordinateStep = maxCoordinateStep
    }
}
