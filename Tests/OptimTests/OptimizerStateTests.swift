import Foundation
import Parameters
import XCTest
@testable import Optim

final class OptimizerStateTests: XCTestCase {
    typealias Factory = (ParameterStore) throws -> any Optimizer

    static let schedule = LRSchedule.warmupCosine(peak: 0.01, warmupSteps: 5, totalSteps: 40, minimum: 0.001)
    static func factories() -> [(String, Factory)] { [
        ("moclip", { try MoClip(store: $0, groups: ParameterGroup.decayMatricesOnly($0, weightDecay: 0.1), schedule: schedule) }),
        ("moclip-global-rotation", { store in
            var c = MoClipConfig(); c.granularity = .global; c.clip = .momentumRotation(maxAngle: 0.2)
            return try MoClip(store: store, schedule: schedule, weightDecay: 0.05, config: c) }),
        ("adam-atan2", { try MoClip(store: $0, schedule: schedule, config: .adamAtan2) }),
        ("adamw", { try AdamW(store: $0, groups: ParameterGroup.decayMatricesOnly($0, weightDecay: 0.1), schedule: schedule) }),
    ] }

    func temporaryPath(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("optim-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.appendingPathComponent(name).path
    }

    /// Train 8 steps, save (file) + parameters, train 8 more; a fresh process-like restart from
    /// the file must reach bit-identical parameters and state.
    func testResumeIsBitIdentical() throws {
        for (k, (name, make)) in Self.factories().enumerated() {
            // The first runs the multi-threaded path; the rest stay small for debug-build speed.
            let shapes = k == 0 ? mixedShapes : smallShapes
            let path = try temporaryPath("\(name).state")
            let store = try makeStore(shapes, seed: 99)
            let opt = try make(store)
            for s in 1...8 { writeQuadraticGradients(store, step: s); try opt.step() }
            try opt.saveState(to: path)
            let savedParameters = snapshot(store)
            for s in 9...16 { writeQuadraticGradients(store, step: s); try opt.step() }

            let resumedStore = try makeStore(shapes, seed: 12345)   // different init, overwritten below
            restore(resumedStore, savedParameters)
            let resumed = try make(resumedStore)
            try resumed.loadState(from: path)
            XCTAssertEqual(resumed.stepCount, 8, name)
            for s in 9...16 { writeQuadraticGradients(resumedStore, step: s); try resumed.step() }
            XCTAssertTrue(bitsEqual(snapshot(store), snapshot(resumedStore)), "\(name): resumed parameters differ")
            XCTAssertEqual(opt.encodeState(), resumed.encodeState(), "\(name): resumed optimizer state differs")
        }
    }

    func testEncodedSizeAndRoundTrip() throws {
        let store = try makeStore(mixedShapes)
        let opt = try MoClip(store: store, schedule: .constant(0.01))
        for s in 1...3 { writeQuadraticGradients(store, step: s); try opt.step() }
        let bytes = opt.encodeState()
        XCTAssertEqual(bytes.count, opt.encodedStateSize)
        XCTAssertEqual(Array(bytes.prefix(8)), Array("LGDOPTST".utf8))
        let other = try MoClip(store: store, schedule: .constant(0.01))
        try other.restoreState(from: bytes)
        XCTAssertEqual(other.encodeState(), bytes)
        XCTAssertEqual(other.stepCount, 3)
    }

    /// Every rejection leaves the optimizer exactly as it was.
    func assertRejected(_ bytes: [UInt8], by opt: MoClip, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let before = opt.encodeState()
        assertThrowsMessage(try opt.restoreState(from: bytes), fragment, file: file, line: line)
        XCTAssertEqual(opt.encodeState(), before, "state changed by a rejected load", file: file, line: line)
    }

    func testCorruptAndMismatchedStatesAreRejected() throws {
        let store = try makeStore(mixedShapes)
        let source = try MoClip(store: store, schedule: .constant(0.01))
        for s in 1...2 { writeQuadraticGradients(store, step: s); try source.step() }
        let good = source.encodeState()
        let target = try MoClip(store: store, schedule: .constant(0.01))
        writeQuadraticGradients(store, step: 9); try target.step()

        var flipped = good; flipped[good.count / 2] ^= 0x10
        assertRejected(flipped, by: target, "checksum mismatch")
        assertRejected(Array(good.dropLast(100)), by: target, "truncated")
        assertRejected(Array(good.prefix(20)), by: target, "truncated: the step counter")
        assertRejected([], by: target, "truncated: the magic number")
        assertRejected(good + [0], by: target, "1 unexpected bytes after the checksum")
        var magic = good; magic[0] = UInt8(ascii: "X")
        assertRejected(magic, by: target, "bad magic")
        var version = good; version[8] = 9
        assertRejected(version, by: target, "format version 9")

        // Other tensors: a different name, a different shape, a different count.
        let renamed = try makeStore(mixedShapes.map { $0.0 == "b1" ? ("bias1", $0.1) : $0 })
        assertRejected(try MoClip(store: renamed, schedule: .constant(0.01)).encodeState(), by: target,
                       "tensor 1 is 'bias1' in the state, expected 'b1'")
        let reshaped = try makeStore(mixedShapes.map { $0.0 == "w1" ? ($0.0, [29, 37]) : $0 })
        assertRejected(try MoClip(store: reshaped, schedule: .constant(0.01)).encodeState(), by: target,
                       "tensor 'w1' has shape [29, 37] in the state, expected [37, 29]")
        let fewer = try makeStore(Array(mixedShapes.dropLast()))
        assertRejected(try MoClip(store: fewer, schedule: .constant(0.01)).encodeState(), by: target,
                       "state holds 4 tensors, this optimizer has 5")
        // Another algorithm's moments.
        assertRejected(try AdamW(store: store, schedule: .constant(0.01)).encodeState(), by: target,
                       "state was written by AdamW, this optimizer is MoClip/Adam-atan2")
    }

    func testNonFiniteMomentsWithValidChecksumAreRejected() throws {
        let store = try makeStore([("w", [4, 4])])
        let opt = try MoClip(store: store, schedule: .constant(0.01))
        var bytes = opt.encodeState()
        // Header 32 + name length 4 + "w" 1 + rank 4 + dims 16 = 57: first m element; v follows 16 floats later.
        let vOffset = 57 + 4 * 16
        withUnsafeBytes(of: Float(-1).bitPattern.littleEndian) { for k in 0..<4 { bytes[vOffset + 4 + k] = $0[k] } }
        let sum = bytes.withUnsafeBytes { StateChecksum.compute(UnsafeRawBufferPointer(rebasing: $0[0..<(bytes.count - 8)])) }
        withUnsafeBytes(of: sum.littleEndian) { for k in 0..<8 { bytes[bytes.count - 8 + k] = $0[k] } }
        assertRejected(bytes, by: opt, "tensor 'w' second moment [1] is -1.0, expected finite and ≥ 0")
    }

    /// The streamed checksum equals the one-shot one whatever the piece sizes (carried partial
    /// stripes, empty pieces, a tail shorter than a stripe), and the saved file is exactly
    /// `encodeState()`'s bytes.
    func testStreamedChecksumAndSavedFileMatchTheOneShotEncoding() throws {
        var rng = TestRNG(5)
        for length in [0, 1, 31, 32, 33, 95, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let expected = bytes.withUnsafeBytes { StateChecksum.compute($0) }
            for trial in 0..<6 {
                var stream = StateChecksum.Stream()
                var at = 0
                while at < length {
                    let piece = trial == 0 ? 1 : Int(rng.next() % UInt64(40 * trial)) // 0-length pieces included
                    let end = min(length, at + piece)
                    bytes.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[at..<end])) }
                    at = end
                }
                XCTAssertEqual(stream.finish(), expected, "length \(length) trial \(trial)")
            }
        }
        let store = try makeStore(mixedShapes)
        let opt = try MoClip(store: store, schedule: .constant(0.01))
        for s in 1...3 { writeQuadraticGradients(store, step: s); try opt.step() }
        let path = try temporaryPath("streamed.state")
        try opt.saveState(to: path)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), opt.encodeState())
    }

    func testFileErrors() throws {
        let store = try makeStore(mixedShapes)
        let opt = try MoClip(store: store, schedule: .constant(0.01))
        assertThrowsMessage(try opt.loadState(from: "/nonexistent-dir/x.state"), "open failed")
        assertThrowsMessage(try opt.saveState(to: "/nonexistent-dir/x.state"), "open failed")
        let path = try temporaryPath("big.state")
        try Data(repeating: 0, count: opt.encodedStateSize + 1).write(to: URL(fileURLWithPath: path))
        assertThrowsMessage(try opt.loadState(from: path), "larger than the")
        let short = try temporaryPath("short.state")
        try Data(opt.encodeState().prefix(1000)).write(to: URL(fileURLWithPath: short))
        assertThrowsMessage(try opt.loadState(from: short), "truncated")
        // saveState replaces atomically and leaves no temporary behind.
        let good = try temporaryPath("good.state")
        try opt.saveState(to: good)
        try opt.saveState(to: good)
        XCTAssertFalse(FileManager.default.fileExists(atPath: good + ".tmp"))
        try opt.loadState(from: good)
    }

    func testChecksumDetectsEverySingleBitFlipInASmallState() throws {
        let store = try makeStore([("v", [3])])
        let opt = try MoClip(store: store, schedule: .constant(0.01))
        let good = opt.encodeState()
        for byte in 0..<(good.count - 8) {
            for bit in 0..<8 {
                var bad = good; bad[byte] ^= UInt8(1 << bit)
                XCTAssertThrowsError(try opt.restoreState(from: bad), "flip at byte \(byte) bit \(bit) accepted")
            }
        }
    }
}
