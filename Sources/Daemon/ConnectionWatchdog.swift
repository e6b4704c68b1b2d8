import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// How long a client may take over each part of a request, and how many connections may be
/// open at once. Without these a client that stops sending holds a connection (and whatever its
/// request holds) for ever: a header trickle, a half-sent body, or a thousand idle sockets.
struct ConnectionLimits: Sendable, Equatable {
    /// From a request's first byte until its header is complete.
    var header: TimeAmount
    /// A connection with no request in progress (keep-alive, or a new one that sends nothing).
    var idle: TimeAmount
    /// The longest gap between two arrivals of a body's bytes.
    var bodyProgress: TimeAmount
    /// From a request's first byte until its body is complete, however steadily it arrives.
    var request: TimeAmount
    /// Connections beyond this are answered 503 and closed at once.
    var maxConnections: Int
}

/// logitd's HTTP/1.1 server: Hummingbird's, with the connection cap in front of the HTTP parser
/// (so a refused connection costs no parsing) and the request deadlines right after it.
struct WatchedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let gate: ConnectionGate.Shared

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits, metrics: DaemonMetrics, logger: Logger) {
        http1 = HTTP1Channel(responder: responder, configuration: .init(
            additionalChannelHandlers: [RequestDeadlines(limits: limits, metrics: metrics, logger: logger)]))
        gate = ConnectionGate.Shared(limit: limits.maxConnections, metrics: metrics)
    }

    static func server(limits: ConnectionLimits, metrics: DaemonMetrics, logger: Logger) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in WatchedHTTP1Channel(responder: responder, limits: limits, metrics: metrics, logger: logger) }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionGate(shared: gate), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http1.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// Tells the handlers after the HTTP parser that bytes arrived: the parser says nothing until a
/// header is complete, so without this a header trickle looks like an idle connection.
struct BytesArrived: Sendable {}

/// First in every connection's pipeline: counts open connections, refuses those over the cap
/// with a 503, and announces each arrival of bytes as `BytesArrived`.
final class ConnectionGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The count all connections share.
    final class Shared: Sendable {
        let limit: Int
        let metrics: DaemonMetrics
        private let open = Atomic<Int>(0)

        init(limit: Int, metrics: DaemonMetrics) {
            self.limit = limit
            self.metrics = metrics
        }

        func admit() -> Bool {
            let after = open.wrappingAdd(1, ordering: .relaxed).newValue
            guard after <= limit else {
                open.wrappingSubtract(1, ordering: .relaxed)
                return false
            }
            metrics.openConnections.record(after)
            return true
        }

        func leave() {
            metrics.openConnections.record(open.wrappingSubtract(1, ordering: .relaxed).newValue)
        }
    }

    private let shared: Shared
    private var admitted = false
    private var refused = false

    init(shared: Shared) { self.shared = shared }

    func channelActive(context: ChannelHandlerContext) {
        if shared.admit() {
            admitted = true
        } else {
            refused = true
            shared.metrics.connectionsRefused.increment()
            let body = #"{"error":"too many open connections (limit \#(shared.limit)); retry later","status":503}"#
            let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
                + "connection: close\r\ncontent-length: \(body.utf8.count)\r\n\r\n" + body
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: answer)), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted {
            admitted = false
            shared.leave()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's request is never parsed.
        guard !refused else { return }
        context.fireUserInboundEventTriggered(BytesArrived())
        context.fireChannelRead(data)
    }
}

/// Right after the HTTP parser: closes a connection whose client exceeds one of the
/// `ConnectionLimits` (with a 408 when a request was under way and no answer had started),
/// and counts the parser's 400s, which no route sees. Time the daemon spends answering is
/// never limited: only the client's part is.
final class RequestDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// No request in progress.
        case idle(since: NIODeadline)
        /// Bytes of a request arrived; its header is not complete.
        case head(started: NIODeadline)
        /// The header is in; the body is arriving.
        case body(started: NIODeadline, lastBytes: NIODeadline)
        /// The request is complete; the daemon is answering. `next`: when bytes of a pipelined
        /// next request first arrived.
        case answering(next: NIODeadline?)
    }

    private let limits: ConnectionLimits
    private let metrics: DaemonMetrics
    private let logger: Logger
    private var phase = Phase.idle(since: .now())
    private var answerStarted = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(limits: ConnectionLimits, metrics: DaemonMetrics, logger: Logger) {
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    /// The limit a client exceeded; the raw value is the metric label.
    enum Limit: String {
        case idle, header, bodyProgress = "body_progress", request
    }

    /// When the client's current part runs out of time, and which limit that is.
    var deadline: (at: NIODeadline, limit: Limit)? {
        switch phase {
        case .idle(let since):
            return (since + limits.idle, .idle)
        case .head(let started):
            return limits.header <= limits.request ? (started + limits.header, .header) : (started + limits.request, .request)
        case .body(let started, let lastBytes):
            let progress = lastBytes + limits.bodyProgress, total = started + limits.request
            return progress <= total ? (progress, .bodyProgress) : (total, .request)
        case .answering:
            return nil
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        phase = .idle(since: .now())
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is BytesArrived else { return context.fireUserInboundEventTriggered(event) }
        let now = NIODeadline.now()
        switch phase {
        case .idle: phase = .head(started: now)
        case .head: break
        case .body(let started, _): phase = .body(started: started, lastBytes: now)
        case .answering(let next): phase = .answering(next: next ?? now)
        }
        arm(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = NIODeadline.now()
        switch unwrapInboundIn(data) {
        case .head:
            if case .head(let started) = phase { phase = .body(started: started, lastBytes: now) } else { phase = .body(started: now, lastBytes: now) }
            answerStarted = false
        case .body:
            break
        case .end:
            phase = .answering(next: nil)
        }
        arm(context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.kind != .informational:
            answerStarted = true
        case .end:
            // An answer given before the body was read (413, 503) leaves the client its body to
            // finish, still under the limits.
            if case .answering(let next) = phase {
                phase = next.map { .head(started: $0) } ?? .idle(since: .now())
                arm(context)
            }
        default:
            break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A malformed body surfaces in the route reading it, which counts it; a malformed
        // header is answered 400 by Hummingbird, outside every route.
        if error is HTTPParserError {
            switch phase {
            case .idle, .head: metrics.request(route: "http_parser", status: 400)
            case .body, .answering: break
            }
        }
        context.fireErrorCaught(error)
    }

    /// Schedules a check at the current deadline unless one is due earlier: progress only moves
    /// deadlines later, so the check that fires early re-arms itself.
    private func arm(_ context: ChannelHandlerContext) {
        guard let (at, _) = deadline else { return }
        if let scheduled = timerDeadline, scheduled <= at { return }
        timer?.cancel()
        timerDeadline = at
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) { [self] in
            timer = nil
            timerDeadline = nil
            check(context)
        }
    }

    private func check(_ context: ChannelHandlerContext) {
        guard let (at, limit) = deadline else { return }
        guard at <= .now() else { return arm(context) }
        metrics.connectionClosed(reason: limit.rawValue)
        logger.debug("closing a connection whose client exceeded a limit", metadata: [
            "limit": "\(limit.rawValue)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        if case .idle = phase {
            context.close(promise: nil)
            return
        }
        if !answerStarted {
            answerStarted = true
            let seconds: (TimeAmount) -> String = { String(format: "%g", Double($0.nanoseconds) / 1e9) }
            let message: String
            switch limit {
            case .header: message = "request header not complete within header_timeout_seconds (\(seconds(limits.header)) s)"
            case .bodyProgress: message = "no request body bytes for body_timeout_seconds (\(seconds(limits.bodyProgress)) s)"
            case .request, .idle: message = "request not complete within request_timeout_seconds (\(seconds(limits.request)) s)"
            }
            var body = context.channel.allocator.buffer(capacity: 128)
            body.writeString(#"{"error":"\#(message)","status":408}"#)
            let head = HTTPResponse(status: .requestTimeout, headerFields: [
                .contentType: "application/json", .connection: "close", .contentLength: "\(body.readableBytes)"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.close(promise: nil)
    }
}
