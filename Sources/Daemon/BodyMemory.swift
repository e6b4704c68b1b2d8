import NIOCore
import Synchronization

/// Bounds the memory held by request bodies (backpressure) and keeps idle body buffers for
/// reuse inside the same bound. A request is charged for the body bytes it has received and
/// gets 503 + Retry-After when the next bytes do not fit; idle buffers are dropped first, so they
/// never cause a 503. A reused buffer may hold more capacity than its request has received yet.
final class BodyMemory: Sendable {
    let limit: Int
    /// Buffers smaller than this are not worth keeping.
    static let minimumKept = 1 << 20
    private struct State {
        var inFlight = 0
        var requests = 0
        var idle: [ByteBuffer] = []
        var idleBytes = 0
    }
    private let state = Mutex<State>(State())

    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes` and returns an empty buffer of at least `capacity`, reused when one is
    /// idle; nil when the reservation does not fit.
    func acquire(_ bytes: Int, capacity: Int) -> ByteBuffer? {
        enum Grant { case refused, fresh, reused(ByteBuffer) }
        let grant: Grant = state.withLock { s in
            guard s.inFlight + bytes <= limit else { return .refused }
            s.inFlight += bytes
            s.requests += 1
            var pick: ByteBuffer?
            if let i = s.idle.indices.filter({ s.idle[$0].capacity >= capacity }).min(by: { s.idle[$0].capacity < s.idle[$1].capacity }) {
                pick = s.idle.remove(at: i)
                s.idleBytes -= pick!.capacity
                // Cleared here, not on release: now the pool holds the only reference, so the
                // storage is kept (clearing a shared buffer would allocate a new one).
                pick?.clear()
            }
            Self.dropIdle(beyond: limit, &s)
            return pick.map(Grant.reused) ?? .fresh
        }
        switch grant {
        case .refused: return nil
        case .fresh: return ByteBufferAllocator().buffer(capacity: capacity)
        case .reused(let buffer): return buffer
        }
    }

    /// Whether `bytes` more would fit now (nothing is reserved).
    func fits(_ bytes: Int) -> Bool { state.withLock { $0.inFlight + bytes <= limit } }

    /// Charges `bytes` more to a request holding a buffer from `acquire`; false when they do not fit.
    func grow(_ bytes: Int) -> Bool {
        state.withLock { s in
            guard s.inFlight + bytes <= limit else { return false }
            s.inFlight += bytes
            Self.dropIdle(beyond: limit, &s)
            return true
        }
    }

    /// Idle buffers give way to bodies in flight.
    private static func dropIdle(beyond limit: Int, _ s: inout State) {
        while s.inFlight + s.idleBytes > limit, let dropped = s.idle.popLast() { s.idleBytes -= dropped.capacity }
    }

    var refusal: IngestError { IngestError(status: 503, "too many bytes in flight (limit \(limit)); retry later") }

    /// Ends a reservation; keeps `buffer` for reuse when it is large and room remains.
    func release(_ bytes: Int, buffer: ByteBuffer) {
        let kept = buffer
        state.withLock { s in
            s.inFlight -= bytes
            s.requests -= 1
            guard kept.capacity >= Self.minimumKept, s.inFlight + s.idleBytes + kept.capacity <= limit, s.idle.count < 8 else { return }
            s.idle.append(kept)
            s.idleBytes += kept.capacity
        }
    }

    var inFlight: Int { state.withLock { $0.inFlight } }
    var requests: Int { state.withLock { $0.requests } }
}
