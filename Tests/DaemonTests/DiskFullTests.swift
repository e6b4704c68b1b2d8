import Catalog
import Foundation
import LogitClient
import LogitCore
import XCTest

/// logitd on a filesystem that fills up: writes fail with 507 and a clear message, the daemon
/// stays up, acked data stays intact, and writes succeed again once space is freed.
/// Needs root (a size-limited tmpfs); skipped with a message otherwise.
final class DiskFullTests: XCTestCase {
    func testFullDiskAnswers507AndRecoversWhenSpaceIsFreed() async throws {
        try XCTSkipUnless(getuid() == 0, "needs root to mount a size-limited tmpfs")
        let mountPoint = temporaryDirectory()
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mountPoint]
        try mount.run()
        mount.waitUntilExit()
        try XCTSkipUnless(mount.terminationStatus == 0, "mount of a tmpfs failed (not permitted in this sandbox)")
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", mountPoint]
            try? umount.run()
            umount.waitUntilExit()
        }
        // Ballast we can delete later to free space.
        let ballast = mountPoint + "/ballast"
        try Data(repeating: 7, count: 2 << 20).write(to: URL(fileURLWithPath: ballast))

        let daemon = try DaemonProcess(cacheDir: mountPoint + "/cache", arguments: ["--max-shard-bytes", "1048576"])
        try await daemon.waitReady()
        let client = LogitClient(baseURL: daemon.baseURL, maxAttempts: 1)
        let spec = DatasetSpec(name: "full", vocabSize: 50_000, policy: SelectionPolicy(tau: 0.99, kMin: 1, kMax: 64))
        try await client.createDataset(spec)
        let generator = RandomRecords(vocabSize: 50_000, policy: spec.policy, maxTokens: 200)
        var acked: [String] = []
        var refusal: LogitClientError?
        for b in 0..<400 {
            let batch = (0..<8).map { generator.record(key: "b\(b)-\($0)", seed: 5) }
            do {
                _ = try await client.append(dataset: "full", vocabSize: 50_000, records: batch)
                acked += batch.map(\.key)
            } catch let e as LogitClientError {
                refusal = e
                break
            }
        }
        let error = try XCTUnwrap(refusal, "the disk never filled up")
        XCTAssertEqual(error.status, 507, "\(error)")
        XCTAssertTrue(error.message.contains("insufficient storage"), error.message)
        XCTAssertGreaterThan(acked.count, 0)
        let healthy = await LogitClient(baseURL: daemon.baseURL).ready()
        XCTAssertTrue(healthy, "the daemon must stay up on a full disk")

        // Free space: the next write succeeds, and everything acked before is intact.
        try FileManager.default.removeItem(atPath: ballast)
        let after = (0..<8).map { generator.record(key: "after-\($0)", seed: 5) }
        let response = try await client.append(dataset: "full", vocabSize: 50_000, records: after)
        XCTAssertEqual(response.new, 8)
        XCTAssertEqual(daemon.stop(), 0)
        let store = try CacheStore(directory: mountPoint + "/cache", mode: .readOnly)
        for key in acked + after.map(\.key) {
            XCTAssertEqual(try store.read(dataset: "full", key: key),
                           canonicalized(generator.record(key: key, seed: 5), logprobScale: 64), "acked \(key) damaged")
        }
        let audit = try CacheVerifier(store: store).verify()
        XCTAssertTrue(audit.isClean, "\(audit.problems)")
    }
}

import ShardFormat
