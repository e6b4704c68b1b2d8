/// One metadata value of a GGUF file, typed as stored.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value as a non-negative integer, whatever integer type stored it.
    public var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): v >= 0 ? Int(v) : nil
        case .uint16(let v): Int(v)
        case .int16(let v): v >= 0 ? Int(v) : nil
        case .uint32(let v): Int(v)
        case .int32(let v): v >= 0 ? Int(v) : nil
        case .uint64(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): v >= 0 ? Int(v) : nil
        default: nil
        }
    }

    public var float: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: nil
        }
    }

    /// The GGUF value-type name, for error messages.
    public var typeName: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }
}
