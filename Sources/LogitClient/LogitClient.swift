import AsyncHTTPClient
import Foundation
import LogitCore
import NIOCore
import NIOHTTP1
import SharedMemory
import WireFormat

/// A Swift client of logitd's HTTP API, on AsyncHTTPClient (SwiftNIO). Appends are idempotent
/// (per key), so every call is retried on 503 (honouring Retry-After) and on connection errors,
/// with exponential backoff; other 4xx/5xx answers are not retried and surface as
/// `LogitClientError` with the daemon's message and the byte offset / sequence / position it named.
///
/// Why not URLSession: on Linux it goes through libcurl and copies each body several times
/// (`Data`, CF streams); the clients share the cores with the daemon, so every client
/// microsecond is taken out of the ingest rate. Here a body is one `ByteBuffer`, written to the
/// socket as is and reused across retries.
///
/// `baseURL` is `http://HOST:PORT`, or a Unix domain socket as logitd prints it (`unix:/PATH`)
/// or as AsyncHTTPClient spells it (`http+unix://%2FPATH`).
public final class LogitClient: Sendable {
    public let baseURL: URL
    let token: String?
    public let maxAttempts: Int
    /// Deadline of one attempt (connect, send, daemon's durable commit, answer).
    let timeout: TimeAmount
    /// `baseURL` as AsyncHTTPClient wants it, without a trailing slash; paths are appended.
    let urlPrefix: String

    public init(baseURL: URL, token: String? = nil, maxAttempts: Int = 8, timeout: TimeInterval = 600) {
        self.baseURL = baseURL
        self.token = token
        self.maxAttempts = max(1, maxAttempts)
        self.timeout = .nanoseconds(Int64(max(0.001, min(timeout, 1e9)) * 1e9))
        urlPrefix = Self.urlPrefix(for: baseURL)
    }

    public struct AppendResponse: Sendable, Codable, Equatable {
        public var new: Int
        public var duplicates: Int
        public var positions: Int
    }

    /// Creates the dataset; `created` is false when an identical one existed (a different one is a 409 error).
    @discardableResult
    public func createDataset(_ spec: DatasetSpec) async throws -> Bool {
        let body: [String: Any] = [
            "name": spec.name, "vocab_size": spec.vocabSize, "tau": spec.policy.tau, "k_min": spec.policy.kMin,
            "k_max": spec.policy.kMax, "teacher_id": spec.teacherId, "tokenizer_id": spec.tokenizerId,
            "tokenizer_hash": spec.tokenizerHash, "logprob_scale": Double(spec.logprobScale),
        ]
        let (status, _) = try await send(.POST, "v1/datasets", body: Self.json(body), contentType: "application/json")
        return status == 201
    }

    public func datasets() async throws -> [CoverageSummary] {
        try JSONDecoder().decode([CoverageSummary].self, from: try await send(.GET, "v1/datasets").1)
    }

    public func stats(dataset: String) async throws -> CoverageSummary {
        try JSONDecoder().decode(CoverageSummary.self, from: try await send(.GET, "v1/datasets/\(dataset)/stats").1)
    }

    public func seal(dataset: String) async throws {
        _ = try await send(.POST, "v1/datasets/\(dataset)/seal")
    }

    /// The subset of `keys` already stored in the dataset (any number of keys; sent in chunks).
    public func presentKeys(dataset: String, keys: [String]) async throws -> Set<String> {
        var present = Set<String>()
        for start in stride(from: 0, to: keys.count, by: 5_000) {
            let chunk = Array(keys[start..<min(start + 5_000, keys.count)])
            let data = try await send(.POST, "v1/datasets/\(dataset)/keys", body: Self.json(["keys": chunk]),
                                      contentType: "application/json").1
            struct Answer: Decodable { var present: [String] }
            present.formUnion(try JSONDecoder().decode(Answer.self, from: data).present)
        }
        return present
    }

    /// Sets mode: the teacher chose the candidate sets.
    public func append(dataset: String, vocabSize: Int, records: [SequenceRecord]) async throws -> AppendResponse {
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: vocabSize)
        for r in records { encoder.append(r) }
        return try await append(dataset: dataset, body: encoder.finish())
    }

    /// Any wire-format body (sets or logits mode, built with `WireBatchEncoder`). The bytes are
    /// copied once into a `ByteBuffer`; callers that send the same body repeatedly, or can build a
    /// `ByteBuffer` themselves, should use `append(dataset:body:)` with a `ByteBuffer`.
    public func append(dataset: String, body: [UInt8]) async throws -> AppendResponse {
        try await append(dataset: dataset, body: ByteBuffer(bytes: body))
    }

    /// Any wire-format body, already in a `ByteBuffer`: sent without a copy, and the same storage is
    /// resent on every retry.
    public func append(dataset: String, body: ByteBuffer) async throws -> AppendResponse {
        let data = try await send(.POST, "v1/datasets/\(dataset)/sequences", body: body,
                                  contentType: "application/octet-stream").1
        return try JSONDecoder().decode(AppendResponse.self, from: data)
    }

    /// Registers a shared-memory region of this process under `name` (schema/SHARED_MEMORY.md);
    /// registering the same region again is a no-op. The daemon must run on this host.
    public func registerRegion(name: String, region: SharedMemoryRegion) async throws {
        _ = try await send(.POST, "v1/regions", body: Self.json(["name": name, "path": region.path]),
                           contentType: "application/json")
    }

    /// A registered region as the daemon lists it.
    public typealias RegionInfo = SharedRegionInfo

    public func regions() async throws -> [RegionInfo] {
        try JSONDecoder().decode([RegionInfo].self, from: try await send(.GET, "v1/regions").1)
    }

    public func unregisterRegion(name: String) async throws {
        _ = try await send(.DELETE, "v1/regions/\(name)")
    }

    /// A wire-format body lying at `offset ..< offset + length` of a registered region: the
    /// daemon reads it there. Leave those bytes alone until this returns; put the body at a
    /// multiple of 64 so that the daemon reads aligned rows in place.
    public func appendShared(dataset: String, region: String, offset: Int, length: Int) async throws -> AppendResponse {
        let data = try await send(.POST, "v1/datasets/\(dataset)/sequences/shared",
                                  body: Self.json(["region": region, "offset": offset, "length": length]),
                                  contentType: "application/json").1
        return try JSONDecoder().decode(AppendResponse.self, from: data)
    }

    /// Whether `/readyz` answers 2xx now (one attempt, no retry).
    public func ready() async -> Bool {
        (try? await send(.GET, "readyz", attempts: 1)) != nil
    }

    /// The largest answer accepted: stats, listings and key lookups are JSON well under this.
    static let maxResponseBytes = 64 << 20

    func send(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, contentType: String? = nil,
              attempts: Int? = nil) async throws -> (Int, Data) {
        let encodedPath = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        let url = urlPrefix + "/" + encodedPath
        var request = HTTPClientRequest(url: url)
        request.method = method
        // One ByteBuffer, shared (copy-on-write, never written) by every attempt. AsyncHTTPClient
        // sends Content-Length and no `Expect: 100-continue`, so the body follows the headers at once.
        if let body { request.body = .bytes(body) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        var delay = 0.05
        let limit = attempts ?? maxAttempts
        var lastError: (any Error)?
        for attempt in 1...limit {
            do {
                let response = try await Self.http.execute(request, timeout: timeout)
                let status = Int(response.status.code)
                let answer = try await response.body.collect(upTo: Self.maxResponseBytes)
                let data = Data(answer.readableBytesView)
                if (200..<300).contains(status) { return (status, data) }
                let error = LogitClientError(status: status, body: data)
                guard status == 503, attempt < limit else { throw error }
                let retryAfter = response.headers.first(name: "Retry-After").flatMap(Double.init)
                try await Task.sleep(for: .milliseconds(Int(1000 * min(max(retryAfter ?? delay, 0), 30))))
            } catch let error as LogitClientError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // AsyncHTTPClient reports a cancelled task as its own error; keep cancellation typed.
                if Task.isCancelled { throw CancellationError() }
                lastError = error
                guard attempt < limit else { break }
                try await Task.sleep(for: .milliseconds(Int(1000 * delay)))
            }
            delay = min(delay * 2, 5)
        }
        let cause = lastError.map { "\($0)" } ?? "no answer"
        throw LogitClientError(status: nil, message: "\(method.rawValue) \(url): no connection to logitd after \(limit) attempt(s): \(cause)")
    }

    static func json(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func urlPrefix(for baseURL: URL) -> String {
        if baseURL.scheme == "unix", let socket = URL(httpURLWithSocketPath: baseURL.path, uri: "/") {
            // logitd prints `unix:/PATH`; AsyncHTTPClient takes the socket path as the host of http+unix.
            return String(socket.absoluteString.dropLast())
        }
        var prefix = baseURL.absoluteString
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return prefix
    }

    /// One HTTP client for the whole process, never shut down (a global is never deinitialised,
    /// so there is no "Client not shut down before the deinit"). Not `HTTPClient.shared`, whose
    /// configuration does not fit: its 90 s read timeout would cut a long durable append short of
    /// the caller's `timeout`; it retries a refused connection inside the pool until its 90 s
    /// connect timeout, which would hide a down daemon from our own bounded retries; it follows
    /// redirects and decompresses, neither of which logitd does; and its pool holds 8 connections
    /// per host, fewer than the concurrent appenders a teacher rack or the tests run.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(10)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 32),
            decompression: .disabled)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}

/// An answer the daemon refused, or a connection that never worked.
public struct LogitClientError: Error, Sendable, CustomStringConvertible {
    public var status: Int?
    public var message: String
    public var offset: Int?
    public var sequence: Int?
    public var position: Int?
    public var key: String?

    init(status: Int?, message: String) {
        self.status = status
        self.message = message
    }

    init(status: Int, body: Data) {
        self.status = status
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        message = object?["error"] as? String ?? String(decoding: body, as: UTF8.self)
        offset = object?["offset"] as? Int
        sequence = object?["sequence"] as? Int
        position = object?["position"] as? Int
        key = object?["key"] as? String
    }

    public var description: String { status.map { "HTTP \($0): \(message)" } ?? message }
}
