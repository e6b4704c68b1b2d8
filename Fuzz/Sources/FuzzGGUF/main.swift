import Foundation
import GGUF

/// A GGUF file: the header parse either refuses the bytes with a GGUFError or yields tensors
/// whose data lies inside the file, each of which dequantizes to its element count or is
/// refused (non-finite values) — never a crash or an out-of-bounds read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Data(bytes: start, count: count)
    guard let file = try? GGUFFile(bytes: bytes, path: "fuzz") else { return 0 }
    for t in file.tensors {
        precondition(t.fileOffset >= file.dataOffset && t.fileOffset + t.byteCount <= count, "tensor \(t.name) lies outside the file")
        if let values = try? file.dequantize(t) {
            precondition(values.count == t.elementCount, "tensor \(t.name) dequantized to \(values.count) values, expected \(t.elementCount)")
        }
    }
    return 0
}
