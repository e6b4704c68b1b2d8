import Foundation
import XCTest
@testable import TinyLM

final class CheckpointTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "tinylm-ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    var weightsPath: String { directory + "/model.safetensors" }
    var configPath: String { directory + "/config.json" }

    func savedToy(seed: UInt64 = 9, metadata: [String: String] = ["tokenizer_sha256": "abc123", "step": "40"]) throws -> TinyLMModel {
        let model = try toyModel(seed: seed, vocab: 48, maxSequence: 16)
        try ModelCheckpoint.save(model, to: directory, metadata: metadata)
        return model
    }

    func assertLoadFails(_ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelCheckpoint.load(from: directory), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(fragment), "error '\(e)' does not mention '\(fragment)'", file: file, line: line)
        }
    }

    // MARK: Round trip

    func testRoundTripGivesBitIdenticalHidden() throws {
        let model = try savedToy()
        let tokens: [UInt32] = [1, 2, 3, 47, 0, 5, 6]
        let rows: [Int32] = [0, 4, 7]
        let before = try hidden(model, tokens, rows)
        let (loaded, metadata) = try ModelCheckpoint.load(from: directory)
        XCTAssertEqual(metadata, ["tokenizer_sha256": "abc123", "step": "40"])
        XCTAssertEqual(loaded.config, model.config)
        XCTAssertEqual(loaded.store.tensors.map(\.name), model.store.tensors.map(\.name))
        for (a, b) in zip(loaded.store.tensors, model.store.tensors) {
            XCTAssertEqual(Array(a.value).map(\.bitPattern), Array(b.value).map(\.bitPattern), a.name)
        }
        let after = try hidden(loaded, tokens, rows)
        XCTAssertEqual(before.map(\.bitPattern), after.map(\.bitPattern))
        // No temporary files left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).sorted(), ["config.json", "model.safetensors"])
    }

    func testHashIsSHA256OfWeightsFile() throws {
        _ = try savedToy()
        let h = try ModelCheckpoint.hash(of: directory)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weightsPath)))
        XCTAssertEqual(h, TokenizerSHA256.hexDigest(bytes), "streaming hash differs from the one-shot reference")
        XCTAssertEqual(h.count, 64)
        // Known vectors for the streaming implementation across block boundaries.
        var s = SHA256Stream()
        s.update(Array("abc".utf8))
        XCTAssertEqual(s.finalizeHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        for n in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000] {
            let message = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            var piecewise = SHA256Stream()
            var i = 0
            while i < n { let j = min(n, i + 1 + i % 13); piecewise.update(Array(message[i..<j])); i = j }
            XCTAssertEqual(piecewise.finalizeHex(), TokenizerSHA256.hexDigest(message), "length \(n)")
        }
        // A different model has a different identity.
        _ = try savedToy(seed: 10)
        XCTAssertNotEqual(try ModelCheckpoint.hash(of: directory), h)
    }

    func testReservedMetadataKeyRejected() throws {
        let model = try toyModel()
        XCTAssertThrowsError(try ModelCheckpoint.save(model, to: directory, metadata: ["tinylm.config": "x"])) { e in
            XCTAssertTrue("\(e)".contains("reserved prefix"), "\(e)")
        }
    }

    // MARK: Hostile safetensors files

    /// The file split into header object and data, and reassembled after `edit`.
    func rewriteHeader(_ edit: (inout [String: Any]) -> Void) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weightsPath)))
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        edit(&header)
        let json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64($0))) }
        out += json
        out += bytes[(8 + n)...]
        try Data(out).write(to: URL(fileURLWithPath: weightsPath))
    }

    func editEntry(_ name: String, _ edit: @escaping (inout [String: Any]) -> Void) throws {
        try rewriteHeader { h in
            var e = h[name] as! [String: Any]
            edit(&e)
            h[name] = e
        }
    }

    func rawBytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: weightsPath))) }
    func writeRaw(_ b: [UInt8]) throws { try Data(b).write(to: URL(fileURLWithPath: weightsPath)) }

    func testUnchangedRewriteStillLoads() throws {
        _ = try savedToy()
        try rewriteHeader { _ in }
        XCTAssertNoThrow(try ModelCheckpoint.load(from: directory))
    }

    func testTruncatedFilesRejected() throws {
        _ = try savedToy()
        let bytes = try rawBytes()
        try writeRaw(Array(bytes.dropLast(4)))
        assertLoadFails("outside the")          // the last tensor's end passes the data end
        try writeRaw(Array(bytes.prefix(5)))
        assertLoadFails("shorter than the 8-byte header length")
        try writeRaw(Array(bytes.prefix(100)))
        assertLoadFails("runs past the end")
    }

    func testHugeHeaderLengthRejectedBeforeAllocation() throws {
        _ = try savedToy()
        var bytes = try rawBytes()
        for i in 0..<8 { bytes[i] = 0 }
        bytes[5] = 1                            // 2^40
        try writeRaw(bytes)
        assertLoadFails("header length 1099511627776, expected 2...")
        for i in 0..<8 { bytes[i] = 0xFF }
        try writeRaw(bytes)
        assertLoadFails("header length 18446744073709551615")
    }

    func testOffsetsOutOfBoundsRejected() throws {
        _ = try savedToy()
        try editEntry("final_norm") { $0["data_offsets"] = [1 << 40, (1 << 40) + 256] }
        assertLoadFails("tensor 'final_norm': data_offsets [1099511627776, 1099511628032] outside")
    }

    func testOverlappingOffsetsRejected() throws {
        _ = try savedToy()
        // Shifted back 4 bytes into the tensor before it (the embedding).
        try editEntry("layers.0.attn_norm") { e in
            let o = e["data_offsets"] as! [Int]
            e["data_offsets"] = [o[0] - 4, o[1] - 4]
        }
        assertLoadFails("tensor 'layers.0.attn_norm': data_offsets [12284, 12540] overlap the previous tensor (ends at 12288)")
        // Two tensors on the same bytes.
        _ = try savedToy()
        var mlpNormOffsets: Any = 0
        try rewriteHeader { h in mlpNormOffsets = (h["layers.0.mlp_norm"] as! [String: Any])["data_offsets"]! }
        try editEntry("layers.1.mlp_norm") { $0["data_offsets"] = mlpNormOffsets }
        assertLoadFails("overlap the previous tensor")
    }

    func testGapInOffsetsRejected() throws {
        _ = try savedToy()
        try editEntry("layers.0.attn_norm") { e in
            let o = e["data_offsets"] as! [Int]
            e["data_offsets"] = [o[0] + 4, o[1] + 4]
        }
        assertLoadFails("tensor 'layers.0.attn_norm': data_offsets start at 12292, leaving a gap after byte 12288")
    }

    func testWrongDtypeRejected() throws {
        _ = try savedToy()
        try editEntry("layers.1.mlp.w_up") { $0["dtype"] = "F16" }
        assertLoadFails("tensor 'layers.1.mlp.w_up': dtype F16, expected F32")
    }

    func testWrongShapeRejected() throws {
        _ = try savedToy()
        try editEntry("layers.0.attn.wq") { $0["shape"] = [32, 128] }     // same byte count
        assertLoadFails("tensor 'layers.0.attn.wq': shape [32, 128], expected [64, 64]")
        _ = try savedToy()
        try editEntry("layers.0.attn.wq") { $0["shape"] = [64, 64.5] }
        assertLoadFails("shape missing or not a list of non-negative integers")
    }

    func testShapeAndOffsetsDisagreeRejected() throws {
        _ = try savedToy()
        try editEntry("final_norm") { e in
            let o = e["data_offsets"] as! [Int]
            e["data_offsets"] = [o[0], o[1] - 4]
        }
        assertLoadFails("expected shape product × 4 = 256")
    }

    func testMissingAndExtraTensorsRejected() throws {
        _ = try savedToy()
        try rewriteHeader { $0["final_norm"] = nil }
        assertLoadFails("tensor 'final_norm' (shape [64]) is missing")
        _ = try savedToy()
        try rewriteHeader { $0["lm_head"] = ["dtype": "F32", "shape": [1], "data_offsets": [0, 4]] }
        assertLoadFails("unknown tensor 'lm_head'")
    }

    func testFlippedHeaderBytesRejected() throws {
        _ = try savedToy()
        let bytes = try rawBytes()
        let headerText = String(decoding: bytes[8..<200], as: UTF8.self)
        // A structural byte: the opening brace.
        var b = bytes
        b[8] ^= 0x01
        try writeRaw(b)
        assertLoadFails("header is not valid JSON")
        // A byte inside a tensor name.
        let at = 8 + headerText.utf8.count - String(headerText.drop(while: { $0 != "\"" }).dropFirst()).utf8.count
        b = bytes
        b[at + 1] ^= 0x01
        try writeRaw(b)
        assertLoadFails("unknown tensor")
    }

    /// Every 5th header byte flipped in turn: the load either fails with an error, or (for a byte
    /// in free-form metadata) gives exactly the saved weights. Never wrong weights, never a crash.
    func testFlippedHeaderByteSweep() throws {
        let model = try savedToy()
        let bytes = try rawBytes()
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
        var rejected = 0, harmless = 0
        for i in stride(from: 8, to: 8 + n, by: 5) {
            var b = bytes
            b[i] ^= 0x04
            try writeRaw(b)
            do {
                let (loaded, _) = try ModelCheckpoint.load(from: directory)
                for (x, y) in zip(loaded.store.tensors, model.store.tensors) {
                    XCTAssertEqual(Array(x.value), Array(y.value), "flip at byte \(i) loaded different \(x.name)")
                }
                harmless += 1
            } catch {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, harmless, "most header bytes are structural")
    }

    func testNonFiniteWeightRejected() throws {
        _ = try savedToy()
        var bytes = try rawBytes()
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
        // Overwrite the last float (final_norm's last element) with a NaN.
        let end = bytes.count
        bytes.replaceSubrange((end - 4)..<end, with: [0x00, 0x00, 0xC0, 0x7F])
        XCTAssertGreaterThan(end, 8 + n)
        try writeRaw(bytes)
        assertLoadFails("tensor 'final_norm' element 63 is nan, expected finite")
    }

    // MARK: config.json

    func testConfigMismatchRejected() throws {
        _ = try savedToy()
        let original = try String(contentsOfFile: configPath, encoding: .utf8)
        // A change of shape: the tensors no longer fit.
        try original.replacingOccurrences(of: "\"ffnHidden\" : 176", with: "\"ffnHidden\" : 160")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        assertLoadFails("shape [176, 64], expected [160, 64]")
        // A change that keeps every shape: caught by the config embedded in the weights.
        try original.replacingOccurrences(of: "\"ropeTheta\" : 10000", with: "\"ropeTheta\" : 500000")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        assertLoadFails("config mismatch")
        // Invalid config.
        try original.replacingOccurrences(of: "\"kvHeads\" : 2", with: "\"kvHeads\" : 3")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        assertLoadFails("not a multiple of kvHeads")
        // Not a manifest at all.
        try "{\"hello\": 1}".write(toFile: configPath, atomically: true, encoding: .utf8)
        assertLoadFails("does not decode as a checkpoint manifest")
        try original.replacingOccurrences(of: "\"format_version\" : 1", with: "\"format_version\" : 2")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        assertLoadFails("format_version 2, expected 1")
    }

    /// config.json from one save beside weights from another (a crash between the renames).
    func testFilesFromDifferentSavesRejected() throws {
        _ = try savedToy(seed: 1)
        let firstConfig = try Data(contentsOf: URL(fileURLWithPath: configPath))
        _ = try savedToy(seed: 2)
        try firstConfig.write(to: URL(fileURLWithPath: configPath))
        assertLoadFails("the files come from different saves")
    }

    func testMissingFilesReported() throws {
        assertLoadFails("config.json: cannot open for reading")
        _ = try savedToy()
        try FileManager.default.removeItem(atPath: weightsPath)
        assertLoadFails("model.safetensors: cannot open for reading")
    }
}
