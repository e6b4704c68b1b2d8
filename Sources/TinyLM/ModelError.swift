import GGUF

/// What went wrong in the model or its checkpoint, with where and what was expected.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A configuration that cannot build a model (or exceeds a cap).
    case invalidConfig(String)
    /// Bad arguments to forward/backward: token ids, row offsets, buffer sizes.
    case invalidInput(String)
    /// A checkpoint file that does not parse or does not match the expected model.
    case invalidCheckpoint(file: String, reason: String)
    /// Reading or writing a file failed.
    case io(path: String, reason: String)
    /// A GGUF file that cannot be read, or holds a model TinyLM cannot be (the reader's error kept).
    case gguf(GGUFError)

    public var description: String {
        switch self {
        case .invalidConfig(let reason): return "invalid TinyLM config: \(reason)"
        case .invalidInput(let reason): return "invalid model input: \(reason)"
        case let .invalidCheckpoint(file, reason): return "\(file): invalid checkpoint: \(reason)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .gguf(error): return error.description
        }
    }
}
