/// What went wrong in the tokenizer, with where (file, line, id) and what was expected.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A vocab or merges file does not parse; `line` is 1-based.
    case malformedFile(file: String, line: Int, reason: String)
    /// The files parse but do not form a usable byte-level vocabulary.
    case invalidVocabulary(file: String, reason: String)
    /// An id outside `0..<vocabSize` was given to the decoder.
    case unknownTokenID(id: UInt32, position: Int, vocabSize: Int)
    /// Decoded bytes are not UTF-8 (use `decodeBytes` for partial or byte-level sequences).
    case invalidUTF8(byteOffset: Int)
    /// Training arguments that cannot produce the requested tokenizer.
    case invalidTraining(reason: String)
    /// Reading or writing a file failed.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case let .malformedFile(file, line, reason): return "\(file):\(line): \(reason)"
        case let .invalidVocabulary(file, reason): return "\(file): invalid vocabulary: \(reason)"
        case let .unknownTokenID(id, position, vocabSize):
            return "token id \(id) at position \(position) is outside the vocabulary 0..<\(vocabSize)"
        case let .invalidUTF8(offset):
            return "decoded bytes are not valid UTF-8 (first bad byte near offset \(offset)); use decodeBytes"
        case let .invalidTraining(reason): return "cannot train tokenizer: \(reason)"
        case let .io(path, reason): return "\(path): \(reason)"
        }
    }
}
