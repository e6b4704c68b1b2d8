import Catalog
import Foundation
import LogitCore
import ShardFormat
import XCTest

/// The Python client (clients/python) against the real daemon: a Python teacher's sets, logits
/// rows over HTTP and through shared memory are stored exactly as the Swift path would store them.
final class PythonClientTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let vocab = 50

    func testAPythonTeacherIsStoredAsTheSwiftPathWouldStoreIt() async throws {
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory())
        try await daemon.waitReady()
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = [Self.root.path + "/clients/python/example_teacher.py", daemon.baseURL.absoluteString]
        let out = Pipe(), err = Pipe()
        python.standardOutput = out
        python.standardError = err
        try python.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        XCTAssertEqual(python.terminationStatus, 0, errors)
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: output) as? [String: Any], String(decoding: output, as: UTF8.self))

        XCTAssertEqual((results["sets"] as? [String: Int])?["new"], 1)
        XCTAssertEqual((results["http"] as? [String: Int])?["positions"], 8)
        XCTAssertEqual((results["shm"] as? [String: Int])?["new"], 2)
        XCTAssertEqual((results["shm_again"] as? [String: Int])?["duplicates"], 2)
        let bad = try XCTUnwrap(results["bad"] as? [String: Any], "\(results)")
        XCTAssertEqual(bad["status"] as? Int, 400)
        XCTAssertEqual(bad["offset"] as? Int, 24 + 2 + 6 + 4 + 1 + 4, "\(bad)")
        XCTAssertEqual(results["present"] as? [String], ["py-http-1", "py-sets", "py-shm-0"])
        XCTAssertEqual(results["stats_sequences"] as? Int, 5)

        let store = try CacheStore(directory: daemon.cacheDir, mode: .readOnly)
        let sets = SequenceRecord(key: "py-sets", tokens: [1, 2, 3], setOffsets: [0, 2, 3], ids: [2, 7, 3],
                                  logprobs: [-0.1, -2.5, -0.05], goldForced: [false, true])
        XCTAssertEqual(try store.read(dataset: "py", key: "py-sets"), canonicalized(sets, logprobScale: 64))

        let selector = try TopKSelector(policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 8))
        let tokens: [[UInt32]] = [[0, 5, 9, 13, 17], [3, 8, 1, 44, 2]]
        for s in 0..<2 {
            var rows: [Float] = []
            for t in 0..<4 {
                for i in 0..<Self.vocab {
                    let x: Double = 0.37 * Double(i) + 1.3 * Double(t) + Double(s)
                    rows.append(Float(4 * sin(x)))
                }
            }
            let selected = try rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: Self.vocab, golds: Array(tokens[s].dropFirst())) }
            for prefix in ["py-http", "py-shm"] {
                let expected = SequenceRecord(key: "\(prefix)-\(s)", tokens: tokens[s], selected: selected)
                XCTAssertEqual(try store.read(dataset: "py", key: "\(prefix)-\(s)"), canonicalized(expected, logprobScale: 64), "\(prefix)-\(s)")
            }
        }
        XCTAssertEqual(daemon.stop(), 0)
    }
}
