import Foundation
import LogitCore

/// The coverage summary as the catalog computes it.
extension CoverageSummary {
    public init(coverage c: CoverageStats, shards: [ShardEntry], dataset: DatasetInfo?) {
        let live = shards.filter { $0.state != .quarantined }
        let bytes = live.reduce(0) { $0 + $1.committedBytes }
        let coveredMassP5 = c.coveredMassQuantile(0.05)
        self.init(
            dataset: dataset?.spec.name,
            vocabSize: dataset?.spec.vocabSize,
            tau: dataset?.spec.policy.tau,
            kMin: dataset?.spec.policy.kMin,
            kMaxPolicy: dataset?.spec.policy.kMax,
            teacherId: dataset?.spec.teacherId,
            tokenizerId: dataset?.spec.tokenizerId,
            tokenizerHash: dataset?.spec.tokenizerHash,
            sequences: c.sequences,
            positions: c.positions,
            candidates: c.candidates,
            kMean: c.kMean,
            kP50: c.kQuantile(0.5),
            kP90: c.kQuantile(0.9),
            kP99: c.kQuantile(0.99),
            kMax: c.kMax,
            kHistogram: c.kHistogram.trimmed(),
            coveredMassMean: c.coveredMassMean,
            coveredMassP5: coveredMassP5,
            outsideMassMean: c.outsideMassMean,
            outsideMassP95: 1 - coveredMassP5,
            goldForcedRate: c.goldForcedRate,
            bytes: bytes,
            bytesPerCandidate: c.candidates == 0 ? 0 : Double(bytes) / Double(c.candidates),
            bytesPerPosition: c.positions == 0 ? 0 : Double(bytes) / Double(c.positions),
            compressionRatio: bytes == 0 ? 0 : Double(c.candidates * 8) / Double(bytes),
            shardsOpen: shards.filter { $0.state == .open }.count,
            shardsSealed: shards.filter { $0.state == .sealed }.count,
            shardsQuarantined: shards.filter { $0.state == .quarantined }.count)
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
