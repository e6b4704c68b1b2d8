import LogitCore

/// The binary batch body of `POST /v1/datasets/{name}/sequences` (schema/WIRE_FORMAT.md).
public enum WireMode: UInt8, Sendable {
    case sets = 1
    case logits = 2
}

public enum WireDType: UInt8, Sendable {
    case f32 = 1, f16 = 2, bf16 = 3
    public var byteWidth: Int { self == .f32 ? 4 : 2 }
}

public struct WireBatchHeader: Sendable, Equatable {
    public static let magic: UInt32 = 0x3157_474C   // "LGW1"
    public static let version: UInt16 = 1
    public static let byteCount = 24
    public static let maxSequences = 65_536
    public var mode: WireMode
    public var dtype: WireDType?
    public var vocabSize: Int
    public var sequenceCount: Int
}

/// Per-sequence flag bits.
public enum WireFlags {
    /// A loss mask follows the tokens.
    public static let lossMask: UInt8 = 1
    /// Logits mode: zero bytes pad the rows to a body offset that is a multiple of
    /// `rowAlignment`, so the daemon selects from them in place (a body whose own start is
    /// aligned, as a received buffer or a shared-memory slot is, then has aligned rows).
    public static let alignedRows: UInt8 = 2
    public static let known: UInt8 = lossMask | alignedRows
    public static let rowAlignment = 64
}

/// A logits-mode sequence: rows stay in the request body until the daemon selects from them.
public struct WireLogitsSequence: Sendable {
    public var key: String
    public var tokens: [UInt32]
    public var lossMask: [UInt8]?
    /// Byte offset of row 0 in the body; row t is `vocab · width` bytes further per t.
    public var rowsOffset: Int
    public var positions: Int { tokens.count - 1 }
}

public enum WireBatch: Sendable {
    case sets([SequenceRecord])
    case logits(dtype: WireDType, [WireLogitsSequence])

    public var count: Int {
        switch self {
        case .sets(let r): return r.count
        case .logits(_, let s): return s.count
        }
    }
}

/// Where and why a body was refused: the byte offset, and the sequence/position when they apply.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var sequence: Int?
    public var position: Int?
    public var message: String

    public init(offset: Int, sequence: Int? = nil, position: Int? = nil, _ message: String) {
        self.offset = offset
        self.sequence = sequence
        self.position = position
        self.message = message
    }

    public var description: String {
        var where_ = "at byte \(offset)"
        if let sequence { where_ += ", sequence \(sequence)" }
        if let position { where_ += ", position \(position)" }
        return "\(message) (\(where_))"
    }
}
