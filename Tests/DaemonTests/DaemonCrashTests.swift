import Catalog
import Foundation
import LogitClient
import LogitCore
import ShardFormat
import SharedMemory
import Synchronization
import WireFormat
import XCTest

/// Storage invariant 2 (docs/DESIGN.md §4.4) end to end: a 200 from logitd means durable. Several clients stream (sets
/// over HTTP, and logits rows through shared memory), logitd is SIGKILLed at a random moment,
/// restarted on the same cache: every sequence that got a 200 is present and byte-identical,
/// nothing else is half-visible, and it serves again.
final class DaemonCrashTests: XCTestCase {
    func testAckedBatchesSurviveSIGKILLOfTheDaemon() async throws {
        let cache = temporaryDirectory()
        let spec = DatasetSpec(name: "crash", vocabSize: 4000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 12))
        let generator = RandomRecords(vocabSize: 4000, policy: spec.policy, maxTokens: 40)
        var rng = SplitMix64(seed: UInt64(Date().timeIntervalSince1970 * 1000))
        let acked = AckLog()
        for round in 0..<3 {
            let daemon = try DaemonProcess(cacheDir: cache, arguments: ["--max-shard-bytes", "65536"])
            try await daemon.waitReady()
            let baseURL = daemon.baseURL!
            try await LogitClient(baseURL: baseURL).createDataset(spec)
            let killAfter = UInt64(150 + rng.next() % 600)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<4 {
                    group.addTask {
                        let client = LogitClient(baseURL: baseURL, maxAttempts: 1)
                        var b = 0
                        while true {
                            let batch = (0..<5).map { generator.record(key: "r\(round)-c\(c)-b\(b)-\($0)", seed: 7) }
                            do {
                                _ = try await client.append(dataset: "crash", vocabSize: 4000, records: batch)
                            } catch {
                                return   // the daemon is gone
                            }
                            acked.keys.withLock { $0 += batch.map(\.key) }
                            b += 1
                        }
                    }
                }
                // A same-host teacher: logits rows in a shared-memory slot, the daemon selects.
                group.addTask {
                    let client = LogitClient(baseURL: baseURL, maxAttempts: 1)
                    let teacher = SyntheticTeacher(vocabSize: 4000, seed: 3)
                    let selector = try TopKSelector(policy: spec.policy)
                    guard let slots = try? await SharedMemorySlots(client: client, name: "crash-teacher", slotBytes: 1 << 20) else { return }
                    var b = 0
                    while true {
                        let key = "r\(round)-shm-b\(b)"
                        var rows = [Float](repeating: 0, count: 10 * 4000)
                        var tokens: [UInt32] = [1]
                        for t in 0..<10 {
                            tokens.append(rows.withUnsafeMutableBufferPointer {
                                teacher.fillRow(position: 10 * b + t, into: UnsafeMutableBufferPointer(rebasing: $0[t * 4000..<(t + 1) * 4000]))
                            })
                        }
                        var encoder = WireBatchEncoder(mode: .logits, vocabSize: 4000, dtype: .f32)
                        rows.withUnsafeBytes { encoder.appendLogits(key: key, tokens: tokens, rows: $0) }
                        do {
                            _ = try await slots.append(dataset: "crash", body: encoder.finish(), slot: 0)
                        } catch {
                            return   // the daemon is gone
                        }
                        let sets = try rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: 4000, golds: Array(tokens.dropFirst())) }
                        acked.logits.withLock { $0[key] = SequenceRecord(key: key, tokens: tokens, selected: sets) }
                        b += 1
                    }
                }
                try await Task.sleep(for: .milliseconds(killAfter))
                XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
                try await group.waitForAll()
            }
        }
        // Restart once more: recovery runs, then check from the files.
        let daemon = try DaemonProcess(cacheDir: cache)
        try await daemon.waitReady()
        let store = try CacheStore(directory: cache, mode: .readOnly)
        let keys = acked.keys.withLock { $0 }
        XCTAssertGreaterThan(keys.count, 0, "nothing was acked: the test proved nothing")
        for key in keys {
            let expected = canonicalized(generator.record(key: key, seed: 7), logprobScale: 64)
            XCTAssertEqual(try store.read(dataset: "crash", key: key), expected, "acked \(key) lost or changed")
        }
        let logits = acked.logits.withLock { $0 }
        XCTAssertGreaterThan(logits.count, 0, "no shared-memory batch was acked")
        for (key, record) in logits {
            XCTAssertEqual(try store.read(dataset: "crash", key: key), canonicalized(record, logprobScale: 64), "acked \(key) lost or changed")
        }
        // Nothing half-visible: every catalogued sequence decodes and matches its hash.
        let audit = try CacheVerifier(store: store).verify()
        XCTAssertTrue(audit.isClean, "\(audit.problems)")
        XCTAssertGreaterThanOrEqual(audit.sequencesChecked, keys.count + logits.count)
        // And it serves again.
        let again = try await LogitClient(baseURL: daemon.baseURL).append(
            dataset: "crash", vocabSize: 4000, records: [generator.record(key: "after", seed: 7)])
        XCTAssertEqual(again.new, 1)
        XCTAssertEqual(daemon.stop(), 0)
    }
}

/// Keys the clients saw acknowledged, shared by the client tasks.
final class AckLog: Sendable {
    let keys = Mutex<[String]>([])
    /// Logits batches acked through shared memory, with the sets the daemon had to store.
    let logits = Mutex<[String: SequenceRecord]>([:])
}
