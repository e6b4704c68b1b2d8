import Foundation
import LogitCore
import ShardFormat

/// `logitctl verify` and `stats --deep`: check every page and WAL frame of the catalog file
/// against its checksum (`CatalogFileAudit`), read every block of every shard, check checksums
/// and decoded invariants, and check that catalog and files agree (counts, hashes, missing and
/// orphan files, every catalogued key at its recorded location with its recorded content).
public struct CacheVerifier {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var block: Int?
        public var message: String
        public var description: String {
            block.map { "\(path) block \($0): \(message)" } ?? "\(path): \(message)"
        }
    }

    public struct Result: Sendable {
        public var problems: [Problem] = []
        public var shardsChecked = 0
        public var blocksChecked = 0
        public var sequencesChecked = 0
        public var catalogPagesChecked = 0
        public var catalogFramesChecked = 0
        /// Coverage recomputed from the shards, per dataset id.
        public var recomputed: [Int64: CoverageStats] = [:]
        /// Shards whose own contents are bad (the candidates for `--quarantine`).
        public var badShards: [Int64] = []
        public var isClean: Bool { problems.isEmpty }
    }

    public let store: CacheStore

    public init(store: CacheStore) { self.store = store }

    /// `progress(done, total)` is called after each shard.
    public func verify(dataset name: String? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws(StoreError) -> Result {
        var result = Result()
        let audit = CatalogFileAudit.run(catalogPath: store.catalogPath)
        result.problems += audit.problems
        result.catalogPagesChecked = audit.pagesChecked
        result.catalogFramesChecked = audit.framesChecked
        for problem in store.catalog.integrityProblems() {
            result.problems.append(Problem(path: "catalog.sqlite", block: nil, message: "integrity check: \(problem)"))
        }
        let datasetId = try name.map { (n: String) throws(StoreError) in try store.dataset(named: n).id }
        let shards = try store.catalog.shards(datasetId: datasetId)
        let datasets = Dictionary(uniqueKeysWithValues: try store.datasets().map { ($0.id, $0) })
        for (i, shard) in shards.enumerated() {
            guard let info = datasets[shard.datasetId] else { continue }
            let problemsBefore = result.problems.count
            check(shard: shard, info: info, into: &result)
            if result.problems.count > problemsBefore { result.badShards.append(shard.id) }
            progress(i + 1, shards.count)
        }
        if name == nil { findOrphans(known: Set(shards.map(\.path)), into: &result) }
        return result
    }

    private func check(shard: ShardEntry, info: DatasetInfo, into result: inout Result) {
        func problem(_ message: String, block: Int? = nil) {
            result.problems.append(Problem(path: shard.path, block: block, message: message))
        }
        result.shardsChecked += 1
        let path = store.directory + "/" + shard.path
        guard shard.state != .quarantined else {
            problem("quarantined (\(shard.quarantineReason ?? "no reason recorded")); its \(shard.coverage.sequences) sequence(s) are unreadable")
            return
        }
        guard let size = FileOps.size(path) else { return problem("file is missing") }
        if shard.state == .sealed {
            if size != shard.committedBytes { problem("file has \(size) bytes, catalog recorded \(shard.committedBytes)") }
            if let expected = shard.fileHash {
                do {
                    let actual = try ShardReader.fileHash(path: path)
                    if actual != expected { problem("file hash \(CatalogDB.hex(actual)) ≠ catalog \(CatalogDB.hex(expected))") }
                } catch { problem("\(error)") }
            }
        } else if size < shard.committedBytes {
            problem("open shard has \(size) bytes, fewer than the \(shard.committedBytes) committed")
        }
        let reader: ShardReader
        do { reader = try store.reader(for: shard) } catch { return problem("\(error)") }
        if reader.provenance.vocabSize != info.spec.vocabSize || reader.provenance.datasetName != info.spec.name {
            problem("header names dataset '\(reader.provenance.datasetName)' vocab \(reader.provenance.vocabSize), catalog says '\(info.spec.name)' vocab \(info.spec.vocabSize)")
        }
        if reader.blockCount < shard.blocks { problem("\(reader.blockCount) blocks readable, catalog committed \(shard.blocks)") }
        var goodBlocks = Set<Int>()
        for block in 0..<reader.blockCount {
            result.blocksChecked += 1
            do {
                try reader.verifyBlock(block)
                goodBlocks.insert(block)
            } catch { problem(error.reason, block: block) }
        }
        let entries: [SequenceEntry]
        do { entries = try store.catalog.sequences(shardId: shard.id) } catch { return problem("\(error)") }
        var coverage = CoverageStats()
        var record = SequenceRecord(key: "", tokens: [], setOffsets: [], ids: [], logprobs: [], goldForced: [])
        for entry in entries {
            guard goodBlocks.contains(entry.block) else {
                if entry.block >= reader.blockCount {
                    problem("catalog places key '\(entry.key)' in block \(entry.block), beyond the file's \(reader.blockCount) blocks")
                }
                continue
            }
            do { try reader.decode(block: entry.block, ordinal: entry.ordinal, into: &record) } catch {
                problem("key '\(entry.key)': \(error.reason)", block: entry.block)
                continue
            }
            result.sequencesChecked += 1
            if record.key != entry.key {
                problem("ordinal \(entry.ordinal) holds key '\(record.key)', catalog expects '\(entry.key)'", block: entry.block)
            } else if contentHash(record, logprobScale: info.spec.logprobScale) != entry.contentHash {
                problem("key '\(entry.key)' does not match its catalog content hash", block: entry.block)
            }
            coverage.add(record)
        }
        let stored = reader.blockCount > 0 ? (0..<reader.blockCount).reduce(0) { $0 + reader.blockInfo($1).sequenceCount } : 0
        if stored != entries.count && shard.state == .sealed {
            problem("file holds \(stored) sequences, catalog lists \(entries.count)")
        }
        result.recomputed[shard.datasetId, default: CoverageStats()].merge(coverage)
        compare(coverage, with: shard.coverage, logprobScale: info.spec.logprobScale, problem: { problem($0) })
    }

    /// Reports where the catalog's aggregates disagree with a recount (the `--deep` check).
    private func compare(_ recount: CoverageStats, with catalog: CoverageStats, logprobScale: Float, problem: (String) -> Void) {
        if recount.sequences != catalog.sequences { problem("catalog counts \(catalog.sequences) sequences, shard holds \(recount.sequences)") }
        if recount.positions != catalog.positions { problem("catalog counts \(catalog.positions) positions, shard holds \(recount.positions)") }
        if recount.candidates != catalog.candidates { problem("catalog counts \(catalog.candidates) candidates, shard holds \(recount.candidates)") }
        if recount.goldForced != catalog.goldForced { problem("catalog counts \(catalog.goldForced) gold-forced positions, shard holds \(recount.goldForced)") }
        if recount.kHistogram.trimmed() != catalog.kHistogram.trimmed() { problem("catalog K histogram differs from the shard's") }
        // Covered mass is recomputed from quantized log-probs: each lp is off by at most
        // 0.5/scale, so each position's Σp by at most a factor exp(0.5/scale), plus rounding.
        let perPosition = SequenceRecord.maxCoveredMass(logprobScale: logprobScale) - 1 + 1e-6
        let tolerance = perPosition * Double(max(recount.positions, 1))
        if abs(recount.coveredMassSum - catalog.coveredMassSum) > tolerance {
            problem("catalog covered-mass sum \(catalog.coveredMassSum), shard gives \(recount.coveredMassSum)")
        }
    }

    private func findOrphans(known: Set<String>, into result: inout Result) {
        let root = store.directory + "/shards"
        for dataset in FileOps.subdirectories(of: root) {
            for name in FileOps.files(in: root + "/" + dataset) where !known.contains("shards/\(dataset)/\(name)") {
                result.problems.append(Problem(path: "shards/\(dataset)/\(name)", block: nil, message: "file has no catalog row (orphan)"))
            }
        }
    }
}

extension Array where Element == Int {
    /// Without trailing zero buckets, so histograms of different lengths compare by content.
    func trimmed() -> [Int] {
        var copy = self
        while copy.last == 0 { copy.removeLast() }
        return copy
    }
}
