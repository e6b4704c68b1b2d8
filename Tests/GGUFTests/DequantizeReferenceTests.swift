import Foundation
import XCTest
@testable import GGUF

/// Every block type the reader dequantizes, against the independent numpy reader
/// (scripts/reference/gguf_llama.py) on the fuzz seed (Fuzz/make_gguf_seed.py: one tensor of each
/// type with random payloads): the values must be bit-identical (both follow ggml's float operations).
final class DequantizeReferenceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testEveryReadableTypeEqualsTheNumpyReference() throws {
        let seed = NSTemporaryDirectory() + "seed-\(UUID().uuidString).gguf"
        defer { try? FileManager.default.removeItem(atPath: seed) }
        let generator = Process()
        generator.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        generator.arguments = ["python3", Self.root + "/Fuzz/make_gguf_seed.py", seed]
        try generator.run()
        generator.waitUntilExit()
        XCTAssertEqual(generator.terminationStatus, 0, "Fuzz/make_gguf_seed.py failed")
        let file = try GGUFFile(path: seed)
        XCTAssertEqual(Set(file.tensors.map(\.type)), Set(GGMLType.readable), "the seed holds every readable type")
        let out = NSTemporaryDirectory() + "dequant-\(UUID().uuidString).f32"
        defer { try? FileManager.default.removeItem(atPath: out) }
        for info in file.tensors {
            let python = Process()
            python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            python.arguments = ["python3", Self.root + "/scripts/reference/gguf_llama.py", "dequant", "--gguf", seed,
                                "--tensor", info.name, "--out", out]
            try python.run()
            python.waitUntilExit()
            XCTAssertEqual(python.terminationStatus, 0, "reference failed on \(info.name)")
            let reference = try Data(contentsOf: URL(fileURLWithPath: out)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let ours = try file.dequantize(info)
            XCTAssertEqual(ours.count, info.elementCount)
            XCTAssertEqual(ours.map(\.bitPattern), reference.map(\.bitPattern), "\(info.type.name) differs from the reference")
        }
    }
}
