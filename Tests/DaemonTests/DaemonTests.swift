import Catalog
import Foundation
import LogitClient
import LogitCore
import ShardFormat
import WireFormat
import XCTest

/// The real daemon on loopback, driven through the real client.
final class DaemonTests: XCTestCase {
    static let spec = DatasetSpec(name: "domain", vocabSize: 2000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 8),
                                  teacherId: "t", tokenizerId: "tok", tokenizerHash: "h")
    let generator = RandomRecords(vocabSize: 2000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 8), maxTokens: 30)

    func records(_ n: Int, _ prefix: String, seed: UInt64 = 1) -> [SequenceRecord] {
        (0..<n).map { generator.record(key: "\(prefix)\($0)", seed: seed) }
    }

    func started(_ args: [String] = [], environment: [String: String] = [:], token: String? = nil) async throws -> (DaemonProcess, LogitClient) {
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: args, environment: environment)
        try await daemon.waitReady(token: token)
        let client = LogitClient(baseURL: daemon.baseURL, token: token)
        try await client.createDataset(Self.spec)
        return (daemon, client)
    }

    /// Reads the cache as `logitctl` would, while or after the daemon writes.
    func stored(_ daemon: DaemonProcess, _ key: String) throws -> SequenceRecord? {
        try CacheStore(directory: daemon.cacheDir, mode: .readOnly).read(dataset: "domain", key: key)
    }

    func testSetsModeRoundTripAndDuplicates() async throws {
        let (daemon, client) = try await started()
        let batch = records(40, "s")
        let first = try await client.append(dataset: "domain", vocabSize: 2000, records: batch)
        XCTAssertEqual(first.new, 40)
        XCTAssertEqual(first.positions, batch.reduce(0) { $0 + $1.positions })
        // Acked means readable by another process right now.
        for r in batch { XCTAssertEqual(try stored(daemon, r.key), canonicalized(r, logprobScale: 64)) }
        let again = try await client.append(dataset: "domain", vocabSize: 2000, records: batch)
        XCTAssertEqual(again.new, 0)
        XCTAssertEqual(again.duplicates, 40)

        var changed = batch[3]
        changed.logprobs[0] -= 1
        do {
            _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(2, "fresh") + [changed])
            XCTFail("a conflicting key was accepted")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 409)
            XCTAssertEqual(e.key, "s3")
        }
        XCTAssertNil(try stored(daemon, "fresh0"), "nothing of a refused request may be written")
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 40)

        // Key lookup (how a teacher resumes): exactly the stored keys, in any number of chunks.
        let asked = (0..<6_000).map { "s\($0)" } + ["fresh0", "s3"]
        let present = try await client.presentKeys(dataset: "domain", keys: asked)
        XCTAssertEqual(present, Set(batch.map(\.key)))
        do {
            _ = try await client.presentKeys(dataset: "nope", keys: ["a"])
            XCTFail("a lookup in an unknown dataset was answered")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 404)
        }
        var tooMany = URLRequest(url: daemon.baseURL.appendingPathComponent("v1/datasets/domain/keys"))
        tooMany.httpMethod = "POST"
        tooMany.httpBody = try JSONSerialization.data(withJSONObject: ["keys": (0..<10_001).map { "k\($0)" }])
        let (body, response) = try await URLSession.shared.data(for: tooMany)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 413)
        XCTAssertTrue(String(decoding: body, as: UTF8.self).contains("10001 keys in one lookup"))
        var malformed = URLRequest(url: daemon.baseURL.appendingPathComponent("v1/datasets/domain/keys"))
        malformed.httpMethod = "POST"
        malformed.httpBody = Data("{\"keys\": 5}".utf8)
        let (_, bad) = try await URLSession.shared.data(for: malformed)
        XCTAssertEqual((bad as? HTTPURLResponse)?.statusCode, 400)
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testLogitsModeSelectsWithTheDatasetPolicy() async throws {
        let (daemon, client) = try await started()
        let vocab = 2000
        let teacher = SyntheticTeacher(vocabSize: vocab, seed: 9)
        let selector = try TopKSelector(policy: Self.spec.policy)
        for dtype in [WireDType.f32, .f16, .bf16] {
            var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: dtype)
            var expected: [SequenceRecord] = []
            for s in 0..<3 {
                var rows = [Float](repeating: 0, count: 12 * vocab)
                var tokens: [UInt32] = [7]
                for t in 0..<12 {
                    tokens.append(rows.withUnsafeMutableBufferPointer { teacher.fillRow(position: 100 * s + t, into: UnsafeMutableBufferPointer(rebasing: $0[t * vocab..<(t + 1) * vocab])) })
                }
                let key = "logits-\(dtype)-\(s)"
                switch dtype {
                case .f32:
                    rows.withUnsafeBytes { encoder.appendLogits(key: key, tokens: tokens, rows: $0) }
                    let sets = try rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: vocab, golds: Array(tokens.dropFirst())) }
                    expected.append(SequenceRecord(key: key, tokens: tokens, selected: sets))
                case .f16:
                    let half = rows.map { Float16($0) }
                    half.withUnsafeBytes { encoder.appendLogits(key: key, tokens: tokens, rows: $0) }
                    let sets = try half.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: vocab, golds: Array(tokens.dropFirst())) }
                    expected.append(SequenceRecord(key: key, tokens: tokens, selected: sets))
                case .bf16:
                    let bf = rows.map { BFloat16($0) }
                    bf.withUnsafeBytes { encoder.appendLogits(key: key, tokens: tokens, rows: $0) }
                    let sets = try bf.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: vocab, golds: Array(tokens.dropFirst())) }
                    expected.append(SequenceRecord(key: key, tokens: tokens, selected: sets))
                }
            }
            let response = try await client.append(dataset: "domain", body: encoder.finish())
            XCTAssertEqual(response.new, 3)
            XCTAssertEqual(response.positions, 36)
            for r in expected { XCTAssertEqual(try stored(daemon, r.key), canonicalized(r, logprobScale: 64), "\(dtype)") }
        }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testSixteenConcurrentClientsLoseNothing() async throws {
        let (daemon, client) = try await started()
        let generator = self.generator
        let baseURL = client.baseURL
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<16 {
                group.addTask {
                    let own = LogitClient(baseURL: baseURL)
                    for b in 0..<5 {
                        let batch = (0..<6).map { generator.record(key: "c\(c)-b\(b)-\($0)", seed: 1) }
                        let r = try await own.append(dataset: "domain", vocabSize: 2000, records: batch)
                        XCTAssertEqual(r.new, 6)
                    }
                }
            }
            try await group.waitForAll()
        }
        let store = try CacheStore(directory: daemon.cacheDir, mode: .readOnly)
        XCTAssertEqual(try store.coverage(dataset: "domain").sequences, 16 * 5 * 6)
        for c in 0..<16 { XCTAssertNotNil(try store.read(dataset: "domain", key: "c\(c)-b4-5")) }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testEveryBadInputIsA4xxThatWritesNothing() async throws {
        let (daemon, client) = try await started(["--max-body-bytes", "65536"])
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 2000)
        records(3, "ok").forEach { encoder.append($0) }
        let good = encoder.finish()

        func expect(_ body: [UInt8], _ status: Int, _ fragment: String, dataset: String = "domain", line: UInt = #line) async {
            do {
                _ = try await client.append(dataset: dataset, body: body)
                XCTFail("accepted", line: line)
            } catch let e as LogitClientError {
                XCTAssertEqual(e.status, status, "\(e)", line: line)
                XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", line: line)
            } catch {
                XCTFail("\(error)", line: line)
            }
        }
        await expect(Array(good.prefix(good.count - 5)), 400, "body ends inside")
        var wrongVocab = good; wrongVocab[8] = 0xD1   // vocab 2001
        await expect(wrongVocab, 400, "does not match the dataset's 2000")
        var bad = records(1, "bad")[0]
        bad.ids[0] = 2000
        var e1 = WireBatchEncoder(mode: .sets, vocabSize: 2000); e1.append(records(1, "x")[0]); e1.append(bad)
        await expect(e1.finish(), 400, "candidate id 2000")
        bad = records(1, "nan")[0]; bad.logprobs[1] = .nan
        var e2 = WireBatchEncoder(mode: .sets, vocabSize: 2000); e2.append(bad)
        await expect(e2.finish(), 400, "log-prob nan")
        bad = records(1, "gold")[0]
        let gold = bad.tokens[1]
        let set0 = Set(bad.ids[Int(bad.setOffsets[0])..<Int(bad.setOffsets[1])])
        let replacement = (0..<UInt32(2000)).first { !set0.contains($0) && $0 != gold }!
        for j in Int(bad.setOffsets[0])..<Int(bad.setOffsets[1]) where bad.ids[j] == gold { bad.ids[j] = replacement }
        var e3 = WireBatchEncoder(mode: .sets, vocabSize: 2000); e3.append(bad)
        await expect(e3.finish(), 400, "gold token \(gold) is not among")
        await expect(good + [0, 0], 400, "trailing byte")
        await expect(good, 404, "unknown dataset 'nope'", dataset: "nope")
        var big = WireBatchEncoder(mode: .sets, vocabSize: 2000)
        records(400, "big").forEach { big.append($0) }
        await expect(big.finish(), 413, "exceeds the limit")
        let after = try await client.stats(dataset: "domain")
        XCTAssertEqual(after.sequences, 0, "a refused request wrote something")
        do {
            try await client.createDataset(DatasetSpec(name: "../escape", vocabSize: 10))
            XCTFail("path traversal accepted")
        } catch let e as LogitClientError { XCTAssertEqual(e.status, 400) }
        do {
            var other = Self.spec; other.vocabSize = 3000
            try await client.createDataset(other)
            XCTFail("conflicting dataset accepted")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 409)
            XCTAssertTrue(e.message.contains("vocab_size 3000 ≠ 2000"), e.message)
        }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testBearerTokenIsRequiredAndNonLoopbackNeedsOne() async throws {
        let token = "s3cret-token-0123456789"
        let (daemon, client) = try await started(environment: ["LOGITD_TOKEN": token], token: token)
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(1, "a"))
        for wrong in [nil, "wrong-token-0123456789", token + "x"] {
            do {
                _ = try await LogitClient(baseURL: daemon.baseURL, token: wrong, maxAttempts: 1).stats(dataset: "domain")
                XCTFail("accepted token \(wrong ?? "nil")")
            } catch let e as LogitClientError { XCTAssertEqual(e.status, 401) }
        }
        let ready = await LogitClient(baseURL: daemon.baseURL).ready()
        XCTAssertTrue(ready, "/readyz must not need the token")
        XCTAssertEqual(daemon.stop(), 0)

        XCTAssertThrowsError(try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--host", "0.0.0.0"])) { error in
            XCTAssertTrue("\(error)".contains("without a bearer token"), "\(error)")
        }
    }

    /// The counters against what the test sent: every 401 counted (route "auth"), every answer's
    /// body bytes in logitd_bytes_out_total, and a refused shared append adds nothing to
    /// logitd_shared_memory_bytes_total (it used to add the declared length, and wrapped negative).
    func testMetricsCountWhatWasSentAndAnswered() async throws {
        let token = "s3cret-token-0123456789"
        let (daemon, client) = try await started(environment: ["LOGITD_TOKEN": token], token: token)
        func send(_ path: String, method: String = "GET", body: Data? = nil, auth: Bool = true) async throws -> (Int, Int) {
            var request = URLRequest(url: daemon.baseURL.appendingPathComponent(path))
            request.httpMethod = method
            request.httpBody = body
            if auth { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data.count)
        }
        func metric(_ name: String, _ labels: String = "") async throws -> Double {
            let (data, _) = try await URLSession.shared.data(for: {
                var r = URLRequest(url: daemon.baseURL.appendingPathComponent("metrics"))
                r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                return r
            }())
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix(name) && (labels.isEmpty || $0.contains(labels)) }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(2, "m"))
        var answered = 0
        for _ in 0..<3 {
            let (status, bytes) = try await send("v1/datasets/domain/stats", auth: false)
            XCTAssertEqual(status, 401)
            answered += bytes
        }
        let (status, bytes) = try await send("v1/datasets/domain/stats")
        XCTAssertEqual(status, 200)
        answered += bytes
        let shared = try JSONSerialization.data(withJSONObject: ["region": "none", "offset": 0, "length": -5])
        let (refused, refusedBytes) = try await send("v1/datasets/domain/sequences/shared", method: "POST", body: shared)
        XCTAssertEqual(refused / 100, 4)
        answered += refusedBytes
        let unauthorized = try await metric("logitd_requests_total", "status=\"401\"")
        let bytesOut = try await metric("logitd_bytes_out_total")
        let sharedBytes = try await metric("logitd_shared_memory_bytes_total")
        XCTAssertEqual(unauthorized, 3, "every 401 counted")
        XCTAssertGreaterThanOrEqual(bytesOut, Double(answered))
        XCTAssertEqual(sharedBytes, 0, "a refused shared append counted")
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// Without a token only a loopback address may be bound, decided on the parsed address:
    /// a name that merely starts with "127." never reaches DNS.
    func testHostNamesThatLookLoopbackNeedAToken() throws {
        XCTAssertThrowsError(try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--host", "127.evil.example"])) { error in
            XCTAssertTrue("\(error)".contains("refusing to listen on host name '127.evil.example' without a bearer token"), "\(error)")
        }
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--host", "localhost"])
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testGracefulShutdownSealsAndMetricsCount() async throws {
        let (daemon, client) = try await started()
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(10, "m"))
        let (metricsData, _) = try await URLSession.shared.data(from: daemon.baseURL.appendingPathComponent("metrics"))
        let metrics = String(decoding: metricsData, as: UTF8.self)
        XCTAssertTrue(metrics.contains("logitd_sequences_total 10"), metrics)
        XCTAssertTrue(metrics.contains("logitd_flush_latency_seconds"), metrics)
        let catalog = try CatalogDB(path: daemon.cacheDir + "/catalog.sqlite", readOnly: true)
        XCTAssertEqual(try catalog.shards(states: [.open]).count, 1)
        XCTAssertEqual(daemon.stop(SIGTERM), 0)
        XCTAssertEqual(try catalog.shards(states: [.open]).count, 0, "SIGTERM must seal open shards")
        XCTAssertEqual(try catalog.shards(states: [.sealed]).count, 1)
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension DaemonTests {
    func testBackpressureAnswers503WithRetryAfterAndClientsRetry() async throws {
        // Room for one ~60 KB body at a time: concurrent senders must get 503 and retry.
        let (daemon, client) = try await started(["--max-body-bytes", "100000", "--max-inflight-bytes", "100000"])
        let generator = self.generator
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 2000)
        (0..<120).map { generator.record(key: "p\($0)", seed: 2) }.forEach { encoder.append($0) }
        let body = encoder.finish()
        XCTAssertLessThan(body.count, 100000)
        XCTAssertGreaterThan(body.count, 50000)
        var request = URLRequest(url: daemon.baseURL.appendingPathComponent("v1/datasets/domain/sequences"))
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        let post = request
        let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let (_, response) = try await URLSession.shared.data(for: post)
                    let http = response as! HTTPURLResponse
                    return (http.statusCode, http.value(forHTTPHeaderField: "Retry-After"))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertTrue(statuses.allSatisfy { $0.0 == 200 || ($0.0 == 503 && $0.1 == "1") }, "\(statuses)")
        XCTAssertTrue(statuses.contains { $0.0 == 200 }, "\(statuses)")
        // The client library retries 503s until it gets through.
        let baseURL = daemon.baseURL!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<4 {
                group.addTask {
                    var e = WireBatchEncoder(mode: .sets, vocabSize: 2000)
                    (0..<120).map { generator.record(key: "q\(c)-\($0)", seed: 2) }.forEach { e.append($0) }
                    let r = try await LogitClient(baseURL: baseURL).append(dataset: "domain", body: e.finish())
                    XCTAssertEqual(r.new, 120)
                }
            }
            try await group.waitForAll()
        }
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 600)
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testIdleShardsAreSealedAndUnixSocketServes() async throws {
        let (daemon, client) = try await started(["--seal-idle-seconds", "1"])
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(3, "idle"))
        let catalog = try CatalogDB(path: daemon.cacheDir + "/catalog.sqlite", readOnly: true)
        var sealed = false
        for _ in 0..<50 where !sealed {
            try await Task.sleep(for: .milliseconds(100))
            sealed = try catalog.shards(states: [.open]).isEmpty
        }
        XCTAssertTrue(sealed, "the idle shard was not sealed within 5 s")
        XCTAssertEqual(daemon.stop(), 0)

        let socket = temporaryDirectory() + "/logitd.sock"
        let unix = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: ["--unix-socket", socket])
        XCTAssertEqual(unix.baseURL.absoluteString, "unix:\(socket)")
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw XCTSkip("curl not installed") }
        let out = Pipe()
        curl.arguments = ["-s", "--unix-socket", socket, "http://localhost/healthz"]
        curl.standardOutput = out
        try curl.run()
        curl.waitUntilExit()
        XCTAssertEqual(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), #"{"status":"ok"}"#)
        XCTAssertEqual(unix.stop(), 0)
    }
}

extension DaemonTests {
    /// Keys are data, never SQL; oversized request headers are refused before any handler runs.
    func testHostileKeysAndOversizedHeaders() async throws {
        let (daemon, client) = try await started()
        var record = records(1, "x")[0]
        record.key = "'; DROP TABLE sequence; -- \u{1F600} \"quoted\""
        let response = try await client.append(dataset: "domain", vocabSize: 2000, records: [record])
        XCTAssertEqual(response.new, 1)
        XCTAssertEqual(try stored(daemon, record.key), canonicalized(record, logprobScale: 64))
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 1)

        var request = URLRequest(url: daemon.baseURL.appendingPathComponent("v1/datasets"))
        request.setValue(String(repeating: "a", count: 200_000), forHTTPHeaderField: "X-Huge")
        let status: Int
        do {
            let (_, r) = try await URLSession.shared.data(for: request)
            status = (r as! HTTPURLResponse).statusCode
        } catch {
            status = -1   // connection closed by the server: also a refusal
        }
        XCTAssertTrue(status == -1 || (400..<500).contains(status), "a 200 KB header was accepted (\(status))")
        let alive = await LogitClient(baseURL: daemon.baseURL).ready()
        XCTAssertTrue(alive)
        XCTAssertEqual(daemon.stop(), 0)
    }
}
