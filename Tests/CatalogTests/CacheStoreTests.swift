import Synchronization
import Foundation
import LogitCore
import ShardFormat
import XCTest
@testable import Catalog

final class CacheStoreTests: XCTestCase {
    func testSchemaDocumentMatchesMigration() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOfFile: root.path + "/schema/catalog.sql", encoding: .utf8)
        XCTAssertEqual(document.trimmingCharacters(in: .whitespacesAndNewlines),
                       CatalogSchema.v1.trimmingCharacters(in: .whitespacesAndNewlines), "schema/catalog.sql and CatalogSchema.v1 have drifted apart")
    }

    func testDatasetCreationIsIdempotentAndConflictsNameTheField() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        XCTAssertTrue(try store.createDataset(testSpec).created)
        XCTAssertFalse(try store.createDataset(testSpec).created)
        var other = testSpec
        other.vocabSize = 4000
        XCTAssertThrowsError(try store.createDataset(other)) { error in
            guard case StoreError.datasetConflict(_, let diffs) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(diffs, ["vocab_size 4000 ≠ 3000"])
        }
        for bad in ["", "../etc", "a/b", ".hidden", "tab\there", "nul\0", String(repeating: "x", count: 129)] {
            var spec = testSpec
            spec.name = bad
            XCTAssertThrowsError(try store.createDataset(spec), "accepted name \(bad.debugDescription)") { error in
                guard case StoreError.invalidDatasetName = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(try store.datasets().map(\.spec), [testSpec])
    }

    /// The dataset's limits are the shard format's: what creation accepts, a shard can hold
    /// (a vocab of 1 used to be created and then fail at the first append with a 500).
    func testCreationAcceptsExactlyWhatAShardCanHold() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        let refused: [(WritableKeyPath<DatasetSpec, Int>?, WritableKeyPath<DatasetSpec, Float>?, Double, String)] = [
            (\.vocabSize, nil, 1, "vocab_size must be 2…"), (\.vocabSize, nil, Double((1 << 32) + 1), "vocab_size must be 2…"),
            (nil, \.logprobScale, 0.5, "logprob_scale must be in [1, 65536]"), (nil, \.logprobScale, 70_000, "logprob_scale must be in [1, 65536]"),
            (nil, \.logprobScale, .nan, "logprob_scale must be in [1, 65536]"),
        ]
        for (intField, floatField, value, message) in refused {
            var spec = testSpec
            spec.name = "refused"
            if let intField { spec[keyPath: intField] = Int(value) }
            if let floatField { spec[keyPath: floatField] = Float(value) }
            XCTAssertThrowsError(try store.createDataset(spec), "\(value)") { error in
                guard case StoreError.invalidDataset(let m) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(m.contains(message), m)
                XCTAssertNil(try? store.dataset(named: "refused"), "a refused dataset left a row")
            }
        }
        // At the limits: created, and a shard takes and returns its sequences.
        for (i, spec) in [DatasetSpec(name: "v2", vocabSize: 2, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 2)),
                          DatasetSpec(name: "s65536", vocabSize: 3000, policy: testSpec.policy, logprobScale: 65_536)].enumerated() {
            XCTAssertTrue(try store.createDataset(spec).created)
            let records = randomRecords(5, prefix: "r\(i)-", spec: spec)
            XCTAssertEqual(try store.appendDurably(dataset: spec.name, records: records).new, 5)
            for r in records {
                XCTAssertEqual(try store.read(dataset: spec.name, key: r.key), canonicalized(r, logprobScale: spec.logprobScale))
            }
        }
    }

    /// A full shard whose rotation fails (here: a directory sits where the sealed file must go)
    /// is reported, loses nothing, keeps taking appends, and is sealed by a later commit.
    func testAFailedRotationIsReportedLosesNothingAndIsRetried() throws {
        let dir = makeTemporaryDirectory()
        let failures = Mutex<[String]>([])
        var options = CacheStore.Options()
        options.maxShardBytes = 1  // every commit rotates
        options.sealFailureObserver = { path, error in failures.withLock { $0.append("\(path): \(error)") } }
        let store = try CacheStore(directory: dir, options: options)
        try store.createDataset(testSpec)
        let records = randomRecords(30)
        let first = try store.append(dataset: "web-en", records: Array(records[0..<10]))
        let shards = dir + "/shards/web-en"
        let open = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: shards).first { $0.hasSuffix(".open") })
        let obstacle = shards + "/" + open.dropLast(5) + ".lgs"
        try FileManager.default.createDirectory(atPath: obstacle + "/occupied", withIntermediateDirectories: true)
        try store.waitDurable(first.ticket)  // acked although the rotation after the commit fails
        XCTAssertEqual(failures.withLock { $0.count }, 1)
        XCTAssertTrue(failures.withLock { $0.first ?? "" }.contains(String(open)), "\(failures.withLock { $0 })")
        // The next batch goes into the same, still open shard without an error.
        XCTAssertEqual(try store.appendDurably(dataset: "web-en", records: Array(records[10..<20])).new, 10)
        XCTAssertEqual(failures.withLock { $0.count }, 2, "the rotation is retried after each commit")
        try FileManager.default.removeItem(atPath: obstacle)
        XCTAssertEqual(try store.appendDurably(dataset: "web-en", records: Array(records[20..<30])).new, 10)
        XCTAssertEqual(failures.withLock { $0.count }, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: obstacle), "the retried rotation sealed the shard")
        let audit = try CacheVerifier(store: store).verify()
        XCTAssertTrue(audit.isClean, "\(audit.problems)")
        for r in records { XCTAssertEqual(try store.read(dataset: "web-en", key: r.key), canonicalized(r, logprobScale: 64)) }
    }

    func testAppendedSequencesReadBackAfterReopen() throws {
        let dir = makeTemporaryDirectory()
        let records = randomRecords(300)
        do {
            let store = try CacheStore(directory: dir)
            try store.createDataset(testSpec)
            for chunk in stride(from: 0, to: records.count, by: 50) {
                let result = try store.appendDurably(dataset: "web-en", records: Array(records[chunk..<chunk + 50]))
                XCTAssertEqual(result.new, 50)
                XCTAssertEqual(result.duplicates, 0)
            }
            // Readable while the shard is still open, from the committed prefix.
            XCTAssertEqual(try store.read(dataset: "web-en", key: "k7"), canonicalized(records[7], logprobScale: 64))
        }
        let store = try CacheStore(directory: dir)
        XCTAssertEqual(store.recovery.sealed.count, 1, "the open shard is sealed at start-up")
        for record in records {
            XCTAssertEqual(try store.read(dataset: "web-en", key: record.key), canonicalized(record, logprobScale: 64))
        }
        XCTAssertNil(try store.read(dataset: "web-en", key: "absent"))
    }

    func testDuplicatesAreCountedAndConflictsWriteNothing() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        try store.createDataset(testSpec)
        let records = randomRecords(10)
        try store.appendDurably(dataset: "web-en", records: Array(records[0..<5]))
        let again = try store.appendDurably(dataset: "web-en", records: records)
        XCTAssertEqual(again.new, 5)
        XCTAssertEqual(again.duplicates, 5)

        var changed = randomRecords(1, prefix: "k", seed: 99)[0]   // key k0, other content
        changed.key = "k3"
        let fresh = randomRecords(3, prefix: "fresh")
        XCTAssertThrowsError(try store.appendDurably(dataset: "web-en", records: fresh + [changed])) { error in
            XCTAssertEqual(error as? StoreError, .keyConflict(dataset: "web-en", key: "k3"))
        }
        XCTAssertNil(try store.read(dataset: "web-en", key: "fresh0"), "a rejected batch must write nothing")

        var twin = fresh[1]
        twin.logprobs[0] -= 0.5
        XCTAssertThrowsError(try store.appendDurably(dataset: "web-en", records: [fresh[1], twin])) { error in
            XCTAssertEqual(error as? StoreError, .duplicateKeyInBatch(key: "fresh1", first: 0, second: 1))
        }
        let sameTwice = try store.appendDurably(dataset: "web-en", records: [fresh[2], fresh[2]])
        XCTAssertEqual(sameTwice.new, 1)
        XCTAssertEqual(sameTwice.duplicates, 1)
        XCTAssertEqual(try store.coverage(dataset: "web-en").sequences, 11)
    }

    /// Keys are bytes: "é" precomposed and decomposed (equal as Swift Strings) are two keys, in
    /// one batch, across batches before the commit, and against committed ones.
    func testCanonicallyEquivalentKeysAreDistinct() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        try store.createDataset(testSpec)
        var a = randomRecords(1, seed: 1)[0], b = randomRecords(1, seed: 2)[0], c = randomRecords(1, seed: 3)[0]
        a.key = "caf\u{E9}"
        b.key = "cafe\u{301}"
        c.key = "cafe\u{301}\u{301}"
        XCTAssertEqual(try store.appendDurably(dataset: "web-en", records: [a, b]).new, 2)
        let pending = try store.append(dataset: "web-en", records: [c])
        var d = randomRecords(1, seed: 4)[0]
        d.key = "caf\u{E9}\u{301}"
        XCTAssertEqual(try store.append(dataset: "web-en", records: [d]).new, 1, "a pending key of other bytes is no conflict")
        try store.waitDurable(pending.ticket)
        try store.flush()
        XCTAssertEqual(try store.appendDurably(dataset: "web-en", records: [a, b, c, d]).duplicates, 4)
        for r in [a, b, c, d] { XCTAssertEqual(Array(try XCTUnwrap(store.read(dataset: "web-en", key: r.key)).key.utf8), Array(r.key.utf8)) }
        XCTAssertEqual(try store.catalog.committed(datasetId: store.dataset(named: "web-en").id, keys: [a.key, b.key, "cafe"]), [true, true, false])
    }

    func testInvalidRecordRejectsTheWholeBatchWithItsIndex() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        try store.createDataset(testSpec)
        var records = randomRecords(4)
        records[2].ids[0] = 3000   // = vocab size
        XCTAssertThrowsError(try store.appendDurably(dataset: "web-en", records: records)) { error in
            guard case StoreError.invalidRecord(let index, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(index, 2)
            XCTAssertTrue(reason.contains("expected < vocab size 3000"), reason)
        }
        XCTAssertEqual(try store.coverage(dataset: "web-en").sequences, 0)
        XCTAssertThrowsError(try store.appendDurably(dataset: "nope", records: records)) { error in
            XCTAssertEqual(error as? StoreError, .unknownDataset("nope"))
        }
    }

    func testCoverageAggregatesEqualARecount() throws {
        var options = CacheStore.Options()
        options.maxShardBytes = 16 << 10   // several shards
        options.shardWriter.targetBlockBytes = 2048
        let store = try CacheStore(directory: makeTemporaryDirectory(), options: options)
        try store.createDataset(testSpec)
        let records = randomRecords(400)
        for chunk in stride(from: 0, to: 400, by: 40) {
            try store.appendDurably(dataset: "web-en", records: Array(records[chunk..<chunk + 40]))
        }
        try store.seal()
        var expected = CoverageStats()
        for r in records { expected.add(r) }
        let got = try store.coverage(dataset: "web-en")
        XCTAssertGreaterThan(try store.catalog.shards().count, 2)
        XCTAssertEqual(got.sequences, expected.sequences)
        XCTAssertEqual(got.positions, expected.positions)
        XCTAssertEqual(got.candidates, expected.candidates)
        XCTAssertEqual(got.goldForced, expected.goldForced)
        XCTAssertEqual(got.coveredMassSum, expected.coveredMassSum, accuracy: 1e-6)
        XCTAssertEqual(got.kHistogram, expected.kHistogram)
        XCTAssertEqual(got.coveredHistogram, expected.coveredHistogram)
        XCTAssertEqual(try store.catalog.shards(states: [.open]).count, 0)
    }

    func testUnflushedTailIsCutAndOrphansQuarantined() throws {
        let dir = makeTemporaryDirectory()
        var options = CacheStore.Options()
        options.shardWriter.targetBlockBytes = 1024   // blocks reach the file before any flush
        let durable = randomRecords(20, prefix: "durable")
        let lost = randomRecords(50, prefix: "lost")
        do {
            let store = try CacheStore(directory: dir, options: options)
            try store.createDataset(testSpec)
            try store.appendDurably(dataset: "web-en", records: durable)
            _ = try store.append(dataset: "web-en", records: lost)   // never waited for: not acked
        }
        try Data("stray".utf8).write(to: URL(fileURLWithPath: dir + "/shards/web-en/000099-orphan.open"))
        let store = try CacheStore(directory: dir, options: options)
        XCTAssertGreaterThan(store.recovery.truncatedBytes, 0)
        XCTAssertEqual(store.recovery.quarantined.map(\.path), ["shards/web-en/000099-orphan.open"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/quarantine/000099-orphan.open"), "quarantined, never deleted")
        for r in durable { XCTAssertEqual(try store.read(dataset: "web-en", key: r.key), canonicalized(r, logprobScale: 64)) }
        for r in lost { XCTAssertNil(try store.read(dataset: "web-en", key: r.key)) }
        // The store keeps working after recovery.
        try store.appendDurably(dataset: "web-en", records: lost)
        XCTAssertEqual(try store.coverage(dataset: "web-en").sequences, 70)
    }

    func testMissingShardFileIsReportedNotIgnored() throws {
        let dir = makeTemporaryDirectory()
        do {
            let store = try CacheStore(directory: dir)
            try store.createDataset(testSpec)
            try store.appendDurably(dataset: "web-en", records: randomRecords(5))
            try store.seal()
        }
        let shard = try CatalogDB(path: dir + "/catalog.sqlite").shards()[0]
        try FileManager.default.removeItem(atPath: dir + "/" + shard.path)
        let store = try CacheStore(directory: dir)
        XCTAssertEqual(store.recovery.missing.map(\.path), [shard.path])
        XCTAssertThrowsError(try store.read(dataset: "web-en", key: "k1")) { error in
            XCTAssertTrue("\(error)".contains("quarantined"), "\(error)")
        }
    }

    func testSecondWriterIsRefusedAndReadOnlyOpenWorks() throws {
        let dir = makeTemporaryDirectory()
        let store = try CacheStore(directory: dir)
        try store.createDataset(testSpec)
        try store.appendDurably(dataset: "web-en", records: randomRecords(3))
        XCTAssertThrowsError(try CacheStore(directory: dir)) { error in
            guard case StoreError.locked = error else { return XCTFail("\(error)") }
        }
        let reader = try CacheStore(directory: dir, mode: .readOnly)
        XCTAssertNotNil(try reader.read(dataset: "web-en", key: "k2"))
        XCTAssertThrowsError(try reader.appendDurably(dataset: "web-en", records: randomRecords(1)))
        XCTAssertThrowsError(try CacheStore(directory: dir + "/absent", mode: .readOnly))
    }

    func testConcurrentWritersShareCommitsAndLoseNothing() throws {
        let store = try CacheStore(directory: makeTemporaryDirectory())
        try store.createDataset(testSpec)
        let perWriter = 40
        DispatchQueue.concurrentPerform(iterations: 16) { w in
            for i in 0..<perWriter / 4 {
                let batch = randomRecords(4, prefix: "w\(w)-\(i)-")
                do { try store.appendDurably(dataset: "web-en", records: batch) } catch { XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(try store.coverage(dataset: "web-en").sequences, 16 * perWriter)
        XCTAssertNotNil(try store.read(dataset: "web-en", key: "w15-9-3"))
    }
}

extension CacheStoreTests {
    /// Batches big enough to be encoded outside the writer lock read back like any other, mixed
    /// with small batches that go through the shared pending block.
    func testPreEncodedBatchesInterleaveWithSmallOnes() throws {
        var options = CacheStore.Options()
        options.shardWriter.targetBlockBytes = 4096
        let dir = makeTemporaryDirectory()
        let store = try CacheStore(directory: dir, options: options)
        try store.createDataset(testSpec)
        let big = randomRecords(60, prefix: "big")
        let small = randomRecords(6, prefix: "small")
        try store.appendDurably(dataset: "web-en", records: [small[0]])
        try store.appendDurably(dataset: "web-en", records: Array(big[0..<30]))
        try store.appendDurably(dataset: "web-en", records: Array(small[1...]))
        try store.appendDurably(dataset: "web-en", records: Array(big[30...]))
        for r in big + small { XCTAssertEqual(try store.read(dataset: "web-en", key: r.key), canonicalized(r, logprobScale: 64)) }
        let audit = try CacheVerifier(store: store).verify()
        XCTAssertTrue(audit.isClean, "\(audit.problems)")
        XCTAssertEqual(audit.sequencesChecked, 66)
        XCTAssertGreaterThan(try store.catalog.shards()[0].blocks, 4)
    }
}
