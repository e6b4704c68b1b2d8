import Foundation
import GRDB
import LogitCore

/// The SQLite catalog of one cache directory (schema in `schema/catalog.sql`, file format in
/// `schema/CATALOG_FILE.md`). WAL mode with synchronous=FULL, so a committed transaction survives
/// power loss: the catalog is the commit point of the whole cache. Every page carries a checksum
/// checked on every read (a damaged page fails the read with `.corrupt`, never a wrong answer).
/// All SQL uses bound parameters.
public final class CatalogDB: Sendable {
    let pool: DatabasePool
    public let path: String

    public init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(10)
        config.label = "logitd.catalog"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            try CatalogFileFormat.registerVFS()
            if readOnly && !FileManager.default.fileExists(atPath: path) {
                throw StoreError.notFound("no catalog at \(path)")
            }
            if !readOnly && !FileOps.exists(path) {
                // Never start afresh over what may be the remains of a catalog.
                if FileOps.exists(path + "-wal") {
                    throw StoreError.corrupt("\(path) is missing but its -wal file exists: refusing to create a new, empty catalog over it")
                }
                try CatalogFileFormat.create(at: path)
            }
            let header = try CatalogFileFormat.readHeader(path: path)
            // Before SQLite sees the WAL: its recovery would silently drop a damaged frame and
            // every committed frame after it.
            if let loss = CatalogFileAudit.wal(path: path + "-wal", pageSize: header.pageSize).walLoss {
                throw StoreError.corrupt("\(loss); refusing to open \(path) (run logitctl verify)")
            }
            pool = try DatabasePool(path: path, configuration: config)
            if !readOnly { try CatalogSchema.migrator.migrate(pool) }
            let version = try pool.read { db in try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'dataset'") }
            guard version == true else { throw StoreError.corrupt("\(path) has no logitd catalog schema") }
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.storeError(error, context: "opening \(path)")
        }
    }

    /// Runs `body` mapping GRDB's errors to `StoreError` with context.
    func run<T>(_ what: String, _ body: () throws -> T) throws(StoreError) -> T {
        do { return try body() } catch let error as StoreError { throw error } catch { throw Self.storeError(error, context: what) }
    }

    /// SQLITE_IOERR_DATA: the VFS found a page whose checksum does not match.
    static let checksumFailureCode: Int32 = 10 | (32 << 8)

    /// A page-checksum failure becomes `.corrupt` naming the file and page (SQLite itself only
    /// says "disk I/O error"); anything else `.catalog`.
    static func storeError(_ error: Error, context: String) -> StoreError {
        if let error = error as? DatabaseError, error.extendedResultCode.rawValue == checksumFailureCode {
            return .corrupt("\(context): \(CatalogFileFormat.lastChecksumFailure())")
        }
        return .catalog("\(context): \(error)", resultCode: (error as? DatabaseError)?.resultCode.primaryResultCode.rawValue)
    }

    // MARK: Datasets

    /// Creates the dataset, or returns the existing one when identical (`created == false`).
    public func createDataset(_ spec: DatasetSpec) throws(StoreError) -> (info: DatasetInfo, created: Bool) {
        try spec.validate()
        return try run("creating dataset '\(spec.name)'") {
            try pool.write { db in
                if let existing = try Self.fetchDataset(db, name: spec.name) {
                    let diffs = existing.spec.differences(from: spec)
                    guard diffs.isEmpty else { throw StoreError.datasetConflict(name: spec.name, differences: diffs) }
                    return (existing, false)
                }
                let now = Self.timestamp()
                try db.execute(sql: """
                    INSERT INTO dataset (name, vocab_size, tau, k_min, k_max, logprob_scale, teacher_id, tokenizer_id, tokenizer_hash, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [spec.name, spec.vocabSize, spec.policy.tau, spec.policy.kMin, spec.policy.kMax,
                                     Double(spec.logprobScale), spec.teacherId, spec.tokenizerId, spec.tokenizerHash, now])
                return (DatasetInfo(id: db.lastInsertedRowID, spec: spec, createdAt: now), true)
            }
        }
    }

    public func dataset(named name: String) throws(StoreError) -> DatasetInfo? {
        try run("reading dataset '\(name)'") { try pool.read { db in try Self.fetchDataset(db, name: name) } }
    }

    public func datasets() throws(StoreError) -> [DatasetInfo] {
        try run("listing datasets") {
            try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM dataset ORDER BY name").map(Self.datasetInfo) }
        }
    }

    static func fetchDataset(_ db: Database, name: String) throws -> DatasetInfo? {
        try Row.fetchOne(db, sql: "SELECT * FROM dataset WHERE name = ?", arguments: [name]).map(datasetInfo)
    }

    static func datasetInfo(_ row: Row) -> DatasetInfo {
        let spec = DatasetSpec(
            name: row["name"], vocabSize: row["vocab_size"],
            policy: SelectionPolicy(tau: row["tau"], kMin: row["k_min"], kMax: row["k_max"]),
            teacherId: row["teacher_id"], tokenizerId: row["tokenizer_id"], tokenizerHash: row["tokenizer_hash"],
            logprobScale: Float(row["logprob_scale"] as Double))
        return DatasetInfo(id: row["id"], spec: spec, createdAt: row["created_at"])
    }

    // MARK: Shards

    /// Registers a new open shard. Called after its file is created and its header made durable
    /// (`CacheStore.openNewShard`), so a crash in between leaves a file that no row names and that
    /// holds no acknowledged data; recovery moves it to quarantine/ ("no catalog row").
    public func insertShard(datasetId: Int64, uuid: UUID, path: String, committedBytes: UInt64) throws(StoreError) -> ShardEntry {
        try run("registering shard \(path)") {
            try pool.write { db in
                let generation = (try Int.fetchOne(db, sql: "SELECT max(generation) FROM shard WHERE dataset_id = ?",
                                                   arguments: [datasetId]) ?? 0) + 1
                let now = Self.timestamp()
                let empty = CoverageStats()
                try db.execute(sql: """
                    INSERT INTO shard (dataset_id, uuid, generation, path, state, committed_bytes, blocks,
                                       k_histogram, covered_histogram, created_at)
                    VALUES (?, ?, ?, ?, 'open', ?, 0, ?, ?, ?)
                    """, arguments: [datasetId, uuid.uuidString, generation, path, Int64(committedBytes),
                                     Self.encodeHistogram(empty.kHistogram), Self.encodeHistogram(empty.coveredHistogram), now])
                return ShardEntry(id: db.lastInsertedRowID, datasetId: datasetId, uuid: uuid, generation: generation,
                                  path: path, state: .open, committedBytes: committedBytes, blocks: 0, fileHash: nil,
                                  coverage: empty, quarantineReason: nil, createdAt: now, sealedAt: nil)
            }
        }
    }

    /// The next generation a shard of this dataset would get (for naming its file).
    public func nextGeneration(datasetId: Int64) throws(StoreError) -> Int {
        try run("reading shard generations") {
            try pool.read { db in
                (try Int.fetchOne(db, sql: "SELECT max(generation) FROM shard WHERE dataset_id = ?", arguments: [datasetId]) ?? 0) + 1
            }
        }
    }

    public func shards(datasetId: Int64? = nil, states: [ShardState]? = nil) throws(StoreError) -> [ShardEntry] {
        try run("listing shards") {
            try pool.read { db in
                var sql = "SELECT * FROM shard WHERE 1"
                var args: StatementArguments = []
                if let datasetId { sql += " AND dataset_id = ?"; args += [datasetId] }
                if let states {
                    sql += " AND state IN (\(states.map { _ in "?" }.joined(separator: ",")))"
                    for s in states { args += [s.rawValue] }
                }
                sql += " ORDER BY dataset_id, generation"
                return try Row.fetchAll(db, sql: sql, arguments: args).map(Self.shardEntry)
            }
        }
    }

    public func shard(id: Int64) throws(StoreError) -> ShardEntry? {
        try run("reading shard \(id)") {
            try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM shard WHERE id = ?", arguments: [id]).map(Self.shardEntry) }
        }
    }

    static func shardEntry(_ row: Row) -> ShardEntry {
        var coverage = CoverageStats()
        coverage.sequences = row["sequences"]
        coverage.positions = row["positions"]
        coverage.candidates = row["candidates"]
        coverage.goldForced = row["gold_forced"]
        coverage.coveredMassSum = row["covered_mass_sum"]
        coverage.kHistogram = decodeHistogram(row["k_histogram"])
        let covered = decodeHistogram(row["covered_histogram"])
        if covered.count == CoverageStats.coveredMassBins { coverage.coveredHistogram = covered }
        let hash: String? = row["file_hash"]
        return ShardEntry(
            id: row["id"], datasetId: row["dataset_id"], uuid: UUID(uuidString: row["uuid"]) ?? UUID(),
            generation: row["generation"], path: row["path"], state: ShardState(rawValue: row["state"]) ?? .quarantined,
            committedBytes: UInt64(row["committed_bytes"] as Int64), blocks: row["blocks"],
            fileHash: hash.flatMap { UInt64($0, radix: 16) }, coverage: coverage,
            quarantineReason: row["quarantine_reason"], createdAt: row["created_at"], sealedAt: row["sealed_at"])
    }

    // MARK: Commit

    /// What one group commit makes durable: new sequence rows and each touched shard's new
    /// committed length, block count and coverage delta — all in one transaction.
    public struct Commit: Sendable {
        public struct ShardProgress: Sendable {
            public var shardId: Int64
            public var committedBytes: UInt64
            public var blocks: Int
            public var coverageDelta: CoverageStats
            public init(shardId: Int64, committedBytes: UInt64, blocks: Int, coverageDelta: CoverageStats) {
                self.shardId = shardId
                self.committedBytes = committedBytes
                self.blocks = blocks
                self.coverageDelta = coverageDelta
            }
        }
        public var shards: [ShardProgress] = []
        public var sequences: [SequenceEntry] = []
        public init() {}
    }

    public func commit(_ commit: Commit) throws(StoreError) {
        try run("committing \(commit.sequences.count) sequences") {
            try pool.write { db in
                for progress in commit.shards {
                    guard let row = try Row.fetchOne(db, sql: "SELECT * FROM shard WHERE id = ?", arguments: [progress.shardId]) else {
                        throw StoreError.catalog("shard \(progress.shardId) vanished from the catalog")
                    }
                    var coverage = Self.shardEntry(row).coverage
                    coverage.merge(progress.coverageDelta)
                    try db.execute(sql: """
                        UPDATE shard SET committed_bytes = ?, blocks = ?, sequences = ?, positions = ?, candidates = ?,
                               gold_forced = ?, covered_mass_sum = ?, k_histogram = ?, covered_histogram = ?
                        WHERE id = ?
                        """, arguments: [Int64(progress.committedBytes), progress.blocks, coverage.sequences, coverage.positions,
                                         coverage.candidates, coverage.goldForced, coverage.coveredMassSum,
                                         Self.encodeHistogram(coverage.kHistogram), Self.encodeHistogram(coverage.coveredHistogram),
                                         progress.shardId])
                }
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO sequence (dataset_id, key, shard_id, block, ordinal, positions, candidates, gold_forced,
                                          covered_mass_sum, content_hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for s in commit.sequences {
                    try insert.execute(arguments: [s.datasetId, s.key, s.shardId, s.block, s.ordinal, s.positions, s.candidates,
                                                   s.goldForced, s.coveredMassSum, Int64(bitPattern: s.contentHash)])
                }
            }
        }
    }

    public func markSealed(shardId: Int64, path: String, bytes: UInt64, blocks: Int, fileHash: UInt64) throws(StoreError) {
        try run("marking shard \(shardId) sealed") {
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE shard SET state = 'sealed', path = ?, committed_bytes = ?, blocks = ?, file_hash = ?, sealed_at = ?
                    WHERE id = ?
                    """, arguments: [path, Int64(bytes), blocks, Self.hex(fileHash), Self.timestamp(), shardId])
            }
        }
    }

    public func markQuarantined(shardId: Int64, path: String, reason: String) throws(StoreError) {
        try run("quarantining shard \(shardId)") {
            try pool.write { db in
                try db.execute(sql: "UPDATE shard SET state = 'quarantined', path = ?, quarantine_reason = ? WHERE id = ?",
                               arguments: [path, reason, shardId])
            }
        }
    }

    public func recordQuarantine(originalPath: String, movedTo: String, reason: String) throws(StoreError) {
        try run("recording quarantine of \(originalPath)") {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO quarantine (original_path, moved_to, reason, at) VALUES (?, ?, ?, ?)",
                               arguments: [originalPath, movedTo, reason, Self.timestamp()])
            }
        }
    }

    // MARK: Sequences

    public func sequence(datasetId: Int64, key: String) throws(StoreError) -> SequenceEntry? {
        try run("looking up key '\(key)'") {
            try pool.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM sequence WHERE dataset_id = ? AND key = ?",
                                 arguments: [datasetId, key]).map(Self.sequenceEntry)
            }
        }
    }

    /// Content hashes of those `keys` that are already committed.
    public func contentHashes(datasetId: Int64, keys: [String]) throws(StoreError) -> [String: UInt64] {
        guard !keys.isEmpty else { return [:] }
        return try run("looking up \(keys.count) keys") {
            try pool.read { db in
                let statement = try db.cachedStatement(sql: "SELECT content_hash FROM sequence WHERE dataset_id = ? AND key = ?")
                var out: [String: UInt64] = [:]
                for key in keys {
                    if let h = try Int64.fetchOne(statement, arguments: [datasetId, key]) {
                        out[key] = UInt64(bitPattern: h)
                    }
                }
                return out
            }
        }
    }

    /// For each of `keys`, in order, whether it is committed — compared byte for byte, as SQLite
    /// does. (A `[String: …]` answer cannot say this: Swift's String equality is canonical
    /// equivalence, so "é" and "e\u{301}", two different stored keys, would be one entry.)
    public func committed(datasetId: Int64, keys: [String]) throws(StoreError) -> [Bool] {
        try committedHashes(datasetId: datasetId, keys: keys).map { $0 != nil }
    }

    /// For each of `keys`, in order, its content hash if it is committed (byte comparison).
    public func committedHashes(datasetId: Int64, keys: [String]) throws(StoreError) -> [UInt64?] {
        guard !keys.isEmpty else { return [] }
        return try run("looking up \(keys.count) keys") {
            try pool.read { db in
                let statement = try db.cachedStatement(sql: "SELECT content_hash FROM sequence WHERE dataset_id = ? AND key = ?")
                return try keys.map { try Int64.fetchOne(statement, arguments: [datasetId, $0]).map { UInt64(bitPattern: $0) } }
            }
        }
    }

    /// Every sequence row of a shard in storage order (block, ordinal).
    public func sequences(shardId: Int64) throws(StoreError) -> [SequenceEntry] {
        try run("listing sequences of shard \(shardId)") {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM sequence WHERE shard_id = ? ORDER BY block, ordinal",
                                 arguments: [shardId]).map(Self.sequenceEntry)
            }
        }
    }

    static func sequenceEntry(_ row: Row) -> SequenceEntry {
        SequenceEntry(datasetId: row["dataset_id"], key: row["key"], shardId: row["shard_id"], block: row["block"],
                      ordinal: row["ordinal"], positions: row["positions"], candidates: row["candidates"],
                      goldForced: row["gold_forced"], coveredMassSum: row["covered_mass_sum"],
                      contentHash: UInt64(bitPattern: row["content_hash"] as Int64))
    }

    /// Coverage of a dataset: the sum of its shards' aggregates (never a shard scan).
    /// Quarantined shards are left out; their sequences are not readable.
    public func coverage(datasetId: Int64) throws(StoreError) -> CoverageStats {
        var total = CoverageStats()
        for shard in try shards(datasetId: datasetId, states: [.open, .sealed]) { total.merge(shard.coverage) }
        return total
    }

    /// SQLite's own structural check of the catalog file (b-trees, indexes, free list): what a
    /// flipped byte in a page SQLite reads would break. Empty when the file is sound.
    public func integrityProblems() -> [String] {
        do {
            let rows = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            return rows == ["ok"] ? [] : rows
        } catch {
            return ["\(Self.storeError(error, context: "integrity check"))"]
        }
    }

    // MARK: Encoding helpers

    static func encodeHistogram(_ counts: [Int]) -> Data {
        var data = Data(capacity: counts.count * 8)
        for c in counts { withUnsafeBytes(of: UInt64(c).littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    static func decodeHistogram(_ data: Data?) -> [Int] {
        guard let data, data.count % 8 == 0 else { return [] }
        return stride(from: 0, to: data.count, by: 8).map { i in
            var v: UInt64 = 0
            for b in 0..<8 { v |= UInt64(data[data.startIndex + i + b]) << (8 * b) }
            return Int(clamping: v)
        }
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func timestamp() -> String {
        ISO8601DateFormatter().string(from: Date())
    }
}
