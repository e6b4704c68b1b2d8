import Catalog
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// `logitd serve`: listens at once (so /healthz answers and /readyz says "recovering"), runs
/// the store's recovery, then turns ready. SIGTERM/SIGINT shut down gracefully through
/// swift-service-lifecycle: in-flight requests finish, then every open shard is sealed.
public enum LogitDaemon {
    /// Runs until a shutdown signal (or cancellation). `onListening` gets the bound address,
    /// e.g. "http://127.0.0.1:8484" or "unix:/run/logitd.sock".
    public static func run(settings: DaemonSettings, logger: Logger,
                           onListening: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let metrics = DaemonMetrics()
        let holder = ServiceHolder()
        let router = Router()
        router.add(middleware: AnswerMiddleware(metrics: metrics))
        if let token = settings.token { router.add(middleware: BearerAuthMiddleware(token: token)) }
        Routes(holder: holder, metrics: metrics, bodies: BodyMemory(limit: settings.maxInflightBytes),
               maxBodyBytes: settings.maxBodyBytes, sharedMemory: settings.sharedMemory).add(to: router)

        let address: BindAddress = settings.unixSocket.map { .unixDomainSocket(path: $0) }
            ?? .hostname(settings.host, port: settings.port)
        if let socket = settings.unixSocket { try? FileManager.default.removeItem(atPath: socket) }
        let app = Application(
            router: router,
            server: WatchedHTTP1Channel.server(limits: settings.connectionLimits, metrics: metrics, logger: logger),
            configuration: .init(address: address, serverName: "logitd"),
            onServerRunning: { channel in
                let bound: String
                if let socket = settings.unixSocket {
                    bound = "unix:\(socket)"
                } else {
                    bound = "http://\(settings.host):\(channel.localAddress?.port ?? settings.port)"
                }
                logger.info("listening", metadata: ["address": "\(bound)"])
                onListening(bound)
            },
            logger: logger)

        var options = settings.storeOptions
        options.flushObserver = { duration, _ in metrics.fsyncLatency.recordNanoseconds(duration.nanoseconds) }
        options.sealFailureObserver = { [logger] path, error in
            metrics.sealFailures.increment()
            logger.error("sealing a full shard failed; it stays open and is retried after the next commit",
                         metadata: ["shard": "\(path)", "error": "\(error)"])
        }
        let recovery = RecoveryService(settings: settings, options: options, metrics: metrics, holder: holder,
                                       logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: recovery)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        if let service = holder.get() {
            do {
                try service.store.seal()
                logger.info("sealed open shards on shutdown")
            } catch {
                logger.error("sealing on shutdown failed: \(error)")
                throw error
            }
        }
    }
}

/// The ingest service once recovery has finished (nil before: requests get 503).
final class ServiceHolder: Sendable {
    private let value = Mutex<IngestService?>(nil)
    func get() -> IngestService? { value.withLock { $0 } }
    func set(_ s: IngestService) { value.withLock { $0 = s } }
    func require() throws -> IngestService {
        guard let s = get() else { throw IngestError(status: 503, "logitd is recovering the cache; retry shortly") }
        return s
    }
}

/// Opens the store (running recovery), publishes it, then seals idle shards until shutdown.
struct RecoveryService: Service {
    let settings: DaemonSettings
    let options: CacheStore.Options
    let metrics: DaemonMetrics
    let holder: ServiceHolder
    let logger: Logger

    func run() async throws {
        let started = ContinuousClock.now
        let directory = settings.cacheDirectory
        let options = self.options
        let store = try await Task.detached { try CacheStore(directory: directory, options: options) }.value
        logger.info("\(store.recovery)", metadata: ["ms": "\((ContinuousClock.now - started).nanoseconds / 1_000_000)"])
        let service = IngestService(store: store, settings: settings, metrics: metrics)
        holder.set(service)
        // Idle sealing and dropping the regions of exited teachers until graceful shutdown;
        // cancellation ends the sleep.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                for (dataset, error) in await service.sealIdle() {
                    logger.error("sealing an idle dataset failed; its shard stays open and is retried when idle again",
                                 metadata: ["dataset": "\(dataset)", "error": "\(error)"])
                }
                for name in service.regions.dropOrphans() {
                    logger.info("unregistered shared-memory region of an exited process", metadata: ["region": "\(name)"])
                }
                metrics.record(regions: service.regions.list)
            }
        }
    }
}

/// Outermost middleware: turns a handler's error into its JSON answer (`Routes.ingestError`:
/// 4xx for the client's mistakes, 5xx for ours), then counts every answer in
/// `logitd_requests_total{route, status}` (route: method and path pattern, "unrouted" for paths
/// no route serves) and its body bytes in `logitd_bytes_out_total`.
struct AnswerMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: DaemonMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do { response = try await next(request, context) } catch { response = Routes.error(Routes.ingestError(error)) }
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : "\(request.method) \($0)" } ?? "unrouted"
        metrics.request(route: route, status: Int(response.status.code))
        if let bytes = response.body.contentLength { metrics.bytesOut.increment(by: bytes) }
        return response
    }
}

/// `Authorization: Bearer <token>` on everything but the health probes, compared in constant
/// time so the comparison leaks nothing about the token.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]
    init(token: String) { self.token = Array(token.utf8) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/healthz" || path == "/readyz" { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), token) else {
            var response = Routes.error(IngestError(status: 401, "missing or wrong bearer token"))
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}
