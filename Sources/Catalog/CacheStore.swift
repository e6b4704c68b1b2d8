import Foundation
import LogitCore
import ShardFormat
import Synchronization

/// A cache directory: the catalog plus the shard files it points at.
///
///     <cache>/catalog.sqlite                         the commit point (WAL, synchronous=FULL)
///     <cache>/LOCK                                   one writer at a time (flock)
///     <cache>/shards/<dataset>/<gen>-<uuid>.open     the dataset's open shard, appended to
///     <cache>/shards/<dataset>/<gen>-<uuid>.lgs      sealed shards, never rewritten
///     <cache>/quarantine/                            files recovery moved aside, never deleted
///
/// Writing is two-phase so that concurrent writers share one fsync and one catalog commit:
/// `append` validates a batch and encodes it into the open shard (not yet durable) and returns a
/// ticket; `waitDurable(ticket)` returns once a flush — fsync of every touched shard, then one
/// catalog transaction — has covered it. Whoever waits first flushes for everybody appended so far
/// (group commit). A batch is atomic: it is checked completely before anything is written, and a
/// failed flush fails every ticket it covered and cuts the shards back to their committed length.
public final class CacheStore: Sendable {
    public enum Mode: Sendable { case write, readOnly }

    public struct Options: Sendable {
        public var shardWriter = ShardWriterOptions()
        /// An open shard is sealed and a new one started once it reaches this size.
        public var maxShardBytes: UInt64 = 256 << 20
        /// Told the duration and sequence count of every group commit (metrics).
        public var flushObserver: (@Sendable (Duration, Int) -> Void)?
        /// Told when rotating a full shard fails: nothing acked is lost (the shard stays open, and
        /// the next commit retries), but someone must hear of it.
        public var sealFailureObserver: (@Sendable (_ shardPath: String, StoreError) -> Void)?
        public init() {}
    }

    /// What `append` did with a batch.
    public struct AppendResult: Sendable, Equatable {
        /// Pass to `waitDurable`; the batch is acked only after that returns.
        public var ticket: UInt64
        public var new: Int
        public var duplicates: Int
    }

    public let directory: String
    public let mode: Mode
    public let options: Options
    public let catalog: CatalogDB
    /// What start-up recovery found (empty in read-only mode).
    public let recovery: RecoveryReport
    let lock: DirectoryLock?
    let state: Mutex<WriterState>
    /// Serializes group commits, seals and recovery; held across fsync and the catalog commit
    /// while `state` is free for appends.
    let flushLock = Mutex<Void>(())
    let readers = Mutex<[Int64: ShardReader]>([:])
    let knownDatasets = Mutex<[String: DatasetInfo]>([:])

    /// The open shard of one dataset and what was appended to it since the last commit.
    struct OpenShard {
        var entry: ShardEntry
        let writer: ShardWriter
        var pendingCoverage = CoverageStats()
        var dirty = false
    }

    struct WriterState {
        var open: [Int64: OpenShard] = [:]
        var pendingRows: [SequenceEntry] = []
        /// datasetId → key → content hash of appended, not yet committed sequences.
        /// Keyed by the key's UTF-8 bytes: String equality is canonical equivalence, keys are bytes.
        var pendingKeys: [Int64: [[UInt8]: UInt64]] = [:]
        var appended: UInt64 = 0
        var committed: UInt64 = 0
        /// Set when an append failed half-way; cleared by recovery under the flush lock.
        var poisoned: StoreError?
        /// Ticket ranges (lo, hi] whose flush failed, newest last.
        var failures: [(lo: UInt64, hi: UInt64, error: StoreError)] = []
    }

    public var catalogPath: String { directory + "/catalog.sqlite" }

    /// Opens (creating if needed, in write mode) a cache directory. Write mode takes the
    /// directory lock and runs recovery before returning.
    public init(directory: String, mode: Mode = .write, options: Options = Options()) throws(StoreError) {
        self.directory = (directory as NSString).standardizingPath
        self.mode = mode
        self.options = options
        switch mode {
        case .write:
            try FileOps.makeDirectory(self.directory + "/shards")
            lock = try DirectoryLock(directory: self.directory)
            catalog = try CatalogDB(path: self.directory + "/catalog.sqlite")
            state = Mutex(WriterState())
            recovery = try Recovery(directory: self.directory, catalog: catalog, options: options.shardWriter).run()
        case .readOnly:
            guard FileOps.exists(self.directory) else { throw .notFound("no cache directory at \(self.directory)") }
            lock = nil
            catalog = try CatalogDB(path: self.directory + "/catalog.sqlite", readOnly: true)
            state = Mutex(WriterState())
            recovery = RecoveryReport()
        }
    }

    // MARK: Datasets

    @discardableResult
    public func createDataset(_ spec: DatasetSpec) throws(StoreError) -> (info: DatasetInfo, created: Bool) {
        try requireWritable()
        return try catalog.createDataset(spec)
    }

    /// Datasets are immutable once created, so a lookup can be cached for the store's life.
    public func dataset(named name: String) throws(StoreError) -> DatasetInfo {
        if let cached = knownDatasets.withLock({ $0[name] }) { return cached }
        try DatasetSpec.validateName(name)
        guard let info = try catalog.dataset(named: name) else { throw .unknownDataset(name) }
        knownDatasets.withLock { $0[name] = info }
        return info
    }

    public func datasets() throws(StoreError) -> [DatasetInfo] { try catalog.datasets() }

    public func coverage(dataset name: String) throws(StoreError) -> CoverageStats {
        try catalog.coverage(datasetId: try dataset(named: name).id)
    }

    // MARK: Writing

    /// Validates the whole batch, then encodes its new sequences into the dataset's open shard.
    /// Nothing is durable or visible to readers until `waitDurable(result.ticket)` returns.
    /// Throws without writing anything when any record is invalid or conflicts with a stored key.
    public func append(dataset name: String, records: [SequenceRecord]) throws(StoreError) -> AppendResult {
        do {
            return try appendUnrecovered(dataset: name, records: records)
        } catch {
            recoverIfPoisoned()
            throw error
        }
    }

    private func appendUnrecovered(dataset name: String, records: [SequenceRecord]) throws(StoreError) -> AppendResult {
        try requireWritable()
        let info = try dataset(named: name)
        let spec = info.spec
        // Validation and hashing need no lock: do them before taking it.
        var hashes: [UInt64] = []
        hashes.reserveCapacity(records.count)
        var coverages: [CoverageStats] = []
        coverages.reserveCapacity(records.count)
        // Keyed by bytes, as the catalog compares keys: "é" and "e\u{301}" are equal Strings.
        var firstIndex: [[UInt8]: Int] = [:]
        var keep: [Bool] = []
        keep.reserveCapacity(records.count)
        for (i, record) in records.enumerated() {
            let coverage: CoverageStats
            do { coverage = try record.validatedCoverage(vocabSize: spec.vocabSize, policy: spec.policy, logprobScale: spec.logprobScale) } catch {
                throw .invalidRecord(index: i, reason: error.description)
            }
            let h = contentHash(record, logprobScale: spec.logprobScale)
            hashes.append(h)
            coverages.append(coverage)
            let keyBytes = Array(record.key.utf8)
            if let first = firstIndex[keyBytes] {
                guard hashes[first] == h else { throw .duplicateKeyInBatch(key: record.key, first: first, second: i) }
                keep.append(false)
            } else {
                firstIndex[keyBytes] = i
                keep.append(true)
            }
        }
        let unique = records.indices.filter { keep[$0] }
        let storedHashes = try catalog.committedHashes(datasetId: info.id, keys: unique.map { records[$0].key })
        var storedCount = 0
        for (i, stored) in zip(unique, storedHashes) {
            if let h = stored {
                guard h == hashes[i] else { throw .keyConflict(dataset: name, key: records[i].key) }
                keep[i] = false
                storedCount += 1
            }
        }
        // A large batch is encoded and compressed into blocks of its own here, in parallel with
        // other requests; under the lock it is then only placed in the file.
        var encoded: [EncodedBlock]?
        let fresh = zip(records, keep).filter { $0.1 }.map { $0.0 }
        let freshBytes = fresh.reduce(0) { $0 + $1.candidates * 5 + $1.positions * 8 }
        if freshBytes >= options.shardWriter.targetBlockBytes / 4 {
            do {
                encoded = try ShardWriter.encodeBlocks(fresh, provenance: info.spec.provenance,
                                                       options: options.shardWriter, path: "shards/\(name)")
            } catch { throw StoreError(io: error) }
        }

        let result = try state.withLock { (s: inout WriterState) throws(StoreError) -> AppendResult in
            if let poisoned = s.poisoned { throw poisoned }
            var duplicates = records.count - firstIndex.count + storedCount
            let pending = s.pendingKeys[info.id] ?? [:]
            var raced = false
            for (i, record) in records.enumerated() where keep[i] {
                if let h = pending[Array(record.key.utf8)] {
                    guard h == hashes[i] else { throw .keyConflict(dataset: name, key: record.key) }
                    keep[i] = false
                    duplicates += 1
                    raced = true
                }
            }
            let new = keep.lazy.filter { $0 }.count
            if new > 0 {
                do throws(StoreError) {
                    try self.appendLocked(&s, info: info, records: records, keep: keep, hashes: hashes,
                                          coverages: coverages, encoded: raced ? nil : encoded)
                } catch {
                    // Cutting the shards back must not race a group commit in flight: mark the
                    // store and recover under the flush lock below.
                    s.poisoned = error
                    throw error
                }
            }
            s.appended += 1
            return AppendResult(ticket: s.appended, new: new, duplicates: duplicates)
        }
        return result
    }

    private func appendLocked(_ s: inout WriterState, info: DatasetInfo, records: [SequenceRecord], keep: [Bool],
                              hashes: [UInt64], coverages: [CoverageStats], encoded: [EncodedBlock]?) throws(StoreError) {
        var shard: OpenShard
        if let existing = s.open[info.id] { shard = existing } else { shard = try openNewShard(info) }
        var locations: [SequenceLocation] = []
        locations.reserveCapacity(records.count)
        do {
            if let encoded {
                for block in encoded {
                    let index = try shard.writer.append(encoded: block)
                    for ordinal in 0..<block.sequenceCount { locations.append(SequenceLocation(block: index, ordinal: ordinal)) }
                }
            } else {
                for (i, record) in records.enumerated() where keep[i] { locations.append(try shard.writer.appendValidated(record)) }
            }
        } catch {
            s.open[info.id] = shard
            throw StoreError(io: error)
        }
        var next = 0
        for (i, record) in records.enumerated() where keep[i] {
            let location = locations[next]
            next += 1
            let coverage = coverages[i]
            shard.pendingCoverage.merge(coverage)
            shard.dirty = true
            s.pendingRows.append(SequenceEntry(
                datasetId: info.id, key: record.key, shardId: shard.entry.id, block: location.block,
                ordinal: location.ordinal, positions: coverage.positions, candidates: coverage.candidates,
                goldForced: coverage.goldForced, coveredMassSum: coverage.coveredMassSum, contentHash: hashes[i]))
            s.pendingKeys[info.id, default: [:]][Array(record.key.utf8)] = hashes[i]
        }
        s.open[info.id] = shard
    }

    /// After an append failed mid-write: wait for any group commit in flight, then cut every open
    /// shard back to its committed length and fail all tickets not yet durable.
    private func recoverIfPoisoned() {
        flushLock.withLock { _ in
            state.withLock { s in
                guard let error = s.poisoned else { return }
                abandonPendingLocked(&s, error: error)
                s.poisoned = nil
            }
        }
    }

    /// Blocks until everything appended up to `ticket` is durable, flushing if nobody else has.
    /// Throws the flush's error if the flush that covered the ticket failed.
    ///
    /// Group commit in three steps, so appends go on while the disk works: under the state lock
    /// the pending blocks are written and the rows to commit are taken; with only the flush lock
    /// held the shards are fsynced and the catalog transaction commits; under the state lock again
    /// the tickets are marked durable. Whoever comes first flushes for everyone appended so far.
    public func waitDurable(_ ticket: UInt64) throws(StoreError) {
        func settled() throws(StoreError) -> Bool {
            try state.withLock { (s: inout WriterState) throws(StoreError) -> Bool in
                if let failure = s.failures.last(where: { $0.lo < ticket && ticket <= $0.hi }) { throw failure.error }
                return s.committed >= ticket
            }
        }
        if try settled() { return }
        try flushLock.withLock { (_: inout Void) throws(StoreError) in
            if try settled() { return }
            try self.groupCommit()
        }
        _ = try settled()
    }

    /// What one group commit took from the state: rows and each dirty shard's written length.
    private struct FlushSnapshot {
        struct Shard {
            var datasetId: Int64
            var shardId: Int64
            var length: UInt64
            var blocks: Int
            var coverage: CoverageStats
            var handle: DurabilityHandle
        }
        var target: UInt64
        var rows: [SequenceEntry]
        var shards: [Shard] = []
    }

    /// Caller holds `flushLock`.
    private func groupCommit() throws(StoreError) {
        let snapshot = try state.withLock { (s: inout WriterState) throws(StoreError) -> FlushSnapshot in
            if let poisoned = s.poisoned {
                abandonPendingLocked(&s, error: poisoned)
                s.poisoned = nil
                throw poisoned
            }
            var snap = FlushSnapshot(target: s.appended, rows: s.pendingRows)
            s.pendingRows = []
            for (datasetId, var shard) in s.open where shard.dirty {
                let length: UInt64
                do throws(ShardError) { length = try shard.writer.writePending() } catch {
                    let failure = StoreError(io: error)
                    abandonPendingLocked(&s, error: failure)
                    throw failure
                }
                snap.shards.append(.init(datasetId: datasetId, shardId: shard.entry.id, length: length,
                                         blocks: shard.writer.blockCount, coverage: shard.pendingCoverage,
                                         handle: shard.writer.durabilityHandle()))
                shard.pendingCoverage = CoverageStats()
                shard.dirty = false
                s.open[datasetId] = shard
            }
            return snap
        }
        let started = ContinuousClock.now
        var failure: StoreError?
        do throws(StoreError) {
            for shard in snapshot.shards {
                do throws(ShardError) { try shard.handle.sync() } catch { throw StoreError(io: error) }
            }
            var commit = CatalogDB.Commit()
            commit.shards = snapshot.shards.map {
                CatalogDB.Commit.ShardProgress(shardId: $0.shardId, committedBytes: $0.length, blocks: $0.blocks,
                                               coverageDelta: $0.coverage)
            }
            commit.sequences = snapshot.rows
            if !commit.sequences.isEmpty || !commit.shards.isEmpty { try catalog.commit(commit) }
        } catch {
            failure = error
        }
        try state.withLock { (s: inout WriterState) throws(StoreError) in
            if let failure {
                // The catalog still holds the old committed lengths: cut the shards back to them.
                abandonPendingLocked(&s, error: failure)
                throw failure
            }
            s.committed = max(s.committed, snapshot.target)
            for done in snapshot.shards {
                guard var shard = s.open[done.datasetId], shard.entry.id == done.shardId else { continue }
                shard.writer.markDurable(upTo: done.length)
                shard.entry.committedBytes = done.length
                shard.entry.blocks = done.blocks
                shard.entry.coverage.merge(done.coverage)
                s.open[done.datasetId] = shard
            }
            for row in snapshot.rows where s.pendingKeys[row.datasetId]?[Array(row.key.utf8)] == row.contentHash {
                s.pendingKeys[row.datasetId]?[Array(row.key.utf8)] = nil
            }
            // Rotate full shards that nothing was appended to since the snapshot. After the commit:
            // a seal failure must not un-ack durable data.
            for (_, shard) in s.open where !shard.dirty && shard.entry.committedBytes >= options.maxShardBytes {
                do throws(StoreError) { try sealLocked(&s, shard) } catch { options.sealFailureObserver?(shard.entry.path, error) }
            }
        }
        options.flushObserver?(ContinuousClock.now - started, snapshot.rows.count)
    }

    /// Appends and waits: the synchronous path for tools and tests.
    @discardableResult
    public func appendDurably(dataset name: String, records: [SequenceRecord]) throws(StoreError) -> AppendResult {
        let result = try append(dataset: name, records: records)
        try waitDurable(result.ticket)
        return result
    }

    /// Makes everything appended so far durable (the group commit, run now).
    public func flush() throws(StoreError) {
        try requireWritable()
        try flushLock.withLock { (_: inout Void) throws(StoreError) in try self.groupCommit() }
    }

    /// Flushes and seals every open shard (of one dataset, or all). Appends may land between the
    /// commit and the seal; a shard they touched is committed again before it is sealed.
    public func seal(dataset name: String? = nil) throws(StoreError) {
        try requireWritable()
        let only = try name.map { (n: String) throws(StoreError) in try dataset(named: n).id }
        try flushLock.withLock { (_: inout Void) throws(StoreError) in
            while true {
                try self.groupCommit()
                let sealed = try state.withLock { (s: inout WriterState) throws(StoreError) -> Bool in
                    let targets = s.open.filter { only == nil || only == $0.key }
                    guard !targets.values.contains(where: \.dirty) else { return false }
                    for (_, shard) in targets { try self.sealLocked(&s, shard) }
                    return true
                }
                if sealed { return }
            }
        }
    }

    /// Forgets everything appended since the last commit and cuts every open shard back to its
    /// committed length, so the next flush starts from a consistent state.
    private func abandonPendingLocked(_ s: inout WriterState, error: StoreError) {
        if s.appended > s.committed {
            s.failures.append((lo: s.committed, hi: s.appended, error: error))
            if s.failures.count > 1024 { s.failures.removeFirst(s.failures.count - 1024) }
        }
        s.committed = s.appended
        s.pendingRows.removeAll()
        s.pendingKeys.removeAll()
        let open = s.open
        s.open.removeAll()
        for (datasetId, shard) in open {
            let path = directory + "/" + shard.entry.path
            if let writer = try? ShardWriter.resume(path: path, committedLength: shard.entry.committedBytes,
                                                   options: options.shardWriter) {
                s.open[datasetId] = OpenShard(entry: shard.entry, writer: writer)
            }
            // If even that fails, the shard stays open in the catalog and recovery at the next
            // start-up deals with it; new appends go to a fresh shard.
        }
    }

    private func openNewShard(_ info: DatasetInfo) throws(StoreError) -> OpenShard {
        let generation = try catalog.nextGeneration(datasetId: info.id)
        let uuid = UUID()
        let dir = "shards/" + info.spec.name
        try FileOps.makeDirectory(directory + "/" + dir)
        let relative = dir + "/" + String(format: "%06d", generation) + "-" + uuid.uuidString.lowercased() + ".open"
        let provenance = info.spec.provenance
        let writer: ShardWriter
        let committed: UInt64
        do {
            writer = try ShardWriter(creating: directory + "/" + relative, provenance: provenance, shardID: uuid,
                                     options: options.shardWriter)
            committed = try writer.flush()
        } catch { throw StoreError(io: error) }
        try FileOps.fsyncDirectory(directory + "/" + dir)
        let entry = try catalog.insertShard(datasetId: info.id, uuid: uuid, path: relative, committedBytes: committed)
        return OpenShard(entry: entry, writer: writer)
    }

    private func sealLocked(_ s: inout WriterState, _ shard: OpenShard) throws(StoreError) {
        let finalRelative = Self.sealedPath(for: shard.entry.path)
        let sealed: SealedShard
        do { sealed = try shard.writer.seal(to: directory + "/" + finalRelative) } catch {
            // The failed seal left a footer past the committed length and a writer that refuses
            // further appends: cut the file back and keep appending to it (nothing acked is lost,
            // and the next append does not fail for this).
            if let writer = try? ShardWriter.resume(path: directory + "/" + shard.entry.path,
                                                    committedLength: shard.entry.committedBytes, options: options.shardWriter) {
                s.open[shard.entry.datasetId] = OpenShard(entry: shard.entry, writer: writer)
            }
            throw StoreError(io: error)
        }
        s.open[shard.entry.datasetId] = nil
        try catalog.markSealed(shardId: shard.entry.id, path: finalRelative, bytes: sealed.bytes, blocks: sealed.blocks,
                               fileHash: sealed.fileHash)
    }

    static func sealedPath(for openPath: String) -> String {
        openPath.hasSuffix(".open") ? String(openPath.dropLast(5)) + ".lgs" : openPath + ".lgs"
    }

    /// Moves a shard's file into quarantine/ and marks its row, so readers get a clear error
    /// instead of bad data. Returns the new relative path, or nil if the file was already gone.
    /// An open shard being written is not touched (stop the writer first).
    public func quarantineShard(id: Int64, reason: String) throws(StoreError) -> String? {
        try requireWritable()
        guard let shard = try catalog.shard(id: id), shard.state != .quarantined else { return nil }
        return try state.withLock { (s: inout WriterState) throws(StoreError) -> String? in
            if s.open[shard.datasetId]?.entry.id == id { s.open[shard.datasetId] = nil }
            readers.withLock { $0[id] = nil }
            let path = directory + "/" + shard.path
            guard FileOps.exists(path) else {
                try catalog.markQuarantined(shardId: id, path: shard.path, reason: reason + " (file missing)")
                return nil
            }
            let moved = try Quarantine(directory: directory, catalog: catalog).move(path, reason: reason)
            try catalog.markQuarantined(shardId: id, path: moved, reason: reason)
            return moved
        }
    }

    private func requireWritable() throws(StoreError) {
        guard mode == .write else { throw .locked("cache \(directory) is open read-only") }
    }

    // MARK: Reading

    /// The committed sequence stored under `key`, decoded from its shard and checked against the
    /// catalog (key and content hash), or nil when the key is unknown.
    public func read(dataset name: String, key: String) throws(StoreError) -> SequenceRecord? {
        let info = try dataset(named: name)
        guard let entry = try catalog.sequence(datasetId: info.id, key: key) else { return nil }
        guard let shard = try catalog.shard(id: entry.shardId) else {
            throw .corrupt("sequence '\(key)' points at shard \(entry.shardId), which has no catalog row")
        }
        let record = try read(entry: entry, shard: shard)
        guard contentHash(record, logprobScale: info.spec.logprobScale) == entry.contentHash else {
            throw .corrupt("sequence '\(key)' in \(shard.path) block \(entry.block) does not match its catalog content hash")
        }
        return record
    }

    /// Decodes one catalogued sequence and checks that the shard holds the key the catalog expects.
    public func read(entry: SequenceEntry, shard: ShardEntry) throws(StoreError) -> SequenceRecord {
        guard shard.state != .quarantined else {
            throw .corrupt("sequence '\(entry.key)' is in quarantined shard \(shard.path): \(shard.quarantineReason ?? "")")
        }
        let reader = try reader(for: shard)
        let record: SequenceRecord
        do { record = try reader.sequence(block: entry.block, ordinal: entry.ordinal) } catch { throw .corrupt(error.description) }
        guard record.key == entry.key else {
            throw .corrupt("\(shard.path) block \(entry.block) ordinal \(entry.ordinal) holds key '\(record.key)', catalog expects '\(entry.key)'")
        }
        return record
    }

    /// A reader of a shard's committed bytes. Sealed readers are cached; an open shard is read up
    /// to the committed length the catalog row gives (what lies beyond is not acked).
    public func reader(for shard: ShardEntry) throws(StoreError) -> ShardReader {
        let path = directory + "/" + shard.path
        do {
            switch shard.state {
            case .sealed:
                if let cached = readers.withLock({ $0[shard.id] }) { return cached }
                let reader = try ShardReader(sealedAt: path)
                readers.withLock { $0[shard.id] = reader }
                return reader
            case .open:
                // pread, not mmap: recovery after a failed flush may cut an open file back, and a
                // mapping past the new end would fault.
                return try ShardReader(openAt: path, committedLength: shard.committedBytes, access: .pread)
            case .quarantined:
                throw StoreError.corrupt("shard \(shard.path) is quarantined: \(shard.quarantineReason ?? "")")
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .corrupt("\(error)")
        }
    }
}
