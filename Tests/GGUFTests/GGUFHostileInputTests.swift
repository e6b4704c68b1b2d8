import Foundation
import XCTest
@testable import GGUF

/// The GGUF reader on valid files and on every way a file can be broken: each refusal is a
/// GGUFError that names where and what, never a crash or a huge allocation.
final class GGUFHostileInputTests: XCTestCase {
    func open(_ b: GGUFBuilder) throws(GGUFError) -> GGUFFile { try GGUFFile(bytes: b.build(), path: "t.gguf") }

    func refusal(_ b: GGUFBuilder, file: StaticString = #filePath, line: UInt = #line) -> GGUFError? {
        do { _ = try open(b); XCTFail("accepted a broken file", file: file, line: line); return nil } catch { return error }
    }

    func assertRefused(_ b: GGUFBuilder, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = refusal(b, file: file, line: line) else { return }
        XCTAssertTrue(e.description.contains(fragment), "\(e.description) lacks \"\(fragment)\"", file: file, line: line)
    }

    func testReadsMetadataAndTensors() throws {
        let f = try open(.sample())
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(try f.string("general.architecture"), "llama")
        XCTAssertEqual(try f.integer("llama.block_count"), 2)
        XCTAssertEqual(try f.float("llama.rope.freq_base"), 10000)
        XCTAssertEqual(try f.strings("tokenizer.ggml.tokens"), ["a", "b", "ab"])
        let w = try f.tensor("w")
        XCTAssertEqual(w.rowMajorShape, [2, 3])
        XCTAssertEqual(try f.dequantize(w), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try f.dequantize(f.tensor("v")), [-1, 0.5, 0.25, 8])
        XCTAssertEqual(f.dataOffset % 32, 0)
    }

    func testWrongValueTypesAndMissingKeysAreNamed() throws {
        let f = try open(.sample())
        XCTAssertThrowsError(try f.integer("general.architecture")) { XCTAssertTrue("\($0)".contains("metadata value is string, expected a non-negative integer"), "\($0)") }
        XCTAssertThrowsError(try f.string("nope")) { XCTAssertTrue("\($0)".contains("(nope): metadata key is missing"), "\($0)") }
        XCTAssertThrowsError(try f.tensor("x")) { XCTAssertTrue("\($0)".contains("no such tensor"), "\($0)") }
    }

    /// Every prefix of a valid file is refused with a message, never read past its end.
    func testEveryTruncationIsRefused() throws {
        let bytes = GGUFBuilder.sample().build()
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try GGUFFile(bytes: bytes.prefix(n), path: "t.gguf"), "prefix \(n)") { e in
                XCTAssertTrue(e is GGUFError, "prefix \(n): \(e)")
            }
        }
    }

    /// Every single flipped byte is either refused with a GGUFError or still reads consistently.
    func testFlippedBytesNeverCrash() throws {
        let bytes = GGUFBuilder.sample().build()
        for i in 0..<bytes.count {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var copy = bytes
                copy[i] ^= mask
                guard let f = try? GGUFFile(bytes: copy, path: "t.gguf") else { continue }
                for t in f.tensors {
                    XCTAssertLessThanOrEqual(t.fileOffset + t.byteCount, copy.count)
                    _ = try? f.dequantize(t)
                }
            }
        }
    }

    func testHeaderFields() {
        var b = GGUFBuilder.sample(); b.magic = 0x4655_4746
        assertRefused(b, "at offset 0: magic is 0x46554746, expected 0x46554747")
        b = .sample(); b.version = 1
        assertRefused(b, "version 1; this reader reads versions 2 and 3")
        b = .sample(); b.tensorCount = 1 << 40
        assertRefused(b, "tensor count is 1099511627776, but")
        b = .sample(); b.metadataCount = .max
        assertRefused(b, "metadata count is 18446744073709551615")
    }

    func testMetadataRules() {
        var b = GGUFBuilder.sample(); b.add("llama.block_count", u32: 3)
        assertRefused(b, "(llama.block_count): metadata key appears twice")
        b = .sample(); b.metadata.append(("k", 8, GGUFBuilder.le(UInt64(1) << 40)))
        assertRefused(b, "value of k is 1099511627776 bytes long, expected at most")
        b = .sample(); b.metadata.append(("k", 8, GGUFBuilder.le(UInt64(2)) + [0xC3, 0x28]))
        assertRefused(b, "value of k is not valid UTF-8")
        b = .sample(); b.metadata.append(("k", 13, []))
        assertRefused(b, "value type 13 is not a GGUF value type")
        b = .sample(); b.metadata.append(("k", 7, [2]))
        assertRefused(b, "bool is 2, expected 0 or 1")
        b = .sample(); b.metadata.append(("k", 9, GGUFBuilder.le(UInt32(9)) + GGUFBuilder.le(UInt64(1))))
        assertRefused(b, "nested arrays are not read")
        b = .sample(); b.metadata.append(("k", 9, GGUFBuilder.le(UInt32(4)) + GGUFBuilder.le(UInt64(1) << 50)))
        assertRefused(b, "element count of k is 1125899906842624")
        b = .sample(); b.metadata.append(("general.alignment", 4, GGUFBuilder.le(UInt32(24))))
        assertRefused(b, "alignment is uint32(24), expected a uint32 power of two")
    }

    func testTensorRules() {
        var b = GGUFBuilder.sample(); b.tensors[1].name = "w"
        assertRefused(b, "(w): tensor name appears twice")
        b = .sample(); b.tensors[0].dims = []
        assertRefused(b, "(w): 0 dimensions, expected 1...4")
        b = .sample(); b.tensors[0].dims = [3, 0]
        assertRefused(b, "dimension 1 is 0")
        b = .sample(); b.tensors[0].dims = [1 << 30, 1 << 30]
        assertRefused(b, "more than 68719476736 elements")
        b = .sample(); b.tensors[0].type = 77
        assertRefused(b, "type id 77 is not a ggml type")
        b = .sample(); b.tensors[0].type = GGMLType.q2_K.rawValue
        assertRefused(b, "type Q2_K is not read; readable types: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16")
        b = .sample(); b.tensors[0].type = GGMLType.q8_0.rawValue
        assertRefused(b, "row length 3 is not a multiple of Q8_0's block of 32")
        b = .sample(); b.tensors[1].offset = 8
        assertRefused(b, "data offset 8 is not a multiple of the alignment 32")
        b = .sample(); b.tensors[1].offset = 0
        assertRefused(b, "(v): data overlaps tensor w's")
        b = .sample(); b.tensors[1].offset = 1 << 20
        assertRefused(b, "(v): data [1048576, +16) runs past the end of the data section")
    }

    func testNonFiniteWeightsAreRefusedByName() throws {
        var b = GGUFBuilder()
        b.addF32("bad", rows: 1, cols: 2, values: [1, .nan])
        let f = try open(b)
        XCTAssertThrowsError(try f.dequantize(f.tensor("bad"))) { XCTAssertTrue("\($0)".contains("(bad): value 1 dequantizes to nan"), "\($0)") }
    }
}
