import Foundation
import GRDB
import Synchronization
import LogitCore
import ShardFormat
import XCTest
@testable import Catalog

/// Catalog page checksums (schema/CATALOG_FILE.md): damage anywhere in the catalog files is
/// reported by verify with the file and page or frame, and a damaged live page fails reads.
final class CatalogChecksumTests: XCTestCase {
    /// A cache with `count` sequences in small shards, closed again (WAL checkpointed away).
    func makeClosedCache(count: Int = 300) throws -> (dir: String, records: [SequenceRecord]) {
        let dir = makeTemporaryDirectory()
        let records = randomRecords(count)
        var options = CacheStore.Options()
        options.maxShardBytes = 24 << 10
        try {
            let store = try CacheStore(directory: dir, options: options)
            try store.createDataset(testSpec)
            for chunk in stride(from: 0, to: count, by: 30) {
                try store.appendDurably(dataset: testSpec.name, records: Array(records[chunk..<min(chunk + 30, count)]))
            }
        }()
        XCTAssertFalse(FileOps.exists(dir + "/catalog.sqlite-wal"), "closing the last connection should checkpoint and remove the WAL")
        return (dir, records)
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func flip(_ path: String, at offset: Int) throws {
        var data = try bytes(path)
        data[offset] ^= 0x20
        try Data(data).write(to: URL(fileURLWithPath: path))
    }

    func be16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) << 8 | Int(b[at + 1]) }
    func be32(_ b: [UInt8], _ at: Int) -> Int { be16(b, at) << 16 | be16(b, at + 2) }

    func verifyProblems(_ dir: String) throws -> [String] {
        try CacheVerifier(store: try CacheStore(directory: dir, mode: .readOnly)).verify().problems.map(\.description)
    }

    func testNewCatalogsReserveChecksumBytesAndEveryPageVerifies() throws {
        let (dir, _) = try makeClosedCache()
        let file = try bytes(dir + "/catalog.sqlite")
        XCTAssertEqual(file[20], 8, "reserved bytes per page")
        XCTAssertEqual(be32(file, 68), 0x4C47_4332, "application_id LGC2")
        let pageSize = be16(file, 16)
        let audit = CatalogFileAudit.run(catalogPath: dir + "/catalog.sqlite")
        XCTAssertEqual(audit.problems, [])
        XCTAssertEqual(audit.pagesChecked, file.count / pageSize)
        XCTAssertGreaterThan(audit.pagesChecked, 10)
        XCTAssertEqual(try verifyProblems(dir), [])
    }

    /// A catalog shorter than its header's page count is truncated, and stays reported as such
    /// after the audit re-measures it (the re-measuring is for checkpoints still writing).
    func testATruncatedCatalogIsReportedAfterRemeasuring() throws {
        let (dir, _) = try makeClosedCache()
        let path = dir + "/catalog.sqlite"
        let file = try bytes(path)
        let pageSize = be16(file, 16), pages = file.count / pageSize
        XCTAssertEqual(truncate(path, off_t((pages - 1) * pageSize)), 0)
        let audit = CatalogFileAudit.run(catalogPath: path)
        XCTAssertTrue(audit.problems.contains { $0.message == "the header records \(pages) pages, the file holds \(pages - 1): truncated" },
                      "\(audit.problems)")
    }

    func testAFlipInAFreePageIsReportedWithFileAndPageThoughSQLiteSeesNothing() throws {
        let (dir, _) = try makeClosedCache()
        try {
            let catalog = try CatalogDB(path: dir + "/catalog.sqlite")
            // Rows of a table no shard check looks at, so the only damage is the planted one.
            try catalog.pool.write { db in
                for i in 0..<400 {
                    try db.execute(sql: "INSERT INTO quarantine (original_path, moved_to, reason, at) VALUES (?, ?, ?, ?)",
                                   arguments: ["shards/x/\(i)", "quarantine/\(i)", String(repeating: "r", count: 200), "now"])
                }
            }
            try catalog.pool.write { try $0.execute(sql: "DELETE FROM quarantine") }
        }()
        let path = dir + "/catalog.sqlite"
        let file = try bytes(path)
        let pageSize = be16(file, 16)
        let trunk = be32(file, 32), freePages = be32(file, 36)
        XCTAssertGreaterThan(freePages, 1, "deleting rows should have freed pages")
        // A freelist leaf page: listed in the trunk, never read by SQLite while it stays free.
        let trunkAt = (trunk - 1) * pageSize
        XCTAssertGreaterThan(be32(file, trunkAt + 4), 0, "the trunk lists leaf pages")
        let leaf = be32(file, trunkAt + 8)
        try flip(path, at: (leaf - 1) * pageSize + pageSize / 2)

        let store = try CacheStore(directory: dir, mode: .readOnly)
        XCTAssertEqual(store.catalog.integrityProblems(), [], "SQLite's own check does not read free pages")
        let problems = try CacheVerifier(store: store).verify().problems.map(\.description)
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(problems.first?.hasPrefix("catalog.sqlite: page \(leaf) (byte offset \((leaf - 1) * pageSize))") == true, "\(problems)")
        XCTAssertTrue(problems.first?.contains("page checksum mismatch") == true)
    }

    func testAFlipInUnusedSpaceInsideALiveBTreePageIsReported() throws {
        let (dir, _) = try makeClosedCache()
        let path = dir + "/catalog.sqlite"
        let file = try bytes(path)
        let pageSize = be16(file, 16)
        // Find a b-tree page with a gap between its cell pointer array and its cell content.
        var target: (page: Int, offset: Int)?
        // Page 1 is read whenever the catalog opens; a later page lets verify open the store.
        for page in 2...(file.count / pageSize) where target == nil {
            let start = (page - 1) * pageSize, header = start + (page == 1 ? 100 : 0)
            let type = file[header]
            guard [2, 5, 10, 13].contains(type) else { continue }
            let pointers = header + (type == 2 || type == 5 ? 12 : 8) + 2 * be16(file, header + 3)
            var content = be16(file, header + 5)
            if content == 0 { content = 65536 }
            if start + content - pointers >= 16 { target = (page, (pointers + start + content) / 2) }
        }
        let (page, offset) = try XCTUnwrap(target, "no b-tree page with unused space")
        try flip(path, at: offset)
        let problems = try verifyProblems(dir)
        XCTAssertTrue(problems.contains { $0.hasPrefix("catalog.sqlite: page \(page) ") && $0.contains("page checksum mismatch") }, "\(problems)")
    }

    func testAFlipInALivePageFailsReadsWithAClearErrorNotAWrongAnswer() throws {
        let (dir, records) = try makeClosedCache()
        let path = dir + "/catalog.sqlite"
        let file = try bytes(path)
        let pageSize = be16(file, 16)
        // Damage the key in every b-tree cell holding it (the primary key and the location index).
        let key = Array("k123".utf8)
        var pages: [Int] = []
        var damaged = file
        for at in 0..<(file.count - key.count) where Array(file[at..<at + key.count]) == key {
            damaged[at + 1] ^= 0x01
            pages.append(at / pageSize + 1)
        }
        XCTAssertFalse(pages.isEmpty)
        try Data(damaged).write(to: URL(fileURLWithPath: path))

        let store = try CacheStore(directory: dir, mode: .readOnly)
        XCTAssertThrowsError(try store.read(dataset: testSpec.name, key: "k123")) { error in
            guard case StoreError.corrupt(let message) = error else { return XCTFail("expected .corrupt, got \(error)") }
            XCTAssertTrue(pages.contains { message.contains("catalog.sqlite page \($0) ") }, message)
            XCTAssertTrue(message.contains("page checksum mismatch"), message)
        }
        // Keys on undamaged pages still read correctly.
        let unaffected = try XCTUnwrap(records.first { r in
            (try? store.read(dataset: testSpec.name, key: r.key)) != nil
        })
        XCTAssertEqual(try store.read(dataset: testSpec.name, key: unaffected.key), canonicalized(unaffected, logprobScale: testSpec.logprobScale))
    }

    /// A snapshot of a live catalog (main file and WAL, as a crash leaves them) whose WAL holds
    /// several frames of the same pages.
    func makeWALSnapshot() throws -> (dir: String, count: Int) {
        let dir = makeTemporaryDirectory()
        let snapshot = makeTemporaryDirectory(#function + "snapshot")
        let store = try CacheStore(directory: dir)
        try store.createDataset(testSpec)
        let records = randomRecords(120)
        for chunk in stride(from: 0, to: 120, by: 10) {
            try store.appendDurably(dataset: testSpec.name, records: Array(records[chunk..<chunk + 10]))
        }
        for name in ["catalog.sqlite", "catalog.sqlite-wal"] {
            try FileManager.default.copyItem(atPath: dir + "/" + name, toPath: snapshot + "/" + name)
        }
        return (snapshot, 120)
    }

    /// Frames (0-based) whose page is written again by a later frame, before the last commit.
    func supersededFrames(_ wal: [UInt8], pageSize: Int) -> [(frame: Int, page: Int)] {
        let frameSize = pageSize + 24, count = (wal.count - 32) / frameSize
        let pages = (0..<count).map { be32(wal, 32 + $0 * frameSize) }
        let lastCommit = (0..<count).last { be32(wal, 32 + $0 * frameSize + 4) != 0 } ?? 0
        return (0..<lastCommit).filter { k in pages[(k + 1)...lastCommit].contains(pages[k]) }.map { ($0, pages[$0]) }
    }

    func testAnUndamagedWALSnapshotRecoversEveryCommittedSequence() throws {
        let (dir, count) = try makeWALSnapshot()
        XCTAssertEqual(CatalogFileAudit.run(catalogPath: dir + "/catalog.sqlite").problems, [])
        let catalog = try CatalogDB(path: dir + "/catalog.sqlite", readOnly: true)
        let rows = try catalog.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sequence") }
        XCTAssertEqual(rows, count, "SQLite's WAL recovery must accept every frame the VFS rewrote")
    }

    func testAFlipInASupersededWALFrameIsReportedAndTheCatalogRefusesToOpen() throws {
        for part in ["page", "header"] {
            let (dir, _) = try makeWALSnapshot()
            let walPath = dir + "/catalog.sqlite-wal"
            let pageSize = be16(try bytes(dir + "/catalog.sqlite"), 16)
            let superseded = supersededFrames(try bytes(walPath), pageSize: pageSize)
            let (frame, page) = try XCTUnwrap(superseded.first, "no superseded frame in the WAL")
            let frameAt = 32 + frame * (pageSize + 24)
            try flip(walPath, at: part == "page" ? frameAt + 24 + pageSize / 3 : frameAt + 17)

            let audit = CatalogFileAudit.run(catalogPath: dir + "/catalog.sqlite")
            let listed = audit.problems.map(\.description)
            XCTAssertTrue(listed.contains { $0.hasPrefix("catalog.sqlite-wal: frame \(frame + 1) (page \(page),") }, "\(part): \(listed)")
            XCTAssertNotNil(audit.walLoss, "\(part): SQLite would drop the committed frames after it")
            XCTAssertThrowsError(try CatalogDB(path: dir + "/catalog.sqlite", readOnly: true)) { error in
                guard case StoreError.corrupt(let message) = error else { return XCTFail("\(part): expected .corrupt, got \(error)") }
                XCTAssertTrue(message.contains("catalog.sqlite-wal: frame \(frame + 1) (page \(page)"), message)
            }
        }
    }

    /// The `logitctl verify` binary on a catalog that cannot even be opened still names the frame.
    func testLogitctlVerifyNamesADamagedWALFrame() throws {
        let logitctl = productPath("logitctl")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: logitctl), "logitctl not built at \(logitctl)")
        let (dir, _) = try makeWALSnapshot()
        let walPath = dir + "/catalog.sqlite-wal"
        let pageSize = be16(try bytes(dir + "/catalog.sqlite"), 16)
        let (frame, page) = try XCTUnwrap(supersededFrames(try bytes(walPath), pageSize: pageSize).first)
        try flip(walPath, at: 32 + frame * (pageSize + 24) + 24 + 100)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: logitctl)
        process.arguments = ["verify", dir]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1, text)
        XCTAssertTrue(text.contains("problem: catalog.sqlite-wal: frame \(frame + 1) (page \(page),"), text)
    }

    /// Auditing while a writer commits (as `logitctl verify` beside a running logitd) must not
    /// report half-written frames of the live WAL, across WAL restarts after checkpoints.
    func testAuditingALiveCatalogReportsNothingSpurious() throws {
        let dir = makeTemporaryDirectory()
        let store = try CacheStore(directory: dir)
        try store.createDataset(testSpec)
        final class Shared: Sendable { let state = Mutex((stop: false, commits: 0)) }
        let shared = Shared()
        let writer = Thread {
            var round = 0
            while !shared.state.withLock({ $0.stop }) {
                _ = try? store.appendDurably(dataset: testSpec.name, records: randomRecords(4, prefix: "w\(round)-"))
                shared.state.withLock { $0.commits += 1 }
                round += 1
            }
        }
        writer.start()
        defer { shared.state.withLock { $0.stop = true } }
        let commits = { shared.state.withLock { $0.commits } }
        var audits = 0, frames = 0
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            let audit = CatalogFileAudit.run(catalogPath: dir + "/catalog.sqlite")
            XCTAssertEqual(audit.problems, [], "after \(commits()) commits")
            XCTAssertNil(audit.walLoss)
            audits += 1
            frames += audit.framesChecked
        }
        shared.state.withLock { $0.stop = true }
        while !writer.isFinished { usleep(1000) }
        XCTAssertGreaterThan(commits(), 20)
        XCTAssertGreaterThan(frames, 0)
        print("live audit: \(audits) audits, \(frames) frames checked, \(commits()) commits")
    }

    func testAFormatOneCatalogIsRefusedWithAClearMessage() throws {
        let dir = makeTemporaryDirectory()
        try DatabaseQueue(path: dir + "/catalog.sqlite").write { try $0.execute(sql: "CREATE TABLE dataset (id INTEGER PRIMARY KEY)") }
        XCTAssertThrowsError(try CatalogDB(path: dir + "/catalog.sqlite")) { error in
            guard case StoreError.corrupt(let message) = error else { return XCTFail("expected .corrupt, got \(error)") }
            XCTAssertTrue(message.contains("format-1 catalog") && message.contains("re-create the cache"), message)
        }
    }

    func testAMissingCatalogBesideAWALIsNotReplacedByAnEmptyOne() throws {
        let dir = makeTemporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/catalog.sqlite-wal", contents: Data(repeating: 1, count: 100))
        XCTAssertThrowsError(try CatalogDB(path: dir + "/catalog.sqlite")) { error in
            XCTAssertTrue("\(error)".contains("-wal file exists"), "\(error)")
        }
        XCTAssertFalse(FileOps.exists(dir + "/catalog.sqlite"))
    }
}
