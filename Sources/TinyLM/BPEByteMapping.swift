/// GPT-2's reversible byte ↔ Unicode mapping. Byte-level BPE works on bytes, but vocab and merge
/// files are text: every byte gets a visible, non-whitespace character so that token strings
/// never contain spaces or control characters (spaces separate the two halves of a merge line).
/// Printable Latin-1 bytes (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) map to themselves; the other 68 bytes map,
/// in increasing byte order, to U+0100, U+0101, … (so the space byte 0x20 becomes `Ġ`, U+0120).
public enum BPEByteMapping {
    /// The bytes in GPT-2's order: printable bytes first, then the rest. Position = GPT-2's
    /// token id for the single-byte token, which is also the id our trainer gives it.
    public static let byteOrder: [UInt8] = {
        var order: [UInt8] = []
        for b in 0x21...0x7E { order.append(UInt8(b)) }
        for b in 0xA1...0xAC { order.append(UInt8(b)) }
        for b in 0xAE...0xFF { order.append(UInt8(b)) }
        let printable = Set(order)
        for b in 0...255 where !printable.contains(UInt8(b)) { order.append(UInt8(b)) }
        return order
    }()

    /// Byte → its Unicode scalar value.
    public static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// Unicode scalar value → byte, for scalars below 0x144 (the whole image of the map);
    /// -1 where the scalar is not the image of any byte.
    public static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for b in 0..<256 { table[Int(byteToScalar[b])] = Int16(b) }
        return table
    }()

    /// The mapped string of a byte sequence (how a token appears in vocab.json / merges.txt).
    public static func string(fromBytes bytes: some Sequence<UInt8>) -> String {
        var scalars = String.UnicodeScalarView()
        for b in bytes { scalars.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(scalars)
    }

    /// The bytes of a mapped token string, or nil if some character is not in the map's image.
    public static func bytes(fromString string: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(string.unicodeScalars.count)
        for s in string.unicodeScalars {
            guard s.value < 0x144 else { return nil }
            let b = scalarToByte[Int(s.value)]
            guard b >= 0 else { return nil }
            out.append(UInt8(b))
        }
        return out
    }
}
