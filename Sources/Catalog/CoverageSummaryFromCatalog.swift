import Foundation
import LogitCore

/// The answer to "is τ right, how often was gold outside the set, what does it cost on disk",
/// computed from the catalog aggregates only (never a shard scan). `logitctl stats --json` and
/// the daemon's stats endpoint print exactly this object.
public struct CoverageSummary: Sendable, Codable, Equatable {
    public var dataset: String?
    public var vocabSize: Int?
    public var tau: Double?
    public var kMin: Int?
    public var kMaxPolicy: Int?
    public var teacherId: String?
    public var tokenizerId: String?
    public var tokenizerHash: String?
    public var sequences: Int
    public var positions: Int
    public var candidates: Int
    public var kMean: Double
    public var kP50: Int
    public var kP90: Int
    public var kP99: Int
    public var kMax: Int
    /// `kHistogram[k]` positions held k candidates.
    public var kHistogram: [Int]
    public var coveredMassMean: Double
    public var coveredMassP5: Double
    public var outsideMassMean: Double
    public var outsideMassP95: Double
    public var goldForcedRate: Double
    public var bytes: UInt64
    public var bytesPerCandidate: Double
    public var bytesPerPosition: Double
    /// Naive u32 id + f32 log-prob per candidate, divided by the bytes on disk.
    public var compressionRatio: Double
    public var shardsOpen: Int
    public var shardsSealed: Int
    public var shardsQuarantined: Int

    enum CodingKeys: String, CodingKey {
        case dataset, vocabSize = "vocab_size", tau, kMin = "k_min", kMaxPolicy = "k_max_policy",
             teacherId = "teacher_id", tokenizerId = "tokenizer_id", tokenizerHash = "tokenizer_hash",
             sequences, positions, candidates, kMean = "k_mean", kP50 = "k_p50", kP90 = "k_p90",
             kP99 = "k_p99", kMax = "k_max", kHistogram = "k_histogram",
             coveredMassMean = "covered_mass_mean", coveredMassP5 = "covered_mass_p5",
             outsideMassMean = "outside_mass_mean", outsideMassP95 = "outside_mass_p95",
             goldForcedRate = "gold_forced_rate", bytes, bytesPerCandidate = "bytes_per_candidate",
             bytesPerPosition = "bytes_per_position", compressionRatio = "compression_ratio",
             shardsOpen = "shards_open", shardsSealed = "shards_sealed", shardsQuarantined = "shards_quarantined"
    }

    public init(coverage c: CoverageStats, shards: [ShardEntry], dataset: DatasetInfo?) {
        let live = shards.filter { $0.state != .quarantined }
        bytes = live.reduce(0) { $0 + $1.committedBytes }
        self.dataset = dataset?.spec.name
        vocabSize = dataset?.spec.vocabSize
        tau = dataset?.spec.policy.tau
        kMin = dataset?.spec.policy.kMin
        kMaxPolicy = dataset?.spec.policy.kMax
        teacherId = dataset?.spec.teacherId
        tokenizerId = dataset?.spec.tokenizerId
        tokenizerHash = dataset?.spec.tokenizerHash
        sequences = c.sequences
        positions = c.positions
        candidates = c.candidates
        kMean = c.kMean
        kP50 = c.kQuantile(0.5)
        kP90 = c.kQuantile(0.9)
        kP99 = c.kQuantile(0.99)
        kMax = c.kMax
        kHistogram = c.kHistogram.trimmed()
        coveredMassMean = c.coveredMassMean
        coveredMassP5 = c.coveredMassQuantile(0.05)
        outsideMassMean = c.outsideMassMean
        outsideMassP95 = 1 - coveredMassP5
        goldForcedRate = c.goldForcedRate
        bytesPerCandidate = c.candidates == 0 ? 0 : Double(bytes) / Double(c.candidates)
        bytesPerPosition = c.positions == 0 ? 0 : Double(bytes) / Double(c.positions)
        compressionRatio = bytes == 0 ? 0 : Double(c.candidates * 8) / Double(bytes)
        shardsOpen = shards.filter { $0.state == .open }.count
        shardsSealed = shards.filter { $0.state == .sealed }.count
        shardsQuarantined = shards.filter { $0.state == .quarantined }.count
    }

    /// The summary of one dataset, or of all datasets together when `name` is nil.
    public static func make(store: CacheStore, dataset name: String?) throws(StoreError) -> CoverageSummary {
        if let name {
            let info = try store.dataset(named: name)
            let shards = try store.catalog.shards(datasetId: info.id)
            return CoverageSummary(coverage: try store.catalog.coverage(datasetId: info.id), shards: shards, dataset: info)
        }
        let shards = try store.catalog.shards()
        var total = CoverageStats()
        for shard in shards where shard.state != .quarantined { total.merge(shard.coverage) }
        let datasets = try store.datasets()
        return CoverageSummary(coverage: total, shards: shards, dataset: datasets.count == 1 ? datasets[0] : nil)
    }
}
