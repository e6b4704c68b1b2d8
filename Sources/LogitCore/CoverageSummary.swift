import Foundation

/// The answer to "is τ right, how often was gold outside the set, what does it cost on disk",
/// computed from the catalog aggregates only (never a shard scan; `Catalog` makes it). `logitctl stats --json` and
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

    /// Every field; `Catalog` builds one from a dataset's aggregates.
    public init(dataset: String?, vocabSize: Int?, tau: Double?, kMin: Int?, kMaxPolicy: Int?, teacherId: String?,
                tokenizerId: String?, tokenizerHash: String?, sequences: Int, positions: Int, candidates: Int, kMean: Double,
                kP50: Int, kP90: Int, kP99: Int, kMax: Int, kHistogram: [Int], coveredMassMean: Double, coveredMassP5: Double,
                outsideMassMean: Double, outsideMassP95: Double, goldForcedRate: Double, bytes: UInt64, bytesPerCandidate: Double,
                bytesPerPosition: Double, compressionRatio: Double, shardsOpen: Int, shardsSealed: Int, shardsQuarantined: Int) {
        self.dataset = dataset
        self.vocabSize = vocabSize
        self.tau = tau
        self.kMin = kMin
        self.kMaxPolicy = kMaxPolicy
        self.teacherId = teacherId
        self.tokenizerId = tokenizerId
        self.tokenizerHash = tokenizerHash
        self.sequences = sequences
        self.positions = positions
        self.candidates = candidates
        self.kMean = kMean
        self.kP50 = kP50
        self.kP90 = kP90
        self.kP99 = kP99
        self.kMax = kMax
        self.kHistogram = kHistogram
        self.coveredMassMean = coveredMassMean
        self.coveredMassP5 = coveredMassP5
        self.outsideMassMean = outsideMassMean
        self.outsideMassP95 = outsideMassP95
        self.goldForcedRate = goldForcedRate
        self.bytes = bytes
        self.bytesPerCandidate = bytesPerCandidate
        self.bytesPerPosition = bytesPerPosition
        self.compressionRatio = compressionRatio
        self.shardsOpen = shardsOpen
        self.shardsSealed = shardsSealed
        self.shardsQuarantined = shardsQuarantined
    }
}
