import Foundation
@testable import GGUF

/// Writes GGUF bytes field by field, so tests can build valid files and break exactly one thing.
struct GGUFBuilder {
    struct Tensor { var name: String; var dims: [UInt64]; var type: UInt32; var data: [UInt8]; var offset: UInt64? = nil }
    var magic: UInt32 = 0x4655_4747
    var version: UInt32 = 3
    var metadata: [(key: String, type: UInt32, payload: [UInt8])] = []
    var tensors: [Tensor] = []
    var alignment = 32
    /// Overrides the counts written in the header.
    var tensorCount: UInt64?
    var metadataCount: UInt64?

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func string(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, u32 v: UInt32) { metadata.append((key, 4, Self.le(v))) }
    mutating func add(_ key: String, f32 v: Float) { metadata.append((key, 6, Self.le(v.bitPattern))) }
    mutating func add(_ key: String, string v: String) { metadata.append((key, 8, Self.string(v))) }
    mutating func add(_ key: String, strings v: [String]) {
        metadata.append((key, 9, Self.le(UInt32(8)) + Self.le(UInt64(v.count)) + v.flatMap(Self.string)))
    }

    mutating func addTensor(_ name: String, dims: [UInt64], type: GGMLType, data: [UInt8]) {
        tensors.append(Tensor(name: name, dims: dims, type: type.rawValue, data: data))
    }

    /// F32 tensor of the given values, shape [rows × cols] row-major (ggml dims [cols, rows]).
    mutating func addF32(_ name: String, rows: Int, cols: Int, values: [Float]) {
        addTensor(name, dims: [UInt64(cols), UInt64(rows)], type: .f32, data: values.flatMap { Self.le($0.bitPattern) })
    }

    func build() -> Data {
        var out: [UInt8] = Self.le(magic) + Self.le(version)
        out += Self.le(tensorCount ?? UInt64(tensors.count)) + Self.le(metadataCount ?? UInt64(metadata.count))
        for m in metadata { out += Self.string(m.key) + Self.le(m.type) + m.payload }
        var offsets: [UInt64] = []
        // Tensors are laid out aligned; the file ends with the last tensor's last byte (no tail
        // padding), so every shorter prefix loses data. A tensor given an explicit offset does not
        // size the file: tests use it to point past the end.
        var next: UInt64 = 0, end: UInt64 = 0
        for t in tensors {
            let o = t.offset ?? next
            offsets.append(o)
            if t.offset == nil { end = max(end, o + UInt64(t.data.count)) }
            next = max(next, (o + UInt64(t.data.count) + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment))
        }
        for (t, o) in zip(tensors, offsets) {
            out += Self.string(t.name) + Self.le(UInt32(t.dims.count)) + t.dims.flatMap(Self.le) + Self.le(t.type) + Self.le(o)
        }
        while out.count % alignment != 0 { out.append(0) }
        let dataStart = out.count
        out += [UInt8](repeating: 0, count: Int(end))
        for (t, o) in zip(tensors, offsets) where dataStart + Int(o) + t.data.count <= out.count {
            out.replaceSubrange((dataStart + Int(o))..<(dataStart + Int(o) + t.data.count), with: t.data)
        }
        return Data(out)
    }

    /// A small valid file: metadata of several types and two F32 tensors.
    static func sample() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.add("llama.block_count", u32: 2)
        b.add("llama.rope.freq_base", f32: 10000)
        b.add("tokenizer.ggml.tokens", strings: ["a", "b", "ab"])
        b.addF32("w", rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6])
        b.addF32("v", rows: 1, cols: 4, values: [-1, 0.5, 0.25, 8])
        return b
    }
}
