import Catalog
import Foundation
import LogitClient
import LogitCore
import WireFormat
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The load and chaos checks in their short CI form: back-pressure (docs/DESIGN.md §4.2), storage invariants 2, 4, 5.
final class LoadAndChaosTests: XCTestCase {
    /// 64 concurrent clients for a bounded time against a small in-flight bound: nothing but 200s
    /// and 503s, peak RSS under the bound plus the daemon's baseline.
    func testSixtyFourClientsGetOnly200sAnd503sWithinTheMemoryBound() async throws {
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--max-body-bytes", "262144",
                                                                                   "--max-inflight-bytes", "1048576"])
        try await daemon.waitReady()
        let spec = DatasetSpec(name: "load", vocabSize: 3000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 16))
        try await LogitClient(baseURL: daemon.baseURL).createDataset(spec)
        let generator = RandomRecords(vocabSize: 3000, policy: spec.policy, maxTokens: 64)
        let url = daemon.baseURL.appendingPathComponent("v1/datasets/load/sequences")
        let deadline = Date().addingTimeInterval(4)
        let results = try await withThrowingTaskGroup(of: [Int: [Double]].self) { group in
            for c in 0..<64 {
                group.addTask {
                    // A session per client: the shared one would queue them on a few connections.
                    let session = URLSession(configuration: .ephemeral)
                    var seen: [Int: [Double]] = [:]
                    var b = 0
                    while Date() < deadline {
                        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 3000)
                        for s in 0..<20 { encoder.append(generator.record(key: "c\(c)-b\(b)-\(s)", seed: 4)) }
                        var request = URLRequest(url: url)
                        request.httpMethod = "POST"
                        request.httpBody = Data(encoder.finish())
                        let t0 = Date()
                        let (_, response) = try await session.data(for: request)
                        seen[(response as! HTTPURLResponse).statusCode, default: []].append(Date().timeIntervalSince(t0))
                        b += 1
                    }
                    return seen
                }
            }
            return try await group.reduce(into: [Int: [Double]]()) { all, one in
                for (k, v) in one { all[k, default: []] += v }
            }
        }
        XCTAssertEqual(Set(results.keys).subtracting([200, 503]), [], "statuses other than 200/503: \(results.keys)")
        XCTAssertGreaterThan(results[200]?.count ?? 0, 0)
        let ok = (results[200] ?? []).sorted()
        let p99 = ok[min(ok.count - 1, Int(0.99 * Double(ok.count)))] * 1000
        let status = try String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/status", encoding: .utf8)
        let hwmKB = Int(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }!.split(separator: " ")[1])!
        print("load: \(ok.count) acked, \(results[503]?.count ?? 0) × 503, p99 ack \(Int(p99)) ms, peak RSS \(hwmKB / 1024) MB")
        XCTAssertLessThan(hwmKB, 256 * 1024, "peak RSS \(hwmKB) KB: the in-flight bound did not hold")
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// `logit-bench chaos` in its short form: no acked sequence lost, no read returning wrong
    /// data, every planted corruption reported — by the read paths and by `logitctl verify` alone,
    /// catalog flips where SQLite reads nothing included (caught by the page checksums).
    func testChaosRoundsLoseNothingAndReportEveryPlantedCorruption() throws {
        let bench = URL(fileURLWithPath: DaemonProcess.binary).deletingLastPathComponent().appendingPathComponent("logit-bench").path
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: bench), "logit-bench not built")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bench)
        process.arguments = ["chaos", "--rounds", "2", "--flips", "9", "--json"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
        print("chaos: \(line)")
        XCTAssertGreaterThan(json["acked"] as? Int ?? 0, 0)
        XCTAssertEqual(json["lost"] as? Int, 0)
        XCTAssertEqual(json["corrupt"] as? Int, 0)
        XCTAssertEqual(json["verify_failures"] as? Int, 0)
        XCTAssertEqual(json["detected"] as? Int, json["flips"] as? Int, line)
        XCTAssertEqual(json["verify_detected"] as? Int, json["flips"] as? Int, line)
        XCTAssertEqual(json["harmless_catalog_flips"] as? Int, 0, line)
    }
}
