import ArgumentParser
import Catalog
import Dispatch
import Foundation
import LogitCore
import Replay
import Losses

/// `logit-bench replay`: positions per second delivered as training batches to one consumer,
/// in the shuffled order and, as the baseline in the same run, in file order. The cache is
/// built once per run in a temporary directory: synthetic sequences (V = 49,152, K in 1…64,
/// mean ≈ 30, Zipf-like ids, sorted log-probs) written through `CacheStore` and sealed.
/// The consumer touches every batch (sums its candidate count) and returns it; each
/// measurement opens the dataset afresh, so block checksums are verified again.
struct ReplayBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Replay throughput: batches from a sealed cache, shuffled vs file order.")

    @Option(help: "Positions to write (at least).") var positions = 1_048_576
    @Option(help: "Tokens per sequence.") var sequenceTokens = 1_025
    @Option(help: "Positions per batch.") var maxTokens = 16_384
    @Option(help: "Positions per row (longer sequences are cut).") var maxSequenceLength = 2_048
    @Option(help: "Shuffle window in sequences (default: ReplayOptions' default).") var window = ReplayOptions().window
    @Option(help: "Timing repetitions (best is reported).") var repeats = 3
    @Option(help: "Cache directory to build in (default: a temporary one, removed afterwards).") var directory: String? = nil
    @Flag(help: "Print only the JSON line.") var json = false

    static let vocab = 49_152
    static let policy = SelectionPolicy(tau: 0.95, kMin: 1, kMax: 64)

    func run() throws {
        guard sequenceTokens >= 2, positions >= 1 else { throw ValidationError("need sequence tokens ≥ 2 and positions ≥ 1") }
        let dir = directory ?? NSTemporaryDirectory() + "logit-bench-replay-\(getpid())"
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let t0 = now()
        let perSequence = sequenceTokens - 1
        let sequences = (positions + perSequence - 1) / perSequence
        try build(dir: dir, sequences: sequences)
        if !json { print(String(format: "wrote %d sequences (%d positions) in %.1f s", sequences, sequences * perSequence, now() - t0)) }

        func measure(shuffle: Bool) throws -> (seconds: Double, positions: Int, candidates: Int, batches: Int) {
            var best = (Double.infinity, 0, 0, 0)
            for _ in 0..<max(repeats, 1) {
                let started = now()
                let ds = try ReplayDataset(directory: dir, datasets: ["bench"])
                let options = ReplayOptions(seed: 1, shuffle: shuffle, window: window, maxTokens: maxTokens,
                                            maxSequenceLength: maxSequenceLength)
                let loader = try ds.makeLoader(epoch: 0, options: options)
                var p = 0, c = 0, b = 0
                while let batch = try loader.next() {
                    p += batch.positions
                    c += Int(batch.setOffsets[batch.positions])
                    b += 1
                }
                let seconds = now() - started
                if seconds < best.0 { best = (seconds, p, c, b) }
            }
            return best
        }
        let shuffled = try measure(shuffle: true)
        let sequential = try measure(shuffle: false)
        let meanK = Double(shuffled.candidates) / Double(shuffled.positions)
        if !json {
            print(String(format: "shuffled:   %.2f M positions/s (%d batches, %.2f s)", Double(shuffled.positions) / shuffled.seconds / 1e6,
                         shuffled.batches, shuffled.seconds))
            print(String(format: "file order: %.2f M positions/s (%d batches, %.2f s)", Double(sequential.positions) / sequential.seconds / 1e6,
                         sequential.batches, sequential.seconds))
        }
        printJSONLine([
            "bench": "replay", "positions": shuffled.positions, "sequences": sequences, "mean_k": meanK,
            "max_tokens": maxTokens, "max_sequence_length": maxSequenceLength, "window": window,
            "batches": shuffled.batches,
            "positions_per_s": Double(shuffled.positions) / shuffled.seconds,
            "sequential_positions_per_s": Double(sequential.positions) / sequential.seconds,
            "candidates_per_s": Double(shuffled.candidates) / shuffled.seconds,
        ])
    }

    /// Writes `sequences` synthetic sequences in parallel-generated batches and seals the shard.
    func build(dir: String, sequences: Int) throws {
        let store = try CacheStore(directory: dir)
        try store.createDataset(DatasetSpec(name: "bench", vocabSize: Self.vocab, policy: Self.policy,
                                            teacherId: "synthetic", tokenizerId: "synthetic", tokenizerHash: "-"))
        let batch = 64
        var next = 0
        while next < sequences {
            let n = min(batch, sequences - next)
            let first = next
            let tokens = sequenceTokens
            let slots = UnsafeMutableBufferPointer<SequenceRecord?>.allocate(capacity: n)
            slots.initialize(repeating: nil)
            defer { slots.deinitialize(); slots.deallocate() }
            nonisolated(unsafe) let sp = slots.baseAddress!
            DispatchQueue.concurrentPerform(iterations: n) { i in
                sp[i] = Self.syntheticSequence(index: first + i, tokens: tokens)
            }
            try store.appendDurably(dataset: "bench", records: slots.map { $0! })
            next += n
        }
        try store.seal()
    }

    /// One sequence, a pure function of its index: K ~ 1 + ⌊60·u²⌋ish (mean ≈ 30), ids skewed to
    /// small values as real token frequencies are, the gold among them, log-probs descending.
    static func syntheticSequence(index: Int, tokens count: Int) -> SequenceRecord {
        var rng = SplitMix64(seed: 0xBE4C_0000 &+ UInt64(index))
        func id() -> UInt32 { let u = rng.nextUnit(); return UInt32(Double(vocab - 1) * u * u * u) }
        var tokens = [UInt32](repeating: 0, count: count)
        for t in 0..<count { tokens[t] = id() }
        var offsets: [UInt32] = [0], ids: [UInt32] = [], lps: [Float] = []
        offsets.reserveCapacity(count)
        ids.reserveCapacity(32 * count)
        lps.reserveCapacity(32 * count)
        for t in 0..<(count - 1) {
            let k = 1 + Int(rng.next() % 60)
            let lo = ids.count
            ids.append(tokens[t + 1])
            while ids.count - lo < k {
                let v = id()
                if !ids[lo...].contains(v) { ids.append(v) }
            }
            // Probabilities p_j ∝ 1/(j+1)² scaled to a covered mass of 0.95, descending.
            var total = 0.0
            for j in 0..<k { total += 1 / Double((j + 1) * (j + 1)) }
            for j in 0..<k { lps.append(Float(log(0.95 / Double((j + 1) * (j + 1)) / total))) }
            // The gold is not always the most probable: swap it to a random rank.
            let r = Int(rng.next() % UInt64(k))
            ids.swapAt(lo, lo + r)
            offsets.append(UInt32(ids.count))
        }
        return SequenceRecord(key: "s\(index)", tokens: tokens, setOffsets: offsets, ids: ids, logprobs: lps,
                              goldForced: [Bool](repeating: false, count: count - 1))
    }
}
