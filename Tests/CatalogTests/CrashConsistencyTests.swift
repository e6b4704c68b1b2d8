import Foundation
import LogitCore
import ShardFormat
import XCTest
@testable import Catalog

/// Storage invariants 2–4 (docs/DESIGN.md §4.4) with a real process and a real SIGKILL: `logit-torture` writes from
/// several threads and logs a key only after its batch was durable; we kill it at a random
/// moment, reopen the cache (running recovery) and check every acked key byte for byte.
final class CrashConsistencyTests: XCTestCase {
    func testAckedSequencesSurviveSIGKILL() throws {
        let torture = productPath("logit-torture")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: torture), "logit-torture not built at \(torture)")
        let dir = makeTemporaryDirectory()
        let acks = dir + "/../" + (dir as NSString).lastPathComponent + ".acks"
        // The kill moments come from a fresh seed each run (more interleavings over time); it is
        // printed and named in every failure, and LOGITD_CRASH_SEED replays the same kill delays.
        let timingSeed = ProcessInfo.processInfo.environment["LOGITD_CRASH_SEED"].flatMap { UInt64($0) }
            ?? UInt64(Date().timeIntervalSince1970 * 1000)
        print("CrashConsistencyTests: kill timing seed \(timingSeed) (replay with LOGITD_CRASH_SEED=\(timingSeed))")
        var rng = SplitMix64(seed: timingSeed)
        let rounds = ProcessInfo.processInfo.environment["LOGITD_CRASH_ROUNDS"].flatMap(Int.init) ?? 6
        var totalAcked = 0
        for round in 0..<rounds {
            let seed = UInt64(round + 1)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: torture)
            process.arguments = ["--cache", dir, "--acks", acks, "--seed", "\(seed)", "--writers", "4", "--batch", "6"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait for "ready" (recovery done), then let it write for a random while.
            _ = out.fileHandleForReading.availableData
            usleep(UInt32(50_000 + rng.next() % 700_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal)

            let store = try CacheStore(directory: dir)
            let generator = Torture.generator()
            let ackedKeys = try String(contentsOfFile: acks, encoding: .utf8).split(separator: "\n").map(String.init)
            // Every acked key of every round so far is present and byte-identical.
            for key in ackedKeys {
                let roundSeed = UInt64(key.dropFirst().prefix { $0 != "-" })!
                let expected = canonicalized(generator.record(key: key, seed: roundSeed), logprobScale: 64)
                let got = try store.read(dataset: "torture", key: key)
                XCTAssertEqual(got, expected, "seed \(timingSeed) round \(round): acked key \(key) lost or changed")
            }
            // Nothing half-visible: every catalogued sequence decodes and matches its hash.
            let audit = try CacheVerifier(store: store).verify()
            XCTAssertTrue(audit.isClean, "seed \(timingSeed) round \(round): \(audit.problems)")
            XCTAssertGreaterThanOrEqual(audit.sequencesChecked, ackedKeys.count)
            // A kill between creating a shard file and registering it leaves an orphan that never
            // held acked data; it is moved aside. Anything else quarantined is a failure.
            for action in store.recovery.quarantined {
                XCTAssertTrue(action.what.hasPrefix("no catalog row"), "seed \(timingSeed) round \(round): \(store.recovery)")
            }
            XCTAssertTrue(store.recovery.missing.isEmpty, "seed \(timingSeed) round \(round): \(store.recovery)")
            totalAcked = ackedKeys.count
        }
        XCTAssertGreaterThan(totalAcked, 0, "the writer never acked anything: the test proved nothing")
    }
}

/// Mirrors logit-torture's dataset and generator (the test cannot import an executable).
enum Torture {
    static func generator() -> RandomRecords {
        RandomRecords(vocabSize: 5000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16), maxTokens: 48)
    }
}
