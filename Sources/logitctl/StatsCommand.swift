import ArgumentParser
import Catalog
import Foundation
import LogitCore

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Coverage and cost of a cache, answered from the catalog aggregates.")

    @Argument(help: "Cache directory.") var cacheDir: String
    @Option(help: "Only this dataset.") var dataset: String?
    @Flag(help: "One row per shard as well.") var byShard = false
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Recompute everything from the shards and report disagreements with the catalog.") var deep = false

    func run() throws {
        do {
            let store = try openReadOnly(cacheDir)
            let datasets = try store.datasets()
            guard !datasets.isEmpty else { throw StoreError.notFound("cache \(cacheDir) holds no datasets yet") }
            let summary = try CoverageSummary.make(store: store, dataset: dataset)
            var shardRows: [ShardRow] = []
            if byShard {
                let id = try dataset.map { try store.dataset(named: $0).id }
                for shard in try store.catalog.shards(datasetId: id) {
                    shardRows.append(ShardRow(shard))
                }
            }
            var problems: [String] = []
            if deep {
                let result = try CacheVerifier(store: store).verify(dataset: dataset)
                problems = result.problems.map(\.description)
            }
            if json {
                try printJSON(StatsJSON(summary: summary, shards: byShard ? shardRows : nil,
                                        deepProblems: deep ? problems : nil))
            } else {
                printTable(summary, datasets: datasets)
                if byShard { printShards(shardRows) }
                if deep {
                    print(problems.isEmpty ? "deep check: catalog agrees with the shards" : "deep check: \(problems.count) problem(s)")
                    for p in problems { print("  " + p) }
                }
            }
            if !problems.isEmpty { throw ExitStatus.problems }
        } catch let code as ExitCode {
            throw code
        } catch {
            throw fail(error)
        }
    }

    struct ShardRow: Codable {
        var path: String, state: String, sequences: Int, positions: Int, candidates: Int, bytes: UInt64
        var kMean: Double, goldForcedRate: Double
        enum CodingKeys: String, CodingKey {
            case path, state, sequences, positions, candidates, bytes, kMean = "k_mean", goldForcedRate = "gold_forced_rate"
        }
        init(_ s: ShardEntry) {
            path = s.path; state = s.state.rawValue; sequences = s.coverage.sequences; positions = s.coverage.positions
            candidates = s.coverage.candidates; bytes = s.committedBytes; kMean = s.coverage.kMean
            goldForcedRate = s.coverage.goldForcedRate
        }
    }

    struct StatsJSON: Encodable {
        var summary: CoverageSummary
        var shards: [ShardRow]?
        var deepProblems: [String]?
        func encode(to encoder: Encoder) throws {
            try summary.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encodeIfPresent(shards, forKey: Key("shards"))
            try c.encodeIfPresent(deepProblems, forKey: Key("deep_problems"))
        }
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ s: String) { stringValue = s }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }

    func printTable(_ s: CoverageSummary, datasets: [DatasetInfo]) {
        func row(_ label: String, _ value: String) { print(label.padding(toLength: 26, withPad: " ", startingAt: 0) + value) }
        func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
        if let name = s.dataset {
            row("dataset", name)
            row("vocab / tokenizer", "\(s.vocabSize ?? 0) / \(s.tokenizerId ?? "") \(s.tokenizerHash ?? "")")
            row("teacher", s.teacherId ?? "")
            row("policy", String(format: "τ = %.4g, K ∈ [%d, %d]", s.tau ?? 0, s.kMin ?? 0, s.kMaxPolicy ?? 0))
        } else {
            row("datasets", datasets.map(\.spec.name).joined(separator: ", "))
        }
        row("sequences", "\(s.sequences)")
        row("positions", "\(s.positions)")
        row("candidates", "\(s.candidates)")
        row("K mean / p50 / p90 / p99", String(format: "%.2f / %d / %d / %d (max %d)", s.kMean, s.kP50, s.kP90, s.kP99, s.kMax))
        row("covered mass mean / p5", String(format: "%.4f / %.2f", s.coveredMassMean, s.coveredMassP5))
        row("outside mass mean / p95", String(format: "%.4f / %.2f", s.outsideMassMean, s.outsideMassP95))
        row("gold forced", pct(s.goldForcedRate))
        row("bytes on disk", "\(s.bytes)")
        row("bytes / position", String(format: "%.3f", s.bytesPerPosition))
        row("bytes / candidate", String(format: "%.3f", s.bytesPerCandidate))
        row("vs naive u32+f32", String(format: "%.2f× smaller", s.compressionRatio))
        row("shards", "\(s.shardsSealed) sealed, \(s.shardsOpen) open, \(s.shardsQuarantined) quarantined")
        print("K histogram:")
        let peak = s.kHistogram.max() ?? 1
        for (k, count) in s.kHistogram.enumerated() where count > 0 {
            let bar = String(repeating: "█", count: max(1, count * 40 / max(peak, 1)))
            print(String(format: "  K=%-4d %10d ", k, count) + bar)
        }
    }

    func printShards(_ rows: [ShardRow]) {
        print("shards:")
        for r in rows {
            print("  \(r.path)  \(r.state.padding(toLength: 6, withPad: " ", startingAt: 0)) \(r.sequences) seq  \(r.positions) pos  "
                  + String(format: "K %.2f  ", r.kMean) + "\(r.bytes) B")
        }
    }
}

struct DatasetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "datasets", abstract: "List datasets with provenance and sizes.")
    @Argument(help: "Cache directory.") var cacheDir: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        do {
            let store = try openReadOnly(cacheDir)
            let datasets = try store.datasets()
            let summaries = try datasets.map { try CoverageSummary.make(store: store, dataset: $0.spec.name) }
            if json { return try printJSON(summaries) }
            if datasets.isEmpty { print("no datasets in \(cacheDir)"); return }
            for s in summaries {
                print("\(s.dataset ?? "")  vocab \(s.vocabSize ?? 0)  τ \(s.tau ?? 0) K \(s.kMin ?? 0)…\(s.kMaxPolicy ?? 0)  teacher '\(s.teacherId ?? "")'  tokenizer '\(s.tokenizerId ?? "")'  \(s.sequences) seq  \(s.positions) pos  \(s.bytes) B")
            }
        } catch {
            throw fail(error)
        }
    }
}
