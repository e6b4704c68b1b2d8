import ArgumentParser
import Catalog
import Foundation
import LogitCore
import ShardFormat

/// `logit-bench decode`: the Swift decoder on a real cache — every block of every committed shard
/// of a dataset, each shard opened afresh (sealed shards memory-mapped, open ones read up to
/// their committed length), checksums verified. The baseline `python -m logitd.cache bench`
/// sets its own decode against, on the same file.
struct DecodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode", abstract: "Decode speed of a cache's dataset (every block, checksums verified).")

    @Option(help: "Cache directory.") var cache: String
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Timed passes; the best is reported.") var repeats = 5
    @Flag(help: "Print only the JSON line.") var json = false

    func run() throws {
        let store = try CacheStore(directory: cache, mode: .readOnly)
        let info = try store.dataset(named: dataset)
        let shards = try store.catalog.shards(datasetId: info.id, states: [.sealed, .open])
        guard !shards.isEmpty else { throw ValidationError("dataset \(dataset) has no readable shards") }
        var sequences = 0, candidates = 0, blocks = 0
        let seconds = try bestTime(repeats: repeats) {
            sequences = 0; candidates = 0; blocks = 0
            var out: [SequenceRecord] = []
            for shard in shards {
                let path = cache + "/" + shard.path
                let reader = shard.state == .sealed
                    ? try ShardReader(sealedAt: path, access: .mmap)
                    : try ShardReader(openAt: path, committedLength: shard.committedBytes, access: .pread)
                for b in 0..<reader.blockCount {
                    try reader.decodeBlock(b, into: &out)
                    blocks += 1
                    sequences += out.count
                    for r in out { candidates += r.ids.count }
                }
            }
        }
        if !json { print(String(format: "%d shards, %d blocks, %d candidates: %.1f M candidates/s", shards.count, blocks, candidates,
                                Double(candidates) / seconds / 1e6)) }
        printJSONLine([("bench", "decode"), ("dataset", dataset), ("shards", shards.count), ("blocks", blocks),
                       ("sequences", sequences), ("candidates", candidates), ("seconds", seconds),
                       ("decode_candidates_per_s", Double(candidates) / seconds)])
    }
}
