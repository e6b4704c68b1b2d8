/// One named fp32 parameter tensor with its gradient buffer.
///
/// The tensor owns both buffers (64-byte aligned, zero-initialised) for its whole lifetime, so a
/// model can keep its weights here and read/write them through `value` and `grad` directly —
/// no copies between model and optimizer. Row-major; `shape` is informational for the model
/// and for state files, the optimizer treats the tensor as a flat vector.
///
/// `@unchecked Sendable`: the buffers are shared mutable memory by design. Their users sequence
/// the accesses (the model writes `grad` in its backward pass, then the optimizer reads it in
/// `step()`); concurrent writes to overlapping ranges are the caller's bug, as with any array
/// handed to worker threads.
public final class ParameterTensor: @unchecked Sendable {
    public let name: String
    public let shape: [Int]
    /// Number of elements: the product of `shape`.
    public let count: Int
    /// Parameter values, `count` floats.
    public let value: UnsafeMutableBufferPointer<Float>
    /// Gradient accumulator, `count` floats; `zeroGrad()` clears it.
    public let grad: UnsafeMutableBufferPointer<Float>

    /// Largest element count accepted for one tensor (2^40 floats = 4 TiB): guards the
    /// shape product against overflow and absurd allocations from bad configuration.
    public static let maxElements = 1 << 40
    /// Longest tensor name in UTF-8 bytes; names are stored in state files.
    public static let maxNameBytes = 1024
    /// Highest rank accepted.
    public static let maxRank = 8

    public init(name: String, shape: [Int]) throws {
        try ParameterTensor.validate(name: name, shape: shape)
        self.name = name
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.value = ParameterTensor.allocateZeroed(count)
        self.grad = ParameterTensor.allocateZeroed(count)
    }

    deinit {
        value.deallocate()
        grad.deallocate()
    }

    /// Rank (number of dimensions).
    public var rank: Int { shape.count }

    /// Sets every gradient element to zero.
    public func zeroGrad() {
        grad.update(repeating: 0)
    }

    static func validate(name: String, shape: [Int]) throws {
        if name.isEmpty { throw ParameterError(name: name, reason: "name is empty") }
        if name.utf8.count > maxNameBytes {
            throw ParameterError(name: name, reason: "name is \(name.utf8.count) UTF-8 bytes, expected at most \(maxNameBytes)")
        }
        if shape.isEmpty || shape.count > maxRank {
            throw ParameterError(name: name, reason: "rank \(shape.count), expected 1...\(maxRank) (use [1] for a scalar)")
        }
        var product = 1
        for (axis, dim) in shape.enumerated() {
            if dim <= 0 {
                throw ParameterError(name: name, reason: "dimension \(axis) is \(dim), expected > 0")
            }
            let (next, overflow) = product.multipliedReportingOverflow(by: dim)
            if overflow || next > maxElements {
                throw ParameterError(name: name, reason: "shape \(shape) has more than \(maxElements) elements")
            }
            product = next
        }
    }

    /// 64-byte alignment: whole cache lines, and SIMD loads never straddle a line at the start.
    /// Optimizer state buffers use it too.
    public static func allocateZeroed(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        let typed = raw.bindMemory(to: Float.self, capacity: count)
        typed.initialize(repeating: 0, count: count)
        return UnsafeMutableBufferPointer(start: typed, count: count)
    }
}
