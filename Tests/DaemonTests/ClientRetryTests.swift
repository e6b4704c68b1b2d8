import Foundation
import LogitClient
import Synchronization
import WireFormat
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The client's retry contract against the real daemon: a dead port fails after `maxAttempts`
/// with a message that says so, a 503 is waited out (Retry-After) and retried to success, and a
/// Unix domain socket base URL (as logitd prints it) serves the whole API.
extension DaemonTests {
    func testConnectionRefusedFailsAfterMaxAttemptsWithAClearMessage() async throws {
        // A port that had a daemon a moment ago and has none now.
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory())
        let baseURL = daemon.baseURL!
        XCTAssertEqual(daemon.stop(), 0)
        let client = LogitClient(baseURL: baseURL, maxAttempts: 3)
        let t0 = Date()
        do {
            _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(1, "dead"))
            XCTFail("an append to a port with no daemon succeeded")
        } catch let e as LogitClientError {
            XCTAssertNil(e.status, "\(e)")
            XCTAssertTrue(e.message.contains("after 3 attempt(s)"), e.message)
            XCTAssertTrue(e.message.contains("POST \(baseURL.absoluteString)/v1/datasets/domain/sequences"), e.message)
            XCTAssertTrue(e.message.lowercased().contains("refused"), e.message)
        }
        // Backoff 50 + 100 ms between the three attempts: it must not sit in a connect timeout.
        let elapsed = Date().timeIntervalSince(t0)
        XCTAssertGreaterThan(elapsed, 0.14)
        XCTAssertLessThan(elapsed, 5, "a refused connection should fail fast, not wait for a connect timeout")
        // ready() is a single attempt and says false rather than throwing.
        let ready = await client.ready()
        XCTAssertFalse(ready)
    }

    func testAppendRetriesA503AndThenSucceeds() async throws {
        // Room for one ~60 KB body at a time, as in the backpressure test.
        let (daemon, client) = try await started(["--max-body-bytes", "100000", "--max-inflight-bytes", "100000"])
        // A raw connection sends 90 KB of a 90,001-byte body and waits: those bytes are in flight,
        // so the client's append must get 503 until that connection goes away.
        let holder = try RawConnection(port: daemon.baseURL.port!)
        try holder.write("POST /v1/datasets/domain/sequences HTTP/1.1\r\nHost: localhost\r\n"
            + "Content-Type: application/octet-stream\r\nContent-Length: 90001\r\n\r\n" + String(repeating: "x", count: 90000))
        try await Task.sleep(for: .milliseconds(200))
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 2000)
        records(120, "r").forEach { encoder.append($0) }
        let body = encoder.finish()
        XCTAssertGreaterThan(body.count, 50000)
        let release = Task {
            try await Task.sleep(for: .milliseconds(300))
            holder.close()
        }
        let t0 = Date()
        let answer = try await client.append(dataset: "domain", body: body)
        let elapsed = Date().timeIntervalSince(t0)
        try await release.value
        XCTAssertEqual(answer.new, 120)
        XCTAssertEqual(answer.duplicates, 0)
        // The first attempt was refused with Retry-After: 1, and the client waited that long.
        XCTAssertGreaterThanOrEqual(elapsed, 0.95, "the append did not wait out Retry-After")
        let metrics = try await metricsText(daemon)
        let refused = metrics.split(separator: "\n").filter { $0.hasPrefix("logitd_requests_total") && $0.contains("\"503\"") }
        XCTAssertFalse(refused.isEmpty, "no 503 counted: \(metrics)")
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 120)
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testUnixSocketBaseURLServesTheClient() async throws {
        let socket = temporaryDirectory() + "/logitd.sock"
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--unix-socket", socket])
        XCTAssertEqual(daemon.baseURL.absoluteString, "unix:\(socket)")
        try await daemon.waitReady()
        let client = LogitClient(baseURL: daemon.baseURL)
        let created = try await client.createDataset(Self.spec)
        XCTAssertTrue(created)
        let answer = try await client.append(dataset: "domain", vocabSize: 2000, records: records(5, "u"))
        XCTAssertEqual(answer.new, 5)
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 5)
        let present = try await client.presentKeys(dataset: "domain", keys: ["u0", "u4", "nope"])
        XCTAssertEqual(present, ["u0", "u4"])
        do {
            _ = try await client.stats(dataset: "missing")
            XCTFail("stats of an unknown dataset succeeded")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 404, "\(e)")
        }
        XCTAssertEqual(daemon.stop(), 0)
        XCTAssertNotNil(try stored(daemon, "u4"))
    }

    func metricsText(_ daemon: DaemonProcess) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: daemon.baseURL.appendingPathComponent("metrics"))
        return String(decoding: data, as: UTF8.self)
    }
}

/// A plain TCP connection to 127.0.0.1, for sending a request the client library never would.
/// Closed from another task, hence the descriptor behind a lock.
final class RawConnection: Sendable {
    private let fd: Mutex<Int32>

    init(port: Int) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { let e = errno; Glibc.close(descriptor); throw POSIXError(.init(rawValue: e) ?? .EIO) }
        fd = Mutex(descriptor)
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) throws {
        try fd.withLock { fd in
            var rest = bytes[...]
            while !rest.isEmpty {
                let n = rest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
                rest = rest.dropFirst(n)
            }
        }
    }

    /// Ends our side of the connection (the server sees end of input) while still reading.
    func shutdownWrite() { fd.withLock { fd in _ = shutdown(fd, Int32(SHUT_WR)) } }

    /// One HTTP response: its head and a body of Content-Length bytes, or what arrived before
    /// the server closed the connection or `seconds` passed.
    func readResponse(seconds: Int = 10) -> String {
        fd.withLock { fd in
            var timeout = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let text = String(decoding: out, as: UTF8.self)
                if let end = text.range(of: "\r\n\r\n") {
                    let head = text[..<end.lowerBound].lowercased()
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                    if text[end.upperBound...].utf8.count >= length { return text }
                }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return text }
                out += chunk[0..<n]
            }
        }
    }

    /// Sends `bytes` one at a time, `interval` seconds apart, until the server answers or closes
    /// the connection; then what it answered (empty when it closed without a word).
    func trickle(_ bytes: [UInt8], interval: Double) -> String {
        let answered: Bool = fd.withLock { fd in
            for byte in bytes {
                var b = byte
                guard send(fd, &b, 1, Int32(MSG_NOSIGNAL)) == 1 else { return true }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, Int32(interval * 1000)) > 0 { return true }
            }
            return false
        }
        return answered ? readResponse() : ""
    }

    func close() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            Glibc.close(fd)
            fd = -1
        }
    }

    deinit { close() }
}
