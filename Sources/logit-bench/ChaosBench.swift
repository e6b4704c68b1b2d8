import ArgumentParser
import Catalog
import Foundation
import LogitClient
import LogitCore
import Replay
import Losses
import ShardFormat
import WireFormat

/// `logit-bench chaos`: the storage promises under attack, with figures.
///
/// Each round starts `logitd` on the same cache, streams sets-mode and logits-mode batches
/// from concurrent clients, SIGKILLs the daemon at a random moment, restarts it (timing
/// recovery until /readyz), checks every acknowledged sequence byte for byte against what the
/// clients sent, and runs `logitctl verify`. Then, on copies of the cache, it plants damage —
/// a flipped byte or a truncation in a sealed shard, a flipped byte or a truncation anywhere in
/// the catalog file — and runs the read paths (verify, read by key, replay). `corrupt` counts
/// reads that returned wrong data instead of an error; `detected` counts plantings some read
/// path reported as an error; `verify_detected` those the `logitctl verify` binary itself
/// reported (exit status ≠ 0). Catalog flips that land where SQLite reads nothing (free pages,
/// unused space in a page) are caught by the catalog's page checksums; `harmless_catalog_flips`
/// counts catalog flips nothing reported and that changed no answer (the target is 0).
struct ChaosBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chaos", abstract: "Crash and corruption rounds with figures.")

    @Option(help: "Kill/restart rounds.") var rounds: Int = 5
    @Option(help: "Damaged copies to check after the rounds.") var flips: Int = 20
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Flag(help: "Print only the JSON line.") var json = false

    static let setsSpec = DatasetSpec(name: "chaos", vocabSize: 5000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16))
    static let logitsSpec = DatasetSpec(name: "chaos-logits", vocabSize: 4096, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16))

    func run() async throws {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let logitd = dir.appendingPathComponent("logitd").path, logitctl = dir.appendingPathComponent("logitctl").path
        guard FileManager.default.isExecutableFile(atPath: logitd), FileManager.default.isExecutableFile(atPath: logitctl) else {
            throw ValidationError("logitd and logitctl must be built beside logit-bench")
        }
        let work = FileManager.default.temporaryDirectory.path + "/logit-bench-chaos-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let cache = work + "/cache"
        var rng = SplitMix64(seed: seed)
        let expected = ExpectedLog()
        var recoveryMs: [Double] = []
        var verifyFailures = 0

        for round in 0..<rounds {
            let t0 = now()
            let daemon = try BenchDaemon(binary: logitd, cache: cache, extraArguments: ["--max-shard-bytes", "262144"])
            try await daemon.waitReady()
            if round > 0 { recoveryMs.append((now() - t0) * 1000) }
            let client = LogitClient(baseURL: daemon.baseURL)
            try await client.createDataset(Self.setsSpec)
            try await client.createDataset(Self.logitsSpec)
            let killAfter = 0.3 + Double(rng.next() % 1000) / 1000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<4 { group.addTask { await Self.streamSets(daemon.baseURL, round: round, client: c, log: expected) } }
                group.addTask { await Self.streamLogits(daemon.baseURL, round: round, log: expected) }
                try await Task.sleep(for: .milliseconds(Int(killAfter * 1000)))
                kill(daemon.process.processIdentifier, SIGKILL)
                daemon.process.waitUntilExit()
                try await group.waitForAll()
            }
            // Restart once to run recovery, then audit from the files.
            let check = try BenchDaemon(binary: logitd, cache: cache)
            try await check.waitReady()
            check.stop()
            if try Self.runStatus(logitctl, ["verify", cache]) != 0 { verifyFailures += 1 }
        }
        let acked = expected.snapshot()
        let store = try CacheStore(directory: cache, mode: .readOnly)
        var lost = 0
        for (dataset, key, record) in acked where (try? store.read(dataset: dataset, key: key)) != record { lost += 1 }

        // Damage on copies.
        var expectedByKey: [String: SequenceRecord] = [:]
        for (dataset, key, record) in acked where dataset == Self.setsSpec.name { expectedByKey[key] = record }
        var detected = 0, verifyDetected = 0, corrupt = 0, harmless = 0, replayRows = 0
        let sealed = try store.catalog.shards(states: [.sealed])
        for f in 0..<flips {
            let copy = work + "/copy-\(f)"
            try FileManager.default.copyItem(atPath: cache, toPath: copy)
            let kind = f % 4
            if kind < 2, !sealed.isEmpty {
                let shard = sealed[Int(rng.next() % UInt64(sealed.count))]
                let path = copy + "/" + shard.path
                let size = shard.committedBytes
                if kind == 0 { try Self.flipByte(path, at: rng.next() % size) } else { _ = truncate(path, off_t(rng.next() % size)) }
            } else {
                let path = copy + "/catalog.sqlite"
                let size = UInt64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0)
                if kind == 2 { try Self.flipByte(path, at: 100 + rng.next() % max(size - 100, 1)) } else { _ = truncate(path, off_t(rng.next() % size)) }
            }
            if try Self.runStatus(logitctl, ["verify", copy]) != 0 { verifyDetected += 1 }
            var reported = false, wrong = false
            if let damaged = try? CacheStore(directory: copy, mode: .readOnly) {
                if let result = try? CacheVerifier(store: damaged).verify() { reported = !result.isClean } else { reported = true }
                for (dataset, key, record) in acked {
                    do {
                        if let got = try damaged.read(dataset: dataset, key: key), got != record { wrong = true }
                    } catch { reported = true }
                }
            } else {
                reported = true
            }
            let replay = Self.replayCheck(copy: copy, original: store, expected: expectedByKey)
            replayRows += replay.checked
            reported = reported || replay.reported
            wrong = wrong || replay.wrong
            if wrong { corrupt += 1 }
            if reported { detected += 1 } else if kind == 2 && !wrong { harmless += 1 }
            try? FileManager.default.removeItem(atPath: copy)
        }
        recoveryMs.sort()
        let p99 = recoveryMs.isEmpty ? 0 : recoveryMs[min(recoveryMs.count - 1, Int(0.99 * Double(recoveryMs.count)))]
        if !json { print("\(rounds) rounds, \(acked.count) acked sequences, \(flips) damaged copies") }
        printJSONLine(["rounds": rounds, "acked": acked.count, "lost": lost, "corrupt": corrupt,
                       "recovery_ms_p99": p99, "verify_failures": verifyFailures, "flips": flips,
                       "detected": detected, "verify_detected": verifyDetected, "harmless_catalog_flips": harmless,
                       "replay_rows_checked": replayRows])
    }

    static func streamSets(_ url: URL, round: Int, client c: Int, log: ExpectedLog) async {
        let generator = RandomRecords(vocabSize: setsSpec.vocabSize, policy: setsSpec.policy, maxTokens: 48)
        let client = LogitClient(baseURL: url, maxAttempts: 1)
        for b in 0... {
            let batch = (0..<6).map { generator.record(key: "r\(round)-c\(c)-b\(b)-\($0)", seed: 9) }
            guard (try? await client.append(dataset: setsSpec.name, vocabSize: setsSpec.vocabSize, records: batch)) != nil else { return }
            log.add(batch.map { (setsSpec.name, $0.key, canonicalized($0, logprobScale: 64)) })
        }
    }

    static func streamLogits(_ url: URL, round: Int, log: ExpectedLog) async {
        let vocab = logitsSpec.vocabSize
        let teacher = SyntheticTeacher(vocabSize: vocab, seed: 77)
        let selector = try! TopKSelector(policy: logitsSpec.policy)
        let client = LogitClient(baseURL: url, maxAttempts: 1)
        for b in 0... {
            let positions = 16
            var rows = [Float](repeating: 0, count: positions * vocab)
            var tokens: [UInt32] = [1]
            for t in 0..<positions {
                tokens.append(rows.withUnsafeMutableBufferPointer {
                    teacher.fillRow(position: 1000 * round + 50 * b + t, into: UnsafeMutableBufferPointer(rebasing: $0[t * vocab..<(t + 1) * vocab]))
                })
            }
            let key = "logits-r\(round)-b\(b)"
            var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: .f32)
            rows.withUnsafeBytes { encoder.appendLogits(key: key, tokens: tokens, rows: $0) }
            guard (try? await client.append(dataset: logitsSpec.name, body: encoder.finish())) != nil else { return }
            let sets = try! rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: vocab, golds: Array(tokens.dropFirst())) }
            log.add([(logitsSpec.name, key, canonicalized(SequenceRecord(key: key, tokens: tokens, selected: sets), logprobScale: 64))])
        }
    }

    /// Replays the sets dataset of a damaged copy and compares every delivered row with what was
    /// acked for the sequence at that location (located through the undamaged original catalog).
    static func replayCheck(copy: String, original: CacheStore, expected: [String: SequenceRecord]) -> (reported: Bool, wrong: Bool, checked: Int) {
        var checked = 0
        do {
            let dataset = try ReplayDataset(directory: copy, datasets: [setsSpec.name])
            let loader = try dataset.makeLoader(epoch: 0, options: ReplayOptions(seed: 1))
            defer { loader.stop() }
            var keys: [UUID: [[String]]] = [:]   // uuid → block → ordinal → key
            for shard in try original.catalog.shards() {
                var blocks: [[String]] = []
                for entry in try original.catalog.sequences(shardId: shard.id) {
                    while blocks.count <= entry.block { blocks.append([]) }
                    blocks[entry.block].append(entry.key)
                }
                keys[shard.uuid] = blocks
            }
            while let batch = try loader.next() {
                for (r, source) in batch.rowSources.enumerated() {
                    let shard = dataset.snapshot.shards[Int(source.sequence.shard)]
                    guard let key = keys[shard.uuid]?[safe: Int(source.sequence.block)]?[safe: Int(source.sequence.ordinal)],
                          let record = expected[key] else { continue }
                    let lo = Int(batch.rowOffsets[r]), hi = Int(batch.rowOffsets[r + 1])
                    checked += 1
                    for p in lo..<hi {
                        let t = source.start + p - lo
                        guard t + 1 < record.tokens.count, batch.inputs[p] == record.tokens[t], batch.targets[p] == record.tokens[t + 1] else {
                            return (false, true, checked)
                        }
                        let got = Array(batch.ids[Int(batch.setOffsets[p])..<Int(batch.setOffsets[p + 1])])
                        let want = Array(record.ids[Int(record.setOffsets[t])..<Int(record.setOffsets[t + 1])])
                        let gotLp = Array(batch.logprobs[Int(batch.setOffsets[p])..<Int(batch.setOffsets[p + 1])])
                        let wantLp = Array(record.logprobs[Int(record.setOffsets[t])..<Int(record.setOffsets[t + 1])])
                        if got != want || gotLp != wantLp { return (false, true, checked) }
                    }
                }
            }
            return (false, false, checked)
        } catch {
            return (true, false, checked)
        }
    }

    static func flipByte(_ path: String, at offset: UInt64) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        guard let byte = try handle.read(upToCount: 1)?.first else { return }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0x20])
    }

    static func runStatus(_ binary: String, _ arguments: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
}

/// What the clients saw acknowledged: (dataset, key, the record as the cache must return it).
final class ExpectedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, String, SequenceRecord)] = []
    func add(_ items: [(String, String, SequenceRecord)]) { lock.lock(); entries += items; lock.unlock() }
    func snapshot() -> [(String, String, SequenceRecord)] { lock.lock(); defer { lock.unlock() }; return entries }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
