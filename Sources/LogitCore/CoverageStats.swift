import Foundation

/// Coverage aggregates that answer "is τ right?" without scanning shards: kept per sequence
/// and per shard in the catalog, and merged for a dataset. All fields are sums or
/// histograms, so merging is addition and quantiles come from the histograms.
public struct CoverageStats: Sendable, Equatable, Codable {
    public var sequences: Int = 0
    public var positions: Int = 0
    /// Σ K over positions.
    public var candidates: Int = 0
    public var goldForced: Int = 0
    /// Σ over positions of the covered teacher mass Σ exp(lp).
    public var coveredMassSum: Double = 0
    /// `kHistogram[k]` = positions whose set holds k ids (k ≥ kHistogram.count is clamped
    /// into the last bucket, which only happens for K beyond the array the caller sized).
    public var kHistogram: [Int] = []
    /// Covered mass in `coveredMassBins` equal bins over [0, 1].
    public var coveredHistogram: [Int] = Array(repeating: 0, count: CoverageStats.coveredMassBins)

    public static let coveredMassBins = 100

    public init() {}

    /// Adds one sequence's positions.
    public mutating func add(_ record: SequenceRecord) {
        sequences += 1
        for t in 0..<record.positions {
            let lo = Int(record.setOffsets[t]), hi = Int(record.setOffsets[t + 1])
            var mass = 0.0
            for j in lo..<hi { mass += Double(exp(record.logprobs[j])) }
            addPosition(k: hi - lo, coveredMass: mass, goldForced: record.goldForced[t])
        }
    }

    public mutating func addPosition(k: Int, coveredMass: Double, goldForced forced: Bool) {
        positions += 1
        candidates += k
        if forced { goldForced += 1 }
        coveredMassSum += coveredMass
        if k >= kHistogram.count { kHistogram += Array(repeating: 0, count: k + 1 - kHistogram.count) }
        kHistogram[k] += 1
        let bin = min(max(Int(coveredMass * Double(Self.coveredMassBins)), 0), Self.coveredMassBins - 1)
        coveredHistogram[bin] += 1
    }

    public mutating func merge(_ other: CoverageStats) {
        sequences += other.sequences
        positions += other.positions
        candidates += other.candidates
        goldForced += other.goldForced
        coveredMassSum += other.coveredMassSum
        if other.kHistogram.count > kHistogram.count {
            kHistogram += Array(repeating: 0, count: other.kHistogram.count - kHistogram.count)
        }
        for (k, c) in other.kHistogram.enumerated() { kHistogram[k] += c }
        for (b, c) in other.coveredHistogram.enumerated() { coveredHistogram[b] += c }
    }

    public var kMean: Double { positions == 0 ? 0 : Double(candidates) / Double(positions) }
    public var coveredMassMean: Double { positions == 0 ? 0 : coveredMassSum / Double(positions) }
    public var outsideMassMean: Double { positions == 0 ? 0 : 1 - coveredMassMean }
    public var goldForcedRate: Double { positions == 0 ? 0 : Double(goldForced) / Double(positions) }
    public var kMax: Int { kHistogram.lastIndex(where: { $0 > 0 }) ?? 0 }

    /// Exact K quantile (K is an integer, so the histogram is lossless): the smallest k with
    /// at least q of the positions at or below it.
    public func kQuantile(_ q: Double) -> Int {
        guard positions > 0 else { return 0 }
        let target = max(1, Int((q * Double(positions)).rounded(.up)))
        var seen = 0
        for (k, c) in kHistogram.enumerated() {
            seen += c
            if seen >= target { return k }
        }
        return kMax
    }

    /// Covered-mass quantile to bin resolution (1/coveredMassBins): the upper edge of the
    /// bin holding the q-th position.
    public func coveredMassQuantile(_ q: Double) -> Double {
        guard positions > 0 else { return 0 }
        let target = max(1, Int((q * Double(positions)).rounded(.up)))
        var seen = 0
        for (b, c) in coveredHistogram.enumerated() {
            seen += c
            if seen >= target { return Double(b + 1) / Double(Self.coveredMassBins) }
        }
        return 1
    }
}
