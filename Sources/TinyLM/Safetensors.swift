import Foundation
import Parameters

/// Reader and writer of the safetensors format (https://github.com/huggingface/safetensors),
/// restricted to what TinyLM stores: little-endian F32 tensors.
///
///     [u64 LE: header length N] [N bytes: JSON header, space-padded] [data]
///     header = {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
///               "__metadata__": {"<key>": "<string>", ...}}
///
/// Offsets are relative to the start of the data. The reader trusts nothing: it checks the
/// header length, parses the JSON, and checks every entry against the layout the caller
/// expects (names, shapes, dtype, contiguous non-overlapping offsets covering exactly the data)
/// before any tensor memory is allocated or read. See schema/CHECKPOINT_FORMAT.md.
enum Safetensors {
    /// Largest header accepted (the reference implementation's limit too).
    static let maxHeaderBytes = 100 << 20
    static let metadataKey = "__metadata__"

    /// A validated header: where each expected tensor's bytes are, and the string metadata.
    struct Header {
        /// Byte range of each tensor, relative to `dataStart`, in file order.
        var ranges: [String: Range<Int>]
        var metadata: [String: String]
        var dataStart: Int
    }

    // MARK: - Writing

    /// The header bytes (length prefix included) for `tensors` laid out back to back in order.
    static func encodeHeader(tensors: [(name: String, shape: [Int])], metadata: [String: String]) throws -> [UInt8] {
        var object: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            let bytes = t.shape.reduce(1, *) * 4
            object[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        if !metadata.isEmpty { object[metadataKey] = metadata }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        let n = UInt64(json.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out += json
        return out
    }

    /// Writes the whole file to an open descriptor: header, then each tensor's values.
    static func write(fd: Int32, path: String, tensors: [ParameterTensor], metadata: [String: String]) throws {
        try FileIO.write(fd, try encodeHeader(tensors: tensors.map { ($0.name, $0.shape) }, metadata: metadata), path: path)
        for t in tensors {
            // fp32 is stored little-endian; every platform Swift runs on here is little-endian.
            try FileIO.write(fd, UnsafeRawPointer(t.value.baseAddress!), count: t.count * 4, path: path)
        }
    }

    // MARK: - Reading

    /// Reads and validates the header of an open file against `expected` (name → shape, in any
    /// order). Allocates only the header bytes, after checking their length against the file.
    static func readHeader(fd: Int32, path: String, expected: [(name: String, shape: [Int])]) throws -> Header {
        func fail(_ reason: String) -> ModelError { .invalidCheckpoint(file: path, reason: reason) }
        let fileSize = try FileIO.size(fd, path: path)
        guard fileSize >= 8 else { throw fail("file is \(fileSize) bytes, shorter than the 8-byte header length") }
        var lengthBytes: UInt64 = 0
        try FileIO.read(fd, into: &lengthBytes, count: 8, offset: 0, path: path)
        let length = UInt64(littleEndian: lengthBytes)
        guard length >= 2, length <= UInt64(maxHeaderBytes) else {
            throw fail("header length \(length), expected 2...\(maxHeaderBytes)")
        }
        guard length <= UInt64(fileSize - 8) else {
            throw fail("header length \(length) runs past the end of the \(fileSize)-byte file")
        }
        let headerLength = Int(length)
        var json = [UInt8](repeating: 0, count: headerLength)
        try json.withUnsafeMutableBytes { try FileIO.read(fd, into: $0.baseAddress!, count: headerLength, offset: 8, path: path) }
        let dataStart = 8 + headerLength
        let dataBytes = fileSize - dataStart

        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json), options: [])
        } catch {
            throw fail("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let root = parsed as? [String: Any] else { throw fail("header JSON is not an object") }

        var metadata: [String: String] = [:]
        if let raw = root[metadataKey] {
            guard let dict = raw as? [String: Any] else { throw fail("\(metadataKey) is not an object") }
            for (k, v) in dict {
                guard let s = v as? String else { throw fail("\(metadataKey).\(k) is not a string") }
                metadata[k] = s
            }
        }

        // Unknown names first, then the expected tensors in layout order, so the error names
        // the same tensor on every run (dictionary order is randomised per process).
        if let unknown = root.keys.filter({ $0 != metadataKey }).sorted().first(where: { name in
            !expected.contains(where: { $0.name == name })
        }) {
            throw fail("unknown tensor '\(unknown)': this model has no tensor of that name")
        }
        var ranges: [String: Range<Int>] = [:]
        for (name, shapeExpected) in expected {
            guard let raw = root[name] else { throw fail("tensor '\(name)' (shape \(shapeExpected)) is missing") }
            guard let entry = raw as? [String: Any] else { throw fail("tensor '\(name)': entry is not an object") }
            let extraKeys = Set(entry.keys).subtracting(["dtype", "shape", "data_offsets"])
            guard extraKeys.isEmpty else { throw fail("tensor '\(name)': unexpected keys \(extraKeys.sorted())") }
            guard let dtype = entry["dtype"] as? String else { throw fail("tensor '\(name)': dtype missing or not a string") }
            guard dtype == "F32" else { throw fail("tensor '\(name)': dtype \(dtype), expected F32") }
            guard let shape = integers(entry["shape"]) else {
                throw fail("tensor '\(name)': shape missing or not a list of non-negative integers")
            }
            guard shape == shapeExpected else {
                throw fail("tensor '\(name)': shape \(shape), expected \(shapeExpected)")
            }
            guard let offsets = integers(entry["data_offsets"]), offsets.count == 2 else {
                throw fail("tensor '\(name)': data_offsets missing or not two non-negative integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= dataBytes else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] outside the \(dataBytes) data bytes")
            }
            // The shape equals the expected (validated, capped) one: no overflow here.
            let bytes = shape.reduce(1, *) * 4
            guard end - begin == bytes else {
                throw fail("tensor '\(name)': data_offsets span \(end - begin) bytes, expected shape product × 4 = \(bytes)")
            }
            ranges[name] = begin..<end
        }
        // Contiguous and non-overlapping: sorted by start, each begins where the previous ends,
        // from 0 to exactly the end of the file.
        var cursor = 0
        for (name, range) in ranges.sorted(by: { ($0.value.lowerBound, $0.value.upperBound) < ($1.value.lowerBound, $1.value.upperBound) }) {
            guard range.lowerBound == cursor else {
                throw fail(range.lowerBound < cursor
                    ? "tensor '\(name)': data_offsets [\(range.lowerBound), \(range.upperBound)] overlap the previous tensor (ends at \(cursor))"
                    : "tensor '\(name)': data_offsets start at \(range.lowerBound), leaving a gap after byte \(cursor)")
            }
            cursor = range.upperBound
        }
        guard cursor == dataBytes else {
            throw fail("tensors cover \(cursor) data bytes but the file holds \(dataBytes) after the header")
        }
        return Header(ranges: ranges, metadata: metadata, dataStart: dataStart)
    }

    /// Reads each tensor's bytes straight into its value buffer (the header is already validated).
    static func readTensors(fd: Int32, path: String, header: Header, into tensors: [ParameterTensor]) throws {
        for t in tensors {
            guard let range = header.ranges[t.name], range.count == t.count * 4 else {
                throw ModelError.invalidCheckpoint(file: path, reason: "tensor '\(t.name)' has no validated range of \(t.count * 4) bytes")
            }
            try FileIO.read(fd, into: UnsafeMutableRawPointer(t.value.baseAddress!), count: range.count,
                            offset: header.dataStart + range.lowerBound, path: path)
        }
    }

    /// A JSON array of non-negative integral numbers, or nil.
    private static func integers(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        out.reserveCapacity(array.count)
        for element in array {
            guard let number = element as? NSNumber else { return nil }
            let d = number.doubleValue
            guard d >= 0, d < 0x1p53, d == d.rounded(), let i = Int(exactly: d) else { return nil }
            out.append(i)
        }
        return out
    }
}
