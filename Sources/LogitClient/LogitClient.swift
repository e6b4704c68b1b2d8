import Catalog
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LogitCore
import WireFormat

/// A Swift client of logitd's HTTP API. Appends are idempotent (per key), so every call is
/// retried on 503 (honouring Retry-After) and on connection errors, with exponential backoff;
/// 4xx answers are not retried and surface as `LogitClientError` with the daemon's message and
/// the byte offset / sequence / position it named.
public final class LogitClient: Sendable {
    public let baseURL: URL
    let token: String?
    let session: URLSession
    public let maxAttempts: Int

    public init(baseURL: URL, token: String? = nil, maxAttempts: Int = 8, timeout: TimeInterval = 600) {
        self.baseURL = baseURL
        self.token = token
        self.maxAttempts = max(1, maxAttempts)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.httpMaximumConnectionsPerHost = 4
        session = URLSession(configuration: configuration)
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
        let (status, _) = try await send("POST", "v1/datasets", body: try JSONSerialization.data(withJSONObject: body),
                                         contentType: "application/json")
        return status == 201
    }

    public func datasets() async throws -> [CoverageSummary] {
        try JSONDecoder().decode([CoverageSummary].self, from: try await send("GET", "v1/datasets").1)
    }

    public func stats(dataset: String) async throws -> CoverageSummary {
        try JSONDecoder().decode(CoverageSummary.self, from: try await send("GET", "v1/datasets/\(dataset)/stats").1)
    }

    public func seal(dataset: String) async throws {
        _ = try await send("POST", "v1/datasets/\(dataset)/seal")
    }

    /// The subset of `keys` already stored in the dataset (any number of keys; sent in chunks).
    public func presentKeys(dataset: String, keys: [String]) async throws -> Set<String> {
        var present = Set<String>()
        for start in stride(from: 0, to: keys.count, by: 5_000) {
            let chunk = Array(keys[start..<min(start + 5_000, keys.count)])
            let body = try JSONSerialization.data(withJSONObject: ["keys": chunk])
            let data = try await send("POST", "v1/datasets/\(dataset)/keys", body: body, contentType: "application/json").1
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

    /// Any wire-format body (sets or logits mode, built with `WireBatchEncoder`).
    public func append(dataset: String, body: [UInt8]) async throws -> AppendResponse {
        let data = try await send("POST", "v1/datasets/\(dataset)/sequences", body: Data(body),
                                  contentType: "application/octet-stream").1
        return try JSONDecoder().decode(AppendResponse.self, from: data)
    }

    public func ready() async -> Bool {
        (try? await send("GET", "readyz", attempts: 1)) != nil
    }

    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil,
              attempts: Int? = nil) async throws -> (Int, Data) {
        var request = URLRequest(url: baseURL.appendingPathComponent(path))
        request.httpMethod = method
        request.httpBody = body
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        // libcurl (under URLSession on Linux) sends `Expect: 100-continue` for bodies over 1 MB and
        // then waits up to a second for an interim answer; logits-mode batches are tens of MB.
        request.setValue("", forHTTPHeaderField: "Expect")
        var delay = 0.05
        let limit = attempts ?? maxAttempts
        for attempt in 1...limit {
            do {
                let (data, response) = try await session.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if (200..<300).contains(status) { return (status, data) }
                let error = LogitClientError(status: status, body: data)
                guard status == 503, attempt < limit else { throw error }
                let retryAfter = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Retry-After").flatMap(Double.init)
                try await Task.sleep(for: .milliseconds(Int(1000 * min(retryAfter ?? delay, 30))))
            } catch let error as LogitClientError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                guard attempt < limit else { throw LogitClientError(status: nil, message: "\(method) \(path): \(error.localizedDescription)") }
                try await Task.sleep(for: .milliseconds(Int(1000 * delay)))
            }
            delay = min(delay * 2, 5)
        }
        throw LogitClientError(status: nil, message: "\(method) \(path): gave up after \(limit) attempts")
    }
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
