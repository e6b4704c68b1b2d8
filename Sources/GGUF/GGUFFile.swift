import Foundation

/// One tensor's entry in a GGUF file: its name, shape, element type and where its bytes are.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml's order: `dimensions[0]` (ne0) is the contiguous one, the length of a row.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Offset of the first byte from the start of the file (already validated in range).
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Row-major shape (PyTorch's order): ggml's dimensions reversed.
    public var rowMajorShape: [Int] { dimensions.reversed() }
}

/// A GGUF file (version 2 or 3), memory-mapped read-only: its metadata and tensor directory are
/// parsed and validated when it is opened — every count, length, offset and size against the
/// file's size before anything is allocated — and tensors are dequantized to f32 on request.
/// What is read and what is refused: schema/GGUF.md.
public final class GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order; keys are unique.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Offset of the tensor data section.
    public let dataOffset: Int
    private let bytes: Data
    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]

    static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    /// Limits that no real model reaches but that stop a hostile header from asking for huge
    /// allocations: a string, an array, a tensor's element count.
    public static let maxStringBytes = 1 << 24
    public static let maxArrayCount = 1 << 24
    public static let maxTensorElements = 1 << 36
    public static let maxDimensions = 4

    public convenience init(path: String) throws(GGUFError) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw GGUFError(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        try self.init(bytes: data, path: path)
    }

    /// Parses a file's contents (`path` names it in errors).
    public init(bytes: Data, path: String) throws(GGUFError) {
        self.path = path
        self.bytes = bytes
        // Data.withUnsafeBytes rethrows untyped errors; the result carries the typed one out.
        let parsed: Result<Header, GGUFError> = bytes.withUnsafeBytes { raw in
            var cursor = GGUFCursor(raw, path: path)
            do throws(GGUFError) { return .success(try Header.parse(&cursor)) } catch { return .failure(error) }
        }
        let header = try parsed.get()
        version = header.version
        metadata = header.metadata
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        metadataIndex = Dictionary(uniqueKeysWithValues: header.metadata.enumerated().map { ($1.key, $0) })
        tensorIndex = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    // MARK: Metadata

    public func value(_ key: String) -> GGUFValue? { metadataIndex[key].map { metadata[$0].value } }

    private func required(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let v = value(key) else { throw GGUFError(path: path, item: key, reason: "metadata key is missing") }
        return v
    }

    private func mismatch(_ key: String, _ v: GGUFValue, _ expected: String) -> GGUFError {
        GGUFError(path: path, item: key, reason: "metadata value is \(v.typeName), expected \(expected)")
    }

    public func integer(_ key: String) throws(GGUFError) -> Int {
        let v = try required(key)
        guard let i = v.integer else { throw mismatch(key, v, "a non-negative integer") }
        return i
    }

    public func float(_ key: String) throws(GGUFError) -> Double {
        let v = try required(key)
        guard let f = v.float else { throw mismatch(key, v, "float32 or float64") }
        return f
    }

    public func string(_ key: String) throws(GGUFError) -> String {
        let v = try required(key)
        guard case .string(let s) = v else { throw mismatch(key, v, "string") }
        return s
    }

    public func strings(_ key: String) throws(GGUFError) -> [String] {
        let v = try required(key)
        guard case .array(let items) = v else { throw mismatch(key, v, "array of strings") }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw mismatch("\(key)[\(i)]", item, "string") }
            out.append(s)
        }
        return out
    }

    // MARK: Tensors

    public func tensor(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
        guard let i = tensorIndex[name] else { throw GGUFError(path: path, item: name, reason: "no such tensor") }
        return tensors[i]
    }

    /// The tensor's values as f32, row-major (`rowMajorShape`).
    public func dequantize(_ info: GGUFTensorInfo) throws(GGUFError) -> [Float] {
        let count = info.elementCount
        var failure: GGUFError?
        let values = [Float](unsafeUninitializedCapacity: count) { out, initialized in
            out.initialize(repeating: 0)
            initialized = count
            bytes.withUnsafeBytes { raw in
                let src = UnsafeRawBufferPointer(rebasing: raw[info.fileOffset..<(info.fileOffset + info.byteCount)])
                do throws(GGUFError) {
                    try Dequantize.run(info.type, src, into: out.baseAddress!, count: count, path: path, tensor: info.name,
                                       fileOffset: info.fileOffset)
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return values
    }
}

/// The parsed header: magic, version, metadata, tensor directory, data offset.
private struct Header {
    var version: UInt32
    var metadata: [(key: String, value: GGUFValue)]
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    var dataOffset: Int

    static func parse(_ c: inout GGUFCursor) throws(GGUFError) -> Header {
        let magic = try c.u32("magic")
        guard magic == GGUFFile.magic else {
            throw c.error(at: 0, "magic is 0x\(String(magic, radix: 16)), expected 0x46554747 (\"GGUF\")")
        }
        let version = try c.u32("version")
        guard version == 2 || version == 3 else {
            throw c.error(at: 4, "version \(version); this reader reads versions 2 and 3 (version 1 used 32-bit counts)")
        }
        let tensorCount = try c.count("tensor count", minimumBytesEach: 32)
        let kvCount = try c.count("metadata count", minimumBytesEach: 13)

        var metadata: [(key: String, value: GGUFValue)] = []
        metadata.reserveCapacity(kvCount)
        var seen = Set<String>()
        for _ in 0..<kvCount {
            let at = c.offset
            let key = try c.string("metadata key")
            guard seen.insert(key).inserted else { throw c.error(at: at, item: key, "metadata key appears twice") }
            let type = try c.u32("value type of \(key)")
            metadata.append((key, try c.value(type: type, key: key, depth: 0)))
        }
        var alignment = 32
        if let a = metadata.first(where: { $0.key == "general.alignment" }) {
            guard case .uint32(let v) = a.value, v > 0, v.nonzeroBitCount == 1, v <= 1 << 20 else {
                throw c.error(item: "general.alignment", "alignment is \(a.value), expected a uint32 power of two up to 2^20")
            }
            alignment = Int(v)
        }

        var infos: [(name: String, dims: [Int], type: GGMLType, offset: UInt64, bytes: Int, at: Int)] = []
        infos.reserveCapacity(tensorCount)
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let at = c.offset
            let name = try c.string("tensor name")
            guard names.insert(name).inserted else { throw c.error(at: at, item: name, "tensor name appears twice") }
            let nDims = Int(try c.u32("dimension count of \(name)"))
            guard (1...GGUFFile.maxDimensions).contains(nDims) else {
                throw c.error(at: at, item: name, "\(nDims) dimensions, expected 1...\(GGUFFile.maxDimensions)")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<nDims {
                let n = try c.u64("dimension \(d) of \(name)")
                guard n >= 1, n <= UInt64(GGUFFile.maxTensorElements) else {
                    throw c.error(at: at, item: name, "dimension \(d) is \(n), expected 1...\(GGUFFile.maxTensorElements)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(n))
                guard !overflow, product <= GGUFFile.maxTensorElements else {
                    throw c.error(at: at, item: name, "more than \(GGUFFile.maxTensorElements) elements")
                }
                elements = product
                dims.append(Int(n))
            }
            let typeID = try c.u32("type of \(name)")
            guard let type = GGMLType(rawValue: typeID) else {
                throw c.error(at: at, item: name, "type id \(typeID) is not a ggml type")
            }
            guard let layout = type.blockLayout else {
                throw c.error(at: at, item: name, "type \(type.name) is not read; readable types: \(GGMLType.readable.map(\.name).joined(separator: ", "))")
            }
            guard dims[0] % layout.elements == 0 else {
                throw c.error(at: at, item: name, "row length \(dims[0]) is not a multiple of \(type.name)'s block of \(layout.elements)")
            }
            let offset = try c.u64("data offset of \(name)")
            guard offset % UInt64(alignment) == 0 else {
                throw c.error(at: at, item: name, "data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            infos.append((name, dims, type, offset, elements / layout.elements * layout.bytes, at))
        }
        let dataOffset = (c.offset + alignment - 1) / alignment * alignment
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(infos.count)
        for t in infos {
            let available = UInt64(max(0, c.size - dataOffset))
            guard t.offset <= available, UInt64(t.bytes) <= available - t.offset else {
                throw c.error(at: t.at, item: t.name, "data [\(t.offset), +\(t.bytes)) runs past the end of the data section (\(available) bytes from offset \(dataOffset))")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dimensions: t.dims, type: t.type,
                                          fileOffset: dataOffset + Int(t.offset), byteCount: t.bytes))
        }
        let sorted = tensors.sorted { $0.fileOffset < $1.fileOffset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw c.error(at: a.fileOffset, item: b.name, "data overlaps tensor \(a.name)'s")
        }
        return Header(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }
}

/// Bounds-checked little-endian reads of the header; each error names the offset and field.
struct GGUFCursor {
    let raw: UnsafeRawBufferPointer
    let path: String
    var offset = 0
    var size: Int { raw.count }

    init(_ raw: UnsafeRawBufferPointer, path: String) {
        self.raw = raw
        self.path = path
    }

    func error(at: Int? = nil, item: String? = nil, _ reason: String) -> GGUFError {
        GGUFError(path: path, offset: at ?? offset, item: item, reason: reason)
    }

    private mutating func take(_ n: Int, _ what: String) throws(GGUFError) -> Int {
        guard n >= 0, n <= raw.count - offset else {
            throw error("\(what) truncated: needs \(n) bytes, \(raw.count - offset) remain")
        }
        defer { offset += n }
        return offset
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(GGUFError) -> T {
        T(littleEndian: raw.loadUnaligned(fromByteOffset: try take(MemoryLayout<T>.size, what), as: T.self))
    }

    mutating func u32(_ what: String) throws(GGUFError) -> UInt32 { try load(UInt32.self, what) }
    mutating func u64(_ what: String) throws(GGUFError) -> UInt64 { try load(UInt64.self, what) }

    /// A count of items each at least `minimumBytesEach` long: refused if they cannot fit in
    /// what remains, so no hostile count reserves memory.
    mutating func count(_ what: String, minimumBytesEach: Int) throws(GGUFError) -> Int {
        let at = offset
        let n = try u64(what)
        guard n <= UInt64((raw.count - offset) / minimumBytesEach) else {
            throw error(at: at, "\(what) is \(n), but \(raw.count - offset) bytes remain (at least \(minimumBytesEach) per item)")
        }
        return Int(n)
    }

    mutating func string(_ what: String) throws(GGUFError) -> String {
        let at = offset
        let n = try u64("length of \(what)")
        guard n <= UInt64(GGUFFile.maxStringBytes) else {
            throw error(at: at, "\(what) is \(n) bytes long, expected at most \(GGUFFile.maxStringBytes)")
        }
        let start = try take(Int(n), what)
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: raw[start..<(start + Int(n))]), as: UTF8.self) else {
            throw error(at: start, "\(what) is not valid UTF-8")
        }
        return s
    }

    mutating func value(type: UInt32, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self, key))
        case 1: return .int8(try load(Int8.self, key))
        case 2: return .uint16(try load(UInt16.self, key))
        case 3: return .int16(try load(Int16.self, key))
        case 4: return .uint32(try load(UInt32.self, key))
        case 5: return .int32(try load(Int32.self, key))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, key)))
        case 7:
            let at = offset
            let b = try load(UInt8.self, key)
            guard b <= 1 else { throw error(at: at, item: key, "bool is \(b), expected 0 or 1") }
            return .bool(b == 1)
        case 8: return .string(try string("value of \(key)"))
        case 9:
            let at = offset
            guard depth == 0 else { throw error(at: at, item: key, "nested arrays are not read") }
            let elementType = try u32("element type of \(key)")
            let minimum = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 10: 8, 11: 8, 12: 8][Int(elementType)]
            guard let minimum else {
                throw error(at: at, item: key, elementType == 9 ? "nested arrays are not read" : "array element type \(elementType) is not a GGUF value type (0...12)")
            }
            let n = try count("element count of \(key)", minimumBytesEach: minimum)
            guard n <= GGUFFile.maxArrayCount else {
                throw error(at: at, item: key, "array of \(n) elements, expected at most \(GGUFFile.maxArrayCount)")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(type: elementType, key: key, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self, key))
        case 11: return .int64(try load(Int64.self, key))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, key)))
        default: throw error(at: offset - 4, item: key, "value type \(type) is not a GGUF value type (0...12)")
        }
    }
}
