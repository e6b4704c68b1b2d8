import Catalog
import Foundation
import Hummingbird
import LogitCore
import NIOCore
import NIOHTTP1
import Synchronization

/// The HTTP API (JSON for control, the binary wire format for records; see
/// schema/WIRE_FORMAT.md and schema/openapi.yaml):
///
///     POST /v1/datasets                      create (201; 200 when identical; 409 when different)
///     GET  /v1/datasets                      list
///     GET  /v1/datasets/{name}/stats         coverage from the catalog aggregates
///     POST /v1/datasets/{name}/seal          flush and seal open shards
///     POST /v1/datasets/{name}/sequences     append a batch; 200 only once durable
///     POST /v1/datasets/{name}/keys          which of these keys are stored (teachers resume with it)
///     POST /v1/datasets/{name}/sequences/shared  append a batch lying in a shared-memory region
///     POST /v1/regions  GET /v1/regions  DELETE /v1/regions/{name}   (schema/SHARED_MEMORY.md)
///     GET  /healthz  /readyz  /metrics
struct Routes {
    let holder: ServiceHolder
    let metrics: DaemonMetrics
    let bodies: BodyMemory
    let maxBodyBytes: Int
    /// Serve the shared-memory routes (setting `shared_memory`).
    let sharedMemory: Bool

    func add(to router: Router<BasicRequestContext>) {
        router.get("healthz") { _, _ in Self.json(200, ["status": "ok"]) }
        router.get("readyz") { _, _ in
            holder.get() != nil ? Self.json(200, ["status": "ready"]) : Self.json(503, ["status": "recovering"])
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        // Handlers throw; `AnswerMiddleware` turns every error into its JSON answer and counts it.
        let v1 = router.group("v1/datasets")
        v1.post { request, _ in try await createDataset(request) }
        v1.get { _, _ in
            let service = try holder.require()
            let store = service.store
            let list = try await service.offload { try store.datasets().map { try CoverageSummary.make(store: store, dataset: $0.spec.name) } }
            return try Self.json(200, list)
        }
        v1.get(":name/stats") { _, context in
            let name = try context.parameters.require("name")
            let service = try holder.require()
            let store = service.store
            return try Self.json(200, try await service.offload { try CoverageSummary.make(store: store, dataset: name) })
        }
        v1.post(":name/seal") { _, context in
            let name = try context.parameters.require("name")
            let service = try holder.require()
            let store = service.store
            try await service.offload { try store.seal(dataset: name) }
            return Self.json(200, ["sealed": name])
        }
        v1.post(":name/keys") { request, context in try await lookupKeys(request, name: try context.parameters.require("name")) }
        v1.post(":name/sequences") { request, context in try await append(request, name: try context.parameters.require("name")) }
        guard sharedMemory else { return }
        v1.post(":name/sequences/shared") { request, context in
            try await appendShared(request, name: try context.parameters.require("name"))
        }
        let regions = router.group("v1/regions")
        regions.post { request, _ in
            let r: RegionRequest = try await Self.decodeJSON(request, "region JSON: expected {\"name\": string, \"path\": string}")
            let regions = try holder.require().regions
            let (entry, created) = try regions.register(name: r.name, path: r.path)
            metrics.record(regions: regions.list)
            return try Self.json(created ? 201 : 200, entry)
        }
        regions.get { _, _ in try Self.json(200, try holder.require().regions.list) }
        regions.delete(":name") { _, context in
            let name = try context.parameters.require("name")
            let regions = try holder.require().regions
            try regions.unregister(name)
            metrics.record(regions: regions.list)
            return Self.json(200, ["unregistered": name])
        }
    }

    /// `{"region", "offset", "length"}`: the batch body lies at those bytes of a registered
    /// region. Same validation, atomicity and answer as a body sent in the request.
    func appendShared(_ request: Request, name: String) async throws -> Response {
        let service = try holder.require()
        let r: SharedAppendRequest = try await Self.decodeJSON(
            request, "shared append JSON: expected {\"region\": string, \"offset\": int, \"length\": int}")
        // No max_body_bytes here: that bounds memory bodies hold in the daemon, and a shared body
        // stays in the teacher's region, bounded by max_shared_bytes.
        let region = try service.regions.mapping(r.region)
        let outcome = try await service.appendShared(dataset: name, region: region, offset: r.offset, length: r.length)
        // Counted once accepted: a refused request's declared length (negative, or past the
        // region) is no data taken in.
        metrics.bytesShared.increment(by: r.length)
        return try Self.json(200, outcome)
    }

    /// A JSON request body of at most `limit` bytes; a 400 naming `expected` when it does not decode.
    static func decodeJSON<T: Decodable>(_ request: Request, _ expected: String, upTo limit: Int = 1 << 20) async throws -> T {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limit) } catch is NIOTooManyBytesError {
            throw IngestError(status: 413, "request body exceeds the limit of \(limit) bytes for \(expected)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: body))
        } catch {
            throw IngestError(status: 400, "\(expected): \(error)")
        }
    }

    /// The answer to a failure. Errors of the HTTP layer are the client's: a malformed chunked
    /// body or a connection that ends inside the body (NIO's parser, surfacing while a handler
    /// reads the body) is a 400, a body over a limit a 413; 500 is left for our own faults.
    static func ingestError(_ error: Error) -> IngestError {
        switch error {
        case let e as IngestError:
            return e
        case let e as HTTPError:
            return IngestError(status: Int(e.status.code), e.body ?? e.status.reasonPhrase)
        case let e as NIOTooManyBytesError:
            return IngestError(status: 413, "request body exceeds the limit of \(e.maxBytes.map { "\($0)" } ?? "the route's") bytes")
        case let e as HTTPParserError:
            let what: String
            switch e {
            case .invalidChunkSize: what = "malformed chunked body: a chunk size is not a hexadecimal number that fits in 64 bits"
            case .invalidEOFState: what = "the connection ended inside the request body, before Content-Length bytes or the last chunk arrived"
            case .invalidContentLength, .unexpectedContentLength: what = "bad Content-Length header"
            default: what = "malformed HTTP/1.1 request (\(e))"
            }
            return IngestError(status: 400, what)
        case let e as any HTTPResponseError where (400..<500).contains(Int(e.status.code)):
            return IngestError(status: Int(e.status.code), "\(e.status.reasonPhrase): \(e)")
        default:
            return IngestError(error)
        }
    }

    func createDataset(_ request: Request) async throws -> Response {
        let service = try holder.require()
        let spec = (try await Self.decodeJSON(request, "dataset JSON") as DatasetRequest).spec
        let store = service.store
        let (info, created) = try await service.offload { try store.createDataset(spec) }
        return try Self.json(created ? 201 : 200, DatasetRequest(info.spec))
    }

    /// At most this many keys per lookup: bounds the work and the answer of one request.
    static let maxLookupKeys = 10_000

    /// `{"keys": [...]}` → `{"present": [...]}` (in request order): lets a teacher skip windows
    /// already recorded before spending any model time on them.
    func lookupKeys(_ request: Request, name: String) async throws -> Response {
        let service = try holder.require()
        let keys = (try await Self.decodeJSON(request, "key lookup JSON: expected {\"keys\": [string]}", upTo: 4 << 20) as KeyLookup).keys
        guard keys.count <= Self.maxLookupKeys else {
            throw IngestError(status: 413, "\(keys.count) keys in one lookup, the limit is \(Self.maxLookupKeys)")
        }
        // A key no append would accept cannot be stored: refuse it as the append would, rather
        // than answer "absent" for a key the teacher could never send.
        for (i, key) in keys.enumerated() {
            do { try SequenceKey.validate(key) } catch {
                throw IngestError(status: 400, "keys[\(i)]: \(error.description)", key: key)
            }
        }
        let store = service.store
        let present = try await service.offload {
            let info = try store.dataset(named: name)
            let committed = try store.catalog.committed(datasetId: info.id, keys: keys)
            return zip(keys, committed).filter(\.1).map(\.0)
        }
        return try Self.json(200, ["present": present])
    }

    func append(_ request: Request, name: String) async throws -> Response {
        let service = try holder.require()
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > maxBodyBytes {
            throw IngestError(status: 413, "body of \(declared) bytes exceeds the limit of \(maxBodyBytes)")
        }
        // A body is charged for the bytes that have arrived, as they arrive: a client that sends
        // nothing holds nothing of the in-flight budget, however large the body it announced.
        // A declared length that cannot fit now is refused before the client sends it.
        if let declared, !bodies.fits(declared) { throw bodies.refusal }
        var buffer: ByteBuffer?
        var charged = 0
        defer {
            if let buffer { bodies.release(charged, buffer: buffer) }
            metrics.inflightBytes.record(bodies.inFlight)
            metrics.inflightRequests.record(bodies.requests)
        }
        for try await chunk in request.body {
            guard charged + chunk.readableBytes <= maxBodyBytes else {
                throw IngestError(status: 413, "body exceeds the limit of \(maxBodyBytes) bytes")
            }
            if buffer == nil {
                // One buffer sized from Content-Length (growing by doubling would copy a logits
                // body several times), reused across requests (a fresh one costs a page fault
                // per 4 KiB on first write).
                guard let first = bodies.acquire(chunk.readableBytes, capacity: declared ?? 64 << 10) else { throw bodies.refusal }
                buffer = first
                metrics.inflightRequests.record(bodies.requests)
            } else if !bodies.grow(chunk.readableBytes) {
                throw bodies.refusal
            }
            charged += chunk.readableBytes
            metrics.inflightBytes.record(bodies.inFlight)
            buffer!.writeImmutableBuffer(chunk)
        }
        let body = buffer ?? ByteBuffer()
        metrics.bytesIn.increment(by: body.readableBytes)
        let outcome = try await service.append(dataset: name, body: body)
        return try Self.json(200, outcome)
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ status: Int, _ value: [String: String]) -> Response {
        (try? json(status, value as [String: String]?)) ?? Response(status: .internalServerError)
    }

    static func error(_ e: IngestError) -> Response {
        var response = (try? json(e.status, e)) ?? Response(status: .internalServerError)
        if e.status == 503 { response.headers[.retryAfter] = "1" }
        return response
    }
}

struct KeyLookup: Codable { var keys: [String] }
struct RegionRequest: Codable { var name: String; var path: String }
struct SharedAppendRequest: Codable { var region: String; var offset: Int; var length: Int }

/// The JSON of a dataset: `{"name", "vocab_size", "tau", "k_min", "k_max", "teacher_id",
/// "tokenizer_id", "tokenizer_hash", "logprob_scale"}`; policy fields default to the standard policy.
struct DatasetRequest: Codable {
    var name: String
    var vocab_size: Int
    var tau: Double?
    var k_min: Int?
    var k_max: Int?
    var teacher_id: String?
    var tokenizer_id: String?
    var tokenizer_hash: String?
    var logprob_scale: Float?

    init(_ spec: DatasetSpec) {
        name = spec.name
        vocab_size = spec.vocabSize
        tau = spec.policy.tau
        k_min = spec.policy.kMin
        k_max = spec.policy.kMax
        teacher_id = spec.teacherId
        tokenizer_id = spec.tokenizerId
        tokenizer_hash = spec.tokenizerHash
        logprob_scale = spec.logprobScale
    }

    var spec: DatasetSpec {
        DatasetSpec(name: name, vocabSize: vocab_size,
                    policy: SelectionPolicy(tau: tau ?? SelectionPolicy.default.tau, kMin: k_min ?? SelectionPolicy.default.kMin,
                                            kMax: k_max ?? SelectionPolicy.default.kMax),
                    teacherId: teacher_id ?? "", tokenizerId: tokenizer_id ?? "", tokenizerHash: tokenizer_hash ?? "",
                    logprobScale: logprob_scale ?? 64)
    }
}
