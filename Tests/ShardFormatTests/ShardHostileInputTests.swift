import Foundation
import XCTest
import LogitCore
@testable import ShardFormat

/// Corrupt, truncated and forged files: every failure must be a `ShardError` naming the file,
/// never a crash and never data that differs from what was written.
final class ShardHostileInputTests: XCTestCase {
    var dir = ""
    var input: [SequenceRecord] = []
    var path = ""
    var locations: [SequenceLocation] = []
    var original: [UInt8] = []

    override func setUpWithError() throws {
        dir = temporaryDirectory(self)
        var f = RecordFactory(seed: 42, vocab: 151_936)
        input = (0..<30).map { f.record(key: "h\($0)") }
        (path, locations, _) = try writeSealed(input, provenance: provenance(vocab: 151_936),
                                               options: ShardWriterOptions(targetBlockBytes: 4096), dir: dir)
        original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Opens `bytes` as a sealed shard and reads everything. Returns the error, or nil when every
    /// sequence decoded equal to what was written.
    func readAll(_ bytes: [UInt8], access: ShardReader.Access = .mmap) -> ShardError? {
        let p = dir + "/probe-\(UUID().uuidString).shard"
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: p) }
        do throws(ShardError) {
            let reader = try ShardReader(sealedAt: p, access: access)
            for b in 0..<reader.blockCount { try reader.verifyBlock(b) }
            for (r, loc) in zip(input, locations) {
                let got = try reader.sequence(block: loc.block, ordinal: loc.ordinal)
                XCTAssertEqual(got, canonicalized(r, logprobScale: 64), "undetected corruption returned wrong data")
            }
            XCTAssertEqual(reader.sequenceCount, input.count)
            return nil
        } catch {
            XCTAssertEqual(error.path, p, "error must name the file")
            XCTAssertFalse(error.reason.isEmpty)
            return error
        }
    }

    func regionBoundaries() throws -> [Int] {
        let reader = try ShardReader(sealedAt: path)
        var cuts = [0, 1, 8, 63, 64, reader.headerLength - 1, reader.headerLength]
        for b in 0..<reader.blockCount {
            let info = reader.blockInfo(b)
            let o = Int(info.offset)
            cuts += [o + 1, o + 63, o + 64, o + 65, o + 64 + info.storedBytes - 1, o + 64 + info.storedBytes, Int(info.end)]
        }
        let size = original.count
        cuts += [size - 64 - 1, size - 64, size - 63, size - 8, size - 1]
        return cuts.filter { $0 >= 0 && $0 < size }
    }

    func testTruncationAtEveryRegionBoundaryIsATypedError() throws {
        for cut in try regionBoundaries() {
            XCTAssertNotNil(readAll(Array(original[0..<cut])), "truncation at \(cut) was accepted")
            XCTAssertNotNil(readAll(Array(original[0..<cut]), access: .pread), "truncation at \(cut) was accepted (pread)")
        }
    }

    func testRandomByteFlipsNeverCrashOrReturnWrongData() throws {
        let reader = try ShardReader(sealedAt: path)
        let footerStart = Int(reader.blockInfo(reader.blockCount - 1).end)
        let regions: [(String, Range<Int>)] = [
            ("header", 0..<reader.headerLength),
            ("blocks", reader.headerLength..<footerStart),
            ("footer", footerStart..<(original.count - 64)),
            ("trailer", (original.count - 64)..<original.count),
        ]
        var rng = SplitMix64(seed: 99)
        for (name, range) in regions {
            var detected = 0
            for _ in 0..<60 {
                var bytes = original
                let at = range.lowerBound + Int(rng.next() % UInt64(range.count))
                bytes[at] ^= UInt8(1 + rng.next() % 255)
                if readAll(bytes) != nil { detected += 1 }
            }
            // Only zero padding is outside every checksum; most flips must be detected.
            XCTAssertGreaterThan(detected, 30, "\(name): only \(detected) of 60 flips detected")
        }
    }

    /// Multi-byte damage: runs of 0xFF / 0x00 / random bytes, and random cut-and-extend.
    func testMultiByteDamageNeverCrashes() throws {
        var rng = SplitMix64(seed: 1234)
        for round in 0..<200 {
            var bytes = original
            let at = Int(rng.next() % UInt64(bytes.count))
            let n = min(1 + Int(rng.next() % 24), bytes.count - at)
            for i in at..<(at + n) {
                bytes[i] = round % 3 == 0 ? 0xFF : round % 3 == 1 ? 0 : UInt8(truncatingIfNeeded: rng.next())
            }
            if round % 10 == 0 {
                bytes = Array(bytes[0..<at]) + [UInt8](repeating: 0, count: Int(rng.next() % 200))
            }
            _ = readAll(bytes)
        }
    }

    func testBlockCorruptionNamesTheBlock() throws {
        let reader = try ShardReader(sealedAt: path)
        let info = reader.blockInfo(2)
        var bytes = original
        bytes[Int(info.offset) + 64 + info.storedBytes / 2] ^= 0x40
        let error = readAll(bytes)
        XCTAssertEqual(error?.block, 2)
        XCTAssertTrue(error?.reason.contains("checksum") ?? false, "\(String(describing: error))")
    }

    /// Rewrites the trailer with `edit` applied and a valid trailer checksum.
    func forgeTrailer(_ edit: (inout Trailer) -> Void) throws -> [UInt8] {
        var bytes = original
        var t = try bytes.withUnsafeBytes { b in try Trailer.decode(UnsafeRawBufferPointer(rebasing: b[(b.count - 64)...]), path: "x") }
        edit(&t)
        bytes.replaceSubrange((bytes.count - 64)..., with: t.encode())
        return bytes
    }

    func testHugeDeclaredLengthsAreRejectedBeforeAllocation() throws {
        for edit: (inout Trailer) -> Void in [
            { $0.footerLength = UInt64.max - 10 }, { $0.footerOffset = UInt64.max & ~63 },
            { $0.footerOffset = 0 }, { $0.blockCount = 1 << 60 }, { $0.footerLength = 1 << 40 },
        ] {
            XCTAssertNotNil(readAll(try forgeTrailer(edit)))
        }
        // Header length beyond the cap.
        var bytes = original
        bytes.replaceSubrange(16..<20, with: [0xFF, 0xFF, 0xFF, 0x7F])
        XCTAssertTrue(readAll(bytes)?.reason.contains("header length") ?? false)
        // A forged footer claiming 2^40 blocks with valid checksums.
        let reader = try ShardReader(sealedAt: path)
        let footerStart = Int(reader.blockInfo(reader.blockCount - 1).end)
        bytes = original
        var t = try bytes.withUnsafeBytes { b in try Trailer.decode(UnsafeRawBufferPointer(rebasing: b[(b.count - 64)...]), path: "x") }
        var w = ByteWriter(); w.u64(1 << 40)
        bytes.replaceSubrange((footerStart + 8)..<(footerStart + 16), with: w.bytes)
        t.blockCount = 1 << 40
        t.footerChecksum = Checksum.xxh3(Array(bytes[footerStart..<(footerStart + Int(t.footerLength))]))
        bytes.replaceSubrange((bytes.count - 64)..., with: t.encode())
        XCTAssertTrue(readAll(bytes)?.reason.contains("blocks") ?? false)
        // An open shard whose block header declares a huge stored length.
        let w2 = try ShardWriter(creating: dir + "/open.tmp", provenance: provenance(vocab: 151_936), shardID: UUID())
        try w2.append(input[0])
        let committed = try w2.flush()
        var open = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/open.tmp")))
        let hl = w2.blockCount == 1 ? Int(try ShardReader(openAt: dir + "/open.tmp", committedLength: committed).blockInfo(0).offset) : 0
        open.replaceSubrange((hl + 8)..<(hl + 16), with: [0, 0, 0, 0, 0, 0, 0, 0x10])
        _ = FileManager.default.createFile(atPath: dir + "/open2.tmp", contents: Data(open))
        XCTAssertThrowsError(try ShardReader(openAt: dir + "/open2.tmp", committedLength: committed)) { e in
            XCTAssertEqual((e as? ShardError)?.block, 0)
        }
    }

    func testUnknownVersionIsRejected() throws {
        var bytes = original
        bytes[8] = 2                       // header major version 2
        for i in 40..<48 { bytes[i] = 0 }
        let headerLength = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self) })
        var w = ByteWriter(); w.u64(Checksum.xxh3(Array(bytes[0..<headerLength])))
        bytes.replaceSubrange(40..<48, with: w.bytes)
        XCTAssertTrue(readAll(bytes)?.reason.contains("unsupported format version 2.0") ?? false)
        XCTAssertTrue(readAll(Array("hello, not a shard at all".utf8) + [UInt8](repeating: 0, count: 256 - 25))?.reason.contains("magic") ?? false)
    }

    func testBadRequestsAreTypedErrors() throws {
        let reader = try ShardReader(sealedAt: path)
        XCTAssertThrowsError(try reader.sequence(block: reader.blockCount, ordinal: 0))
        XCTAssertThrowsError(try reader.sequence(block: 0, ordinal: 10_000))
        XCTAssertThrowsError(try reader.sequence(block: -1, ordinal: 0))
        XCTAssertThrowsError(try ShardReader(sealedAt: dir + "/missing.shard"))
        XCTAssertThrowsError(try ShardReader(openAt: path, committedLength: UInt64(original.count) + 64))
    }
}

/// Open (unsealed) shards: a committed length is either a block boundary or refused; flips
/// below it are detected or harmless.
final class OpenShardHostileTests: XCTestCase {
    func testCommittedLengthsAndFlipsInOpenShards() throws {
        let dir = temporaryDirectory(self)
        var f = RecordFactory(seed: 77, vocab: 40_000)
        let input = (0..<20).map { f.record(key: "u\($0)") }
        let path = dir + "/u.tmp"
        let w = try ShardWriter(creating: path, provenance: provenance(vocab: 40_000), shardID: UUID(),
                                options: ShardWriterOptions(codec: .lz4, targetBlockBytes: 2048))
        var locations: [SequenceLocation] = []
        for r in input { locations.append(try w.append(r)) }
        let committed = try w.flush()
        let reader = try ShardReader(openAt: path, committedLength: committed)
        let ends = Set((0..<reader.blockCount).map { Int(reader.blockInfo($0).end) } + [reader.headerLength])
        for cut in stride(from: 0, through: Int(committed), by: 64) {
            do {
                let r = try ShardReader(openAt: path, committedLength: UInt64(cut), access: .pread)
                XCTAssertTrue(ends.contains(cut), "length \(cut) inside a block was accepted")
                for b in 0..<r.blockCount { try r.verifyBlock(b) }
            } catch {
                XCTAssertFalse(ends.contains(cut), "block boundary \(cut) refused: \(error)")
            }
        }
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        var rng = SplitMix64(seed: 5)
        var detected = 0
        for _ in 0..<100 {
            var bytes = original
            bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 + rng.next() % 255)
            let p = dir + "/flip.tmp"
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            do throws(ShardError) {
                let r = try ShardReader(openAt: p, committedLength: committed)
                for (rec, loc) in zip(input, locations) {
                    let got = try r.sequence(block: loc.block, ordinal: loc.ordinal)
                    XCTAssertEqual(got, canonicalized(rec, logprobScale: 64), "undetected corruption returned wrong data")
                }
            } catch {
                XCTAssertEqual(error.path, p)
                detected += 1
            }
        }
        XCTAssertGreaterThan(detected, 60)
    }
}
