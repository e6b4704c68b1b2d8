import Synchronization

/// The named parameter tensors of one model, in a fixed registration order.
///
/// A model registers its weights here at construction (`add(name:shape:)`) and keeps the returned
/// tensors; optimizers are built over the store afterwards and see the tensors registered at that
/// moment. Order matters: it is the order of state files and of the global-angle reduction.
/// The list is guarded by a mutex so the store can be shared; the tensors' buffers are not (see
/// `ParameterTensor`).
public final class ParameterStore: Sendable {
    private let list = Mutex<[ParameterTensor]>([])

    public init() {}

    /// Allocates a zero-filled tensor (value and grad) and registers it under a unique name.
    @discardableResult
    public func add(name: String, shape: [Int]) throws -> ParameterTensor {
        let tensor = try ParameterTensor(name: name, shape: shape)
        try list.withLock { tensors in
            if tensors.contains(where: { $0.name == name }) {
                throw ParameterError(name: name, reason: "a tensor with this name is already registered")
            }
            tensors.append(tensor)
        }
        return tensor
    }

    /// The registered tensors in registration order.
    public var tensors: [ParameterTensor] { list.withLock { $0 } }

    /// The tensor registered under `name`, or nil.
    public subscript(name: String) -> ParameterTensor? {
        list.withLock { tensors in tensors.first(where: { $0.name == name }) }
    }

    /// Total number of parameters.
    public var parameterCount: Int { list.withLock { $0.reduce(0) { $0 + $1.count } } }

    /// Clears every gradient buffer.
    public func zeroGrad() {
        for tensor in tensors { tensor.zeroGrad() }
    }
}
