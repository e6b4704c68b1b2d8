import ArgumentParser
import Catalog
import Foundation
import LogitCore

/// Writes batches of random sequences from several threads into a cache and records each key in
/// an ack log only after `waitDurable` returned — exactly what a 200 from the daemon promises.
/// Runs until killed; the crash tests SIGKILL it and then check every acked key.
@main
struct Torture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-torture",
        abstract: "Write and flush sequences until killed (crash-test driver).")

    @Option(help: "Cache directory.") var cache: String
    @Option(help: "Ack log: one line 'key' per durable sequence.") var acks: String
    @Option(help: "Seed of the random records (the checker regenerates them from it).") var seed: UInt64 = 1
    @Option(help: "Writer threads.") var writers: Int = 4
    @Option(help: "Sequences per batch.") var batch: Int = 8
    @Option(help: "Rotate shards at this many bytes (small: exercises sealing).") var maxShardBytes: UInt64 = 64 << 10
    @Option(help: "Stop after this many batches per writer (0: run until killed).") var batches: Int = 0

    static let dataset = DatasetSpec(name: "torture", vocabSize: 5000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16))
    static func generator() -> RandomRecords { RandomRecords(vocabSize: dataset.vocabSize, policy: dataset.policy, maxTokens: 48) }

    func run() throws {
        var options = CacheStore.Options()
        options.maxShardBytes = maxShardBytes
        options.shardWriter.targetBlockBytes = 4096
        let store = try CacheStore(directory: cache, options: options)
        FileHandle.standardError.write(Data((store.recovery.description + "\n").utf8))
        try store.createDataset(Self.dataset)
        let fd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot open ack log \(acks)") }
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        let generator = Self.generator()
        let (seed, writers, batch, batches) = (seed, writers, batch, batches)
        DispatchQueue.concurrentPerform(iterations: writers) { w in
            var i = 0
            while batches == 0 || i < batches {
                let keys = (0..<batch).map { "s\(seed)-w\(w)-\(i)-\($0)" }
                let records = keys.map { generator.record(key: $0, seed: seed) }
                do {
                    try store.appendDurably(dataset: Self.dataset.name, records: records)
                } catch {
                    FileHandle.standardError.write(Data("append failed: \(error)\n".utf8))
                    i += 1
                    continue
                }
                let line = keys.joined(separator: "\n") + "\n"
                _ = line.withCString { write(fd, $0, strlen($0)) }
                i += 1
            }
        }
        try store.seal()
    }
}
