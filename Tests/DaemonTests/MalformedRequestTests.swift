import Catalog
import Foundation
import LogitClient
import LogitCore
import SharedMemory
import WireFormat
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue #16 item 3: every malformed request is a 4xx with a message, never a 500. Raw bytes
/// over a loopback TCP connection to the real daemon.
extension DaemonTests {
    /// One raw request on its own connection; the whole answer.
    func raw(_ daemon: DaemonProcess, _ bytes: [UInt8], endInput: Bool = false) throws -> String {
        let connection = try RawConnection(port: daemon.baseURL.port!)
        try connection.write(bytes)
        if endInput { connection.shutdownWrite() }
        return connection.readResponse()
    }

    func status(of answer: String) -> Int {
        Int(answer.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    func testMalformedHTTPRequestsAre4xxWithAMessage() async throws {
        let (daemon, _) = try await started(["--max-body-bytes", "65536"])
        let head = "POST /v1/datasets/domain/sequences HTTP/1.1\r\nHost: localhost\r\n"
        let chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
        let cases: [(name: String, bytes: [UInt8], endInput: Bool, status: Int, fragment: String)] = [
            ("chunk size zz", Array((chunked + "zz\r\nabc\r\n0\r\n\r\n").utf8), false, 400, "chunk size"),
            ("chunk size 2^72", Array((chunked + "1000000000000000000\r\nabc\r\n0\r\n\r\n").utf8), false, 400, "chunk size"),
            ("chunk size 2^72 after a good chunk", Array((chunked + "4\r\nLGW1\r\n1000000000000000000\r\nabc\r\n0\r\n\r\n").utf8), false, 400, "chunk size"),
            ("body shorter than Content-Length", Array((head + "Content-Length: 1000\r\n\r\n" + String(repeating: "x", count: 100)).utf8), true, 400,
             "the connection ended inside the request body"),
            ("dataset JSON of 2 MB", Array(("POST /v1/datasets HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(2 << 20)\r\n\r\n"
                                               + "{\"name\": \"" + String(repeating: "a", count: (2 << 20) - 12) + "\"}").utf8), false, 413,
             "exceeds the limit of 1048576 bytes"),
            ("key lookup of 5 MB", Array(("POST /v1/datasets/domain/keys HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(5 << 20)\r\n\r\n"
                                             + "{\"keys\": [\"" + String(repeating: "a", count: (5 << 20) - 14) + "\"]}").utf8), false, 413,
             "exceeds the limit of 4194304 bytes"),
            ("body over max_body_bytes, chunked", Array((chunked + "10001\r\n" + String(repeating: "x", count: 65537) + "\r\n0\r\n\r\n").utf8), false, 413,
             "exceeds the limit of 65536 bytes"),
        ]
        for c in cases {
            let answer = try raw(daemon, c.bytes, endInput: c.endInput)
            XCTAssertEqual(status(of: answer), c.status, "\(c.name): \(answer.prefix(300))")
            XCTAssertTrue(answer.contains(c.fragment), "\(c.name): '\(answer.prefix(400))' lacks '\(c.fragment)'")
        }
        // Nothing was answered 500, and the daemon still serves.
        let (metricsData, _) = try await URLSession.shared.data(from: daemon.baseURL.appendingPathComponent("metrics"))
        let metrics = String(decoding: metricsData, as: UTF8.self)
        XCTAssertFalse(metrics.split(separator: "\n").contains { $0.contains("\"500\"") && !$0.hasSuffix(" 0") }, metrics)
        let stats = try await LogitClient(baseURL: daemon.baseURL).stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 0)
        XCTAssertEqual(daemon.stop(), 0)
    }

}
