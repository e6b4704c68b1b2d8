import Foundation
import LogitClient
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue #16 item 2: a client that stops sending cannot hold a connection or the in-flight byte
/// budget. Raw sockets against the real daemon, with short limits.
extension DaemonTests {
    /// One stalled client's end: what the daemon answered and after how many seconds.
    struct Stall: Sendable {
        let answer: String
        let seconds: Double
    }

    static func stall(port: Int, _ run: @escaping @Sendable (RawConnection) throws -> String) -> Task<Stall, Error> {
        Task.detached {
            let connection = try RawConnection(port: port)
            let started = ContinuousClock.now
            let answer = try run(connection)
            let elapsed = ContinuousClock.now - started
            return Stall(answer: answer, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
    }

    func metricValue(_ daemon: DaemonProcess, _ name: String, _ labels: String = "") async throws -> Double {
        let text = try await metricsText(daemon)
        let line = text.split(separator: "\n").first { $0.hasPrefix(name) && (labels.isEmpty || $0.contains(labels)) }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    func testStalledClientsAreClosedInTimeAndOthersAreServedMeanwhile() async throws {
        // The budget is four bodies of the largest size: before, four stalled uploads that had
        // announced that size held all of it and every other client got 503.
        let (daemon, client) = try await started([
            "--header-timeout-seconds", "1", "--idle-timeout-seconds", "1.5", "--body-timeout-seconds", "1",
            "--request-timeout-seconds", "3", "--max-body-bytes", "\(2 << 20)", "--max-inflight-bytes", "\(8 << 20)"])
        let port = daemon.baseURL.port!
        let upload = "POST /v1/datasets/domain/sequences HTTP/1.1\r\nHost: localhost\r\n"

        let idle = Self.stall(port: port) { $0.readResponse(seconds: 10) }
        let header = Self.stall(port: port) { $0.trickle(Array((upload + "X-Padding: " + String(repeating: "a", count: 60)).utf8), interval: 0.2) }
        let uploads = (0..<4).map { _ in
            Self.stall(port: port) { connection in
                try connection.write(upload + "Content-Length: \(2 << 20)\r\n\r\n" + String(repeating: "x", count: 100))
                return connection.readResponse(seconds: 10)
            }
        }
        let drip = Self.stall(port: port) { connection in
            try connection.write(upload + "Content-Length: 1000\r\n\r\n")
            return connection.trickle(Array(repeating: UInt8(ascii: "x"), count: 1000), interval: 0.5)
        }

        // Meanwhile a well-behaved teacher is served.
        try await Task.sleep(for: .milliseconds(400))
        let outcome = try await client.append(dataset: "domain", vocabSize: 2000, records: records(20, "ok"))
        XCTAssertEqual(outcome.new, 20, "a valid client was not served while others stalled")

        let idleEnd = try await idle.value
        XCTAssertEqual(idleEnd.answer, "", "an idle connection is closed without a word")
        XCTAssertTrue((1.3...3.5).contains(idleEnd.seconds), "idle connection closed after \(idleEnd.seconds) s (limit 1.5 s)")

        let headerEnd = try await header.value
        XCTAssertEqual(status(of: headerEnd.answer), 408, headerEnd.answer)
        XCTAssertTrue(headerEnd.answer.contains("request header not complete within header_timeout_seconds (1 s)"), headerEnd.answer)
        XCTAssertTrue((0.8...3.0).contains(headerEnd.seconds), "header trickle closed after \(headerEnd.seconds) s (limit 1 s)")

        for stalled in uploads {
            let end = try await stalled.value
            XCTAssertEqual(status(of: end.answer), 408, end.answer)
            XCTAssertTrue(end.answer.contains("no request body bytes for body_timeout_seconds (1 s)"), end.answer)
            XCTAssertTrue((0.8...3.0).contains(end.seconds), "stalled upload closed after \(end.seconds) s (limit 1 s)")
        }

        // A body that keeps arriving, one byte every 0.5 s, still ends at the request limit.
        let dripEnd = try await drip.value
        XCTAssertEqual(status(of: dripEnd.answer), 408, dripEnd.answer)
        XCTAssertTrue(dripEnd.answer.contains("request not complete within request_timeout_seconds (3 s)"), dripEnd.answer)
        XCTAssertTrue((2.6...5.0).contains(dripEnd.seconds), "dripping upload closed after \(dripEnd.seconds) s (limit 3 s)")

        let headerClosed = try await metricValue(daemon, "logitd_connections_closed_total", "limit=\"header\"")
        let bodyClosed = try await metricValue(daemon, "logitd_connections_closed_total", "limit=\"body_progress\"")
        let requestClosed = try await metricValue(daemon, "logitd_connections_closed_total", "limit=\"request\"")
        let idleClosed = try await metricValue(daemon, "logitd_connections_closed_total", "limit=\"idle\"")
        XCTAssertEqual([headerClosed, bodyClosed, requestClosed], [1, 4, 1])
        XCTAssertGreaterThanOrEqual(idleClosed, 1)
        let inflight = try await metricValue(daemon, "logitd_inflight_bytes")
        XCTAssertEqual(inflight, 0, "the stalled bodies' bytes were released")
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 20, "nothing of a stalled upload was stored")
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// A client that announces a large body and sends nothing holds nothing: others fill the
    /// whole budget meanwhile.
    func testAnnouncedBodiesHoldNoBudgetUntilTheirBytesArrive() async throws {
        let (daemon, client) = try await started(["--max-body-bytes", "\(1 << 20)", "--max-inflight-bytes", "\(1 << 20)"])
        let port = daemon.baseURL.port!
        let silent = try RawConnection(port: port)
        try silent.write("POST /v1/datasets/domain/sequences HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(1 << 20)\r\n\r\n")
        try await Task.sleep(for: .milliseconds(200))
        let outcome = try await client.append(dataset: "domain", vocabSize: 2000, records: records(50, "full"))
        XCTAssertEqual(outcome.new, 50)
        silent.close()
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testConnectionsOverTheCapAreAnswered503AndTheCapFreesOnClose() async throws {
        let (daemon, _) = try await started(["--max-connections", "8"])
        let port = daemon.baseURL.port!
        let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        // The harness's own keep-alive connections count too, so open until one is refused.
        var admitted: [RawConnection] = []
        var refusal: String?
        for _ in 0..<9 {
            let connection = try RawConnection(port: port)
            try connection.write(get)
            let answer = connection.readResponse(seconds: 5)
            if status(of: answer) == 200 {
                admitted.append(connection)
            } else {
                refusal = answer
                break
            }
        }
        let refused = try XCTUnwrap(refusal, "9 connections were all admitted with max_connections 8")
        XCTAssertEqual(status(of: refused), 503, refused)
        XCTAssertTrue(refused.lowercased().contains("retry-after: 1"), refused)
        XCTAssertTrue(refused.contains("too many open connections (limit 8)"), refused)
        XCTAssertGreaterThanOrEqual(admitted.count, 5, "more than three connections were open before the test's own")

        // Closing one makes room again.
        admitted.removeLast().close()
        var answer = ""
        for _ in 0..<40 where status(of: answer) != 200 {
            try await Task.sleep(for: .milliseconds(50))
            let connection = try RawConnection(port: port)
            try connection.write(get)
            answer = connection.readResponse(seconds: 5)
        }
        XCTAssertEqual(status(of: answer), 200, answer)
        admitted.forEach { $0.close() }
        let refusedCount = try await metricValue(daemon, "logitd_connections_refused_total")
        XCTAssertGreaterThanOrEqual(refusedCount, 1)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// A header the parser refuses is answered 400 outside every route, and counted.
    func testMalformedHeadersAreCounted() async throws {
        let (daemon, _) = try await started()
        for _ in 0..<2 {
            let answer = try raw(daemon, Array("NOT HTTP AT ALL\r\n\r\n".utf8))
            XCTAssertEqual(status(of: answer), 400, answer)
        }
        let counted = try await metricValue(daemon, "logitd_requests_total", "route=\"http_parser\"")
        XCTAssertEqual(counted, 2)
        XCTAssertEqual(daemon.stop(), 0)
    }
}
