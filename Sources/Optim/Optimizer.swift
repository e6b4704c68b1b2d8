import Parameters
/// The interface shared by MoClip, Adam-atan2 and AdamW, so a trainer can switch algorithm by
/// configuration alone.
///
/// Usage per training step: the model accumulates into each tensor's `grad`, then `step()`
/// updates `value` in place, then `zeroGrad()`. The optimizer's tensors are those in the store
/// when it was built. Not thread-safe: one training loop drives one optimizer (the work inside
/// `step()` is parallel).
public protocol Optimizer: AnyObject {
    /// Steps taken so far (0 before the first `step()`); the next step is `stepCount + 1`.
    var stepCount: Int { get }
    var schedule: LRSchedule { get }
    /// The tensors this optimizer updates, in store order.
    var tensors: [ParameterTensor] { get }
    /// Applies one update from the current gradients; gradients are left untouched.
    @discardableResult func step() throws -> StepTelemetry
    /// Sets every gradient to zero.
    func zeroGrad()
    /// The global L2 norm of every gradient, for clipping and telemetry. Sums in Double, chunk
    /// partials added in chunk order: the same value whatever the thread count.
    func gradientNorm() -> Double
    /// Multiplies every gradient by `scale` (the global-norm clip).
    func scaleGradients(by scale: Float)
    /// The optimizer state (step, moments) in the format of schema/OPTIM_STATE.md.
    func encodeState() -> [UInt8]
    /// The same bytes as `encodeState()`, handed to `sink` in pieces (no copy of the moments).
    func writeState(to sink: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Replaces the state with a saved one after validating all of it; on error nothing changes.
    func restoreState(from bytes: UnsafeRawBufferPointer) throws
    /// Exact size of `encodeState()` for these tensors (files larger than this are refused unread).
    var encodedStateSize: Int { get }
}

/// What AdamW and MoClip share beyond their `step()`: the core that holds tensors, moments and
/// the step counter, and everything that only forwards to it (one copy instead of two).
public class CoreBackedOptimizer {
    let core: OptimizerCore

    init(core: OptimizerCore) { self.core = core }

    public var stepCount: Int { core.step }
    public var schedule: LRSchedule { core.schedule }
    public var tensors: [ParameterTensor] { core.tensors }
    public func zeroGrad() { core.zeroGrad() }
    public func gradientNorm() -> Double { core.gradientNorm() }
    public func scaleGradients(by scale: Float) { core.scaleGradients(by: scale) }
    public func encodeState() -> [UInt8] { OptimizerStateFormat.encode(core) }
    public func writeState(to sink: (UnsafeRawBufferPointer) throws -> Void) throws { try OptimizerStateFormat.write(core, to: sink) }
    public func restoreState(from bytes: UnsafeRawBufferPointer) throws { try OptimizerStateFormat.decode(bytes, into: core) }
    public var encodedStateSize: Int { OptimizerStateFormat.encodedSize(core) }
}

/// Shared machinery of every optimizer here: tensors, groups, moment buffers, the step counter,
/// the parallel work plan and its scratch space.
final class OptimizerCore {
    let tensors: [ParameterTensor]
    let groups: [ParameterGroup]
    let groupOfTensor: [Int]
    let schedule: LRSchedule
    let algorithm: StateAlgorithm
    /// First and second moments, one buffer each per tensor, same length as the tensor.
    let m: [UnsafeMutableBufferPointer<Float>]
    let v: [UnsafeMutableBufferPointer<Float>]
    var step = 0
    let plan: WorkPlan
    /// One slot per chunk of `plan`: written in parallel, reduced in chunk order.
    let chunkStats: UnsafeMutableBufferPointer<AngleStatistics>
    let chunkLargest: UnsafeMutableBufferPointer<Float>
    let chunkSquares: UnsafeMutableBufferPointer<Double>
    /// The same buffers as raw pointers for the worker threads.
    let buffers: StepBuffers

    init(store: ParameterStore, groups: [ParameterGroup], schedule: LRSchedule, algorithm: StateAlgorithm) throws {
        try schedule.validate()
        let tensors = store.tensors
        if tensors.isEmpty { throw OptimError.invalidConfig("the parameter store has no tensors; register the model's tensors before building the optimizer") }
        self.groupOfTensor = try ParameterGroup.assign(groups, to: tensors, maxLearningRate: schedule.peak)
        self.tensors = tensors
        self.groups = groups
        self.schedule = schedule
        self.algorithm = algorithm
        self.m = tensors.map { ParameterTensor.allocateZeroed($0.count) }
        self.v = tensors.map { ParameterTensor.allocateZeroed($0.count) }
        self.plan = WorkPlan(tensorCounts: tensors.map(\.count))
        self.chunkStats = .allocate(capacity: plan.chunks.count)
        self.chunkStats.initialize(repeating: .zero)
        self.chunkLargest = .allocate(capacity: plan.chunks.count)
        self.chunkLargest.initialize(repeating: 0)
        self.chunkSquares = .allocate(capacity: plan.chunks.count)
        self.chunkSquares.initialize(repeating: 0)
        self.buffers = StepBuffers(values: tensors.map { $0.value.baseAddress! }, grads: tensors.map { $0.grad.baseAddress! },
                                   m: m.map { $0.baseAddress! }, v: v.map { $0.baseAddress! },
                                   chunkStats: chunkStats.baseAddress!, chunkLargest: chunkLargest.baseAddress!,
                                   chunkSquares: chunkSquares.baseAddress!)
    }

    deinit {
        for buffer in m { buffer.deallocate() }
        for buffer in v { buffer.deallocate() }
        chunkStats.deallocate()
        chunkLargest.deallocate()
        chunkSquares.deallocate()
    }

    /// Effective learning rate and decay factor of tensor `t` at scheduled rate `lr`.
    func rates(tensor t: Int, lr: Float) -> (lr: Float, decay: Float) {
        let group = groups[groupOfTensor[t]]
        let effective = lr * group.lrScale
        return (effective, 1 - effective * group.weightDecay)
    }

    func zeroGrad() {
        let plan = self.plan, buffers = self.buffers
        plan.forEachChunk { c in
            let chunk = plan.chunks[c]
            (buffers.grads[chunk.tensor] + chunk.lower).update(repeating: 0, count: chunk.count)
        }
    }

    func gradientNorm() -> Double {
        let plan = self.plan, buffers = self.buffers
        plan.forEachChunk { c in
            let chunk = plan.chunks[c]
            buffers.chunkSquares[c] = sumOfSquares(buffers.grads[chunk.tensor] + chunk.lower, count: chunk.count)
        }
        return plan.chunks.indices.reduce(0.0) { $0 + chunkSquares[$1] }.squareRoot()
    }

    func scaleGradients(by scale: Float) {
        let plan = self.plan, buffers = self.buffers
        plan.forEachChunk { c in
            let chunk = plan.chunks[c]
            scaleInPlace(buffers.grads[chunk.tensor] + chunk.lower, count: chunk.count, by: scale)
        }
    }

    /// Per-tensor sums from the per-chunk partials, in chunk order (deterministic).
    func reduceStats() -> [AngleStatistics] {
        plan.chunksOfTensor.map { range in range.reduce(AngleStatistics.zero) { $0 + chunkStats[$1] } }
    }

    /// Per-tensor maxima from the per-chunk partials.
    func reduceLargest() -> [Float] {
        plan.chunksOfTensor.map { range in range.reduce(Float(0)) { max($0, chunkLargest[$1]) } }
    }

    /// Throws on the first tensor whose ‖g‖² is not finite (NaN or ∞ somewhere in g).
    func checkFinite(_ stats: [AngleStatistics]) throws {
        if let bad = stats.firstIndex(where: { !$0.gradNormSquared.isFinite }) {
            throw OptimError.nonFiniteGradient(tensor: tensors[bad].name)
        }
    }
}

/// Raw views of every buffer a step touches, handed to worker threads. `@unchecked Sendable`
/// because the work plan gives each chunk a disjoint range of every buffer and its own partial
/// slot, and the pointers stay valid for the optimizer's lifetime (the tensors are retained by
/// `OptimizerCore.tensors`, the moments and slots are freed only in its deinit).
struct StepBuffers: @unchecked Sendable {
    let values: [UnsafeMutablePointer<Float>]
    let grads: [UnsafeMutablePointer<Float>]
    let m: [UnsafeMutablePointer<Float>]
    let v: [UnsafeMutablePointer<Float>]
    let chunkStats: UnsafeMutablePointer<AngleStatistics>
    let chunkLargest: UnsafeMutablePointer<Float>
    let chunkSquares: UnsafeMutablePointer<Double>
}
