import Foundation
import Synchronization
import XCTest
import LogitCore
@testable import ShardFormat

final class ShardWriterTests: XCTestCase {
    func testAppendValidatesAgainstProvenance() throws {
        let dir = temporaryDirectory(self)
        let w = try ShardWriter(creating: dir + "/a.tmp", provenance: provenance(vocab: 100), shardID: UUID())
        var f = RecordFactory(seed: 5, vocab: 100)
        var r = f.record(key: "bad")
        r.ids[0] = 100
        XCTAssertThrowsError(try w.append(r)) { e in
            XCTAssertTrue("\(e)".contains("expected < vocab size 100"), "\(e)")
        }
        XCTAssertEqual(w.sequenceCount, 0)
        XCTAssertThrowsError(try ShardWriter(creating: dir + "/a.tmp", provenance: provenance(vocab: 100), shardID: UUID()),
                             "creating over an existing file must fail")
        XCTAssertThrowsError(try ShardWriter(creating: dir + "/b.tmp", provenance: provenance(vocab: 100), shardID: UUID(),
                                             options: ShardWriterOptions(zstdLevel: 99)))
        XCTAssertThrowsError(try ShardWriter(creating: dir + "/c.tmp", provenance: provenance(vocab: 1), shardID: UUID()))
        XCTAssertThrowsError(try ShardWriter(creating: dir + "/d.tmp", provenance: provenance(vocab: 100, scale: .nan), shardID: UUID()))
    }

    func testFlushCommitsAndOpenShardIsReadable() throws {
        let dir = temporaryDirectory(self)
        let id = UUID()
        let w = try ShardWriter(creating: dir + "/o.tmp", provenance: provenance(vocab: 3000), shardID: id,
                                options: ShardWriterOptions(targetBlockBytes: 2048))
        var f = RecordFactory(seed: 11, vocab: 3000)
        let records = (0..<25).map { f.record(key: "o\($0)") }
        var locations: [SequenceLocation] = []
        for r in records { locations.append(try w.append(r)) }
        XCTAssertLessThan(w.committedLength, 1 << 20)
        let committed = try w.flush()
        XCTAssertEqual(committed, w.committedLength)
        XCTAssertEqual(w.pendingSequences, 0)
        XCTAssertEqual(committed % 64, 0)
        let reader = try ShardReader(openAt: dir + "/o.tmp", committedLength: committed)
        XCTAssertFalse(reader.isSealed)
        XCTAssertEqual(reader.shardID, id)
        XCTAssertEqual(reader.blockCount, w.blockCount)
        for (r, loc) in zip(records, locations) {
            XCTAssertEqual(try reader.sequence(block: loc.block, ordinal: loc.ordinal), canonicalized(r, logprobScale: 64))
        }
        // A committed length that cuts a block is refused.
        XCTAssertThrowsError(try ShardReader(openAt: dir + "/o.tmp", committedLength: committed - 64))
    }

    func testResumeCutsBackToCommittedLengthAndContinues() throws {
        let dir = temporaryDirectory(self)
        var f = RecordFactory(seed: 21, vocab: 151_936)
        let first = (0..<10).map { f.record(key: "a\($0)") }
        let lost = (0..<5).map { f.record(key: "lost\($0)") }
        let second = (0..<10).map { f.record(key: "b\($0)") }
        let tmp = dir + "/r.tmp"
        var committed: UInt64 = 0
        let id = UUID()
        do {
            let w = try ShardWriter(creating: tmp, provenance: provenance(vocab: 151_936), shardID: id,
                                    options: ShardWriterOptions(targetBlockBytes: 4096))
            for r in first { try w.append(r) }
            committed = try w.flush()
            for r in lost { try w.append(r) }
            // Simulated crash: the writer dies with blocks written past the commit point, plus junk.
            _ = try w.flush()
            let h = FileHandle(forWritingAtPath: tmp)!
            h.seekToEndOfFile()
            h.write(Data([1, 2, 3, 4, 5]))
            h.closeFile()
        }
        let w = try ShardWriter.resume(path: tmp, committedLength: committed)
        XCTAssertEqual(w.shardID, id)
        XCTAssertEqual(w.sequenceCount, first.count)
        XCTAssertEqual(w.committedLength, committed)
        var locations: [SequenceLocation] = []
        for r in second { locations.append(try w.append(r)) }
        let sealed = try w.seal(to: dir + "/r.shard")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp))
        XCTAssertEqual(sealed.sequences, first.count + second.count)
        XCTAssertEqual(try ShardReader.fileHash(path: sealed.path), sealed.fileHash)
        let reader = try ShardReader(sealedAt: sealed.path)
        var all: [SequenceRecord] = []
        var keys: [String] = []
        for b in 0..<reader.blockCount {
            try reader.decodeBlock(b, into: &all)
            keys += all.map(\.key)
        }
        XCTAssertEqual(keys, first.map(\.key) + second.map(\.key))
        XCTAssertThrowsError(try w.append(second[0]), "a sealed writer refuses appends")
    }

    func testResumeRefusesACorruptCommittedBlock() throws {
        let dir = temporaryDirectory(self)
        var f = RecordFactory(seed: 22, vocab: 500)
        let tmp = dir + "/c.tmp"
        let w = try ShardWriter(creating: tmp, provenance: provenance(vocab: 500), shardID: UUID())
        for i in 0..<5 { try w.append(f.record(key: "c\(i)")) }
        let committed = try w.flush()
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: tmp)))
        bytes[Int(committed) - 70] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: tmp))
        XCTAssertThrowsError(try ShardWriter.resume(path: tmp, committedLength: committed)) { e in
            XCTAssertEqual((e as? ShardError)?.block, 0)
        }
    }

    func testEmptyShardSealsAndOpens() throws {
        let dir = temporaryDirectory(self)
        let w = try ShardWriter(creating: dir + "/e.tmp", provenance: provenance(vocab: 50), shardID: UUID())
        let sealed = try w.seal(to: dir + "/e.shard")
        XCTAssertEqual(sealed.blocks, 0)
        let reader = try ShardReader(sealedAt: sealed.path)
        XCTAssertEqual(reader.blockCount, 0)
        XCTAssertEqual(reader.sequenceCount, 0)
    }
}

final class ShardReaderConcurrencyTests: XCTestCase {
    /// One reader shared by many threads (cache and first-touch verification under contention).
    func testConcurrentDecodesAgreeWithTheInput() throws {
        let dir = temporaryDirectory(self)
        var f = RecordFactory(seed: 31, vocab: 151_936)
        let input = (0..<60).map { f.record(key: "c\($0)") }
        let (path, locations, _) = try writeSealed(input, provenance: provenance(vocab: 151_936),
                                                   options: ShardWriterOptions(targetBlockBytes: 2048), dir: dir)
        for access in [ShardReader.Access.mmap, .pread] {
            let reader = try ShardReader(sealedAt: path, access: access)
            XCTAssertGreaterThan(reader.blockCount, ShardReader.cachedBlocks, "test must exceed the block cache")
            let expected = input.map { canonicalized($0, logprobScale: 64) }
            let failures = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: 8) { thread in
                var r = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
                for round in 0..<5 {
                    for k in 0..<locations.count {
                        let i = (k * 7 + thread * 13 + round) % locations.count
                        do {
                            try reader.decode(block: locations[i].block, ordinal: locations[i].ordinal, into: &r)
                            if r != expected[i] { failures.add(1, ordering: .relaxed) }
                        } catch {
                            failures.add(1, ordering: .relaxed)
                        }
                    }
                }
            }
            XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        }
    }
}
