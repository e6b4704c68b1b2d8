import Catalog
import Dispatch
import Foundation
import LogitCore
import NIOCore
import SharedMemory
import Synchronization
import WireFormat

/// The daemon's work, free of HTTP: decode a batch, select (logits mode), append, wait until
/// durable. Blocking store calls (fsync, SQLite) run on a dedicated dispatch queue so that
/// they never stall Swift's cooperative threads; many requests blocked in `waitDurable` at
/// once is exactly what lets one fsync and one commit serve them all.
public final class IngestService: Sendable {
    public let store: CacheStore
    let settings: DaemonSettings
    let metrics: DaemonMetrics
    let blocking = DispatchQueue(label: "logitd.blocking", attributes: .concurrent)
    /// Last append per dataset id, for the idle sealer.
    let lastAppend = Mutex<[String: ContinuousClock.Instant]>([:])
    /// Requests in logits-mode selection right now.
    let selectingRequests = Atomic<Int>(0)
    static let cores = ProcessInfo.processInfo.activeProcessorCount
    /// Shared-memory regions of teachers on this host.
    let regions: SharedRegions

    init(store: CacheStore, settings: DaemonSettings, metrics: DaemonMetrics) {
        self.store = store
        self.settings = settings
        self.metrics = metrics
        regions = SharedRegions(limit: settings.maxSharedBytes)
    }

    /// Runs blocking work off the cooperative pool.
    func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            blocking.async { continuation.resume(with: Result { try body() }) }
        }
    }

    func dataset(_ name: String) throws -> DatasetInfo { try store.dataset(named: name) }

    public struct AppendOutcome: Sendable, Codable, Equatable {
        public var new: Int
        public var duplicates: Int
        public var positions: Int
    }

    /// Decodes and appends one batch; returns once it is durable. Throws `IngestError`.
    /// Decoding, selection and the durable append all run on the blocking queue, reading the
    /// request body in place.
    func append(dataset name: String, body: ByteBuffer) async throws -> AppendOutcome {
        try await append(dataset: name) { read in try body.withUnsafeReadableBytes { try read($0) } }
    }

    /// The same for a body a teacher wrote into a registered shared-memory region: read where
    /// it lies, never copied. The closure holds the mapping, so it outlives an unregister.
    func appendShared(dataset name: String, region: SharedMemoryMapping, offset: Int, length: Int) async throws -> AppendOutcome {
        do { _ = try region.bytes(offset: offset, length: length) } catch {
            throw IngestError(status: 400, "\(error)")
        }
        return try await append(dataset: name) { read in try read(try region.bytes(offset: offset, length: length)) }
    }

    private func append(dataset name: String,
                        withBody: @escaping @Sendable ((UnsafeRawBufferPointer) throws -> AppendOutcome) throws -> AppendOutcome)
        async throws -> AppendOutcome {
        let info: DatasetInfo
        do { info = try dataset(name) } catch { throw IngestError(error) }
        let started = ContinuousClock.now
        let outcome = try await offload {
            try withBody { raw in try self.appendBlocking(dataset: name, info: info, body: raw) }
        }
        metrics.ackLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        metrics.sequences.increment(by: outcome.new)
        metrics.duplicates.increment(by: outcome.duplicates)
        metrics.positions.increment(by: outcome.positions)
        lastAppend.withLock { $0[name] = .now }
        return outcome
    }

    private func appendBlocking(dataset name: String, info: DatasetInfo, body: UnsafeRawBufferPointer) throws -> AppendOutcome {
        var decoder = WireBatchDecoder()
        let batch: WireBatch
        do {
            batch = try decoder.decode(body, expectedVocab: info.spec.vocabSize, maxK: info.spec.policy.kMax)
        } catch {
            throw IngestError(status: 400, error.message, offset: error.offset, sequence: error.sequence, position: error.position)
        }
        let offsets = decoder.sequenceOffsets
        let records: [SequenceRecord]
        switch batch {
        case .sets(let r): records = r
        case .logits(let dtype, let sequences):
            records = try select(sequences, dtype: dtype, body: body, info: info, offsets: offsets)
        }
        let positions = records.reduce(0) { $0 + $1.positions }
        do {
            let r = try store.append(dataset: name, records: records)
            try store.waitDurable(r.ticket)
            return AppendOutcome(new: r.new, duplicates: r.duplicates, positions: positions)
        } catch {
            if case .invalidRecord(let index, let reason) = error {
                throw IngestError(status: 400, reason, offset: index < offsets.count ? offsets[index] : nil, sequence: index)
            }
            throw IngestError(error)
        }
    }

    /// Logits mode: the dataset's policy on all cores, reading rows in place when aligned.
    private func select(_ sequences: [WireLogitsSequence], dtype: WireDType, body: UnsafeRawBufferPointer,
                        info: DatasetInfo, offsets: [Int]) throws -> [SequenceRecord] {
        let selector = try TopKSelector(policy: info.spec.policy)
        let vocab = info.spec.vocabSize
        // The cores are shared by the requests selecting at the same moment: one request alone
        // gets them all, two each get half. Splitting every request across every core instead
        // has threads of several requests contend for the same cores and memory bandwidth.
        let selecting = selectingRequests.add(1, ordering: .relaxed).newValue
        defer { selectingRequests.subtract(1, ordering: .relaxed) }
        let threads = settings.selectionThreads > 0 ? settings.selectionThreads : max(1, Self.cores / selecting)
        var records: [SequenceRecord] = []
        records.reserveCapacity(sequences.count)
        for (s, seq) in sequences.enumerated() {
            let golds = Array(seq.tokens.dropFirst())
            let rows = UnsafeRawBufferPointer(rebasing: body[seq.rowsOffset..<seq.rowsOffset + seq.positions * vocab * dtype.byteWidth])
            let sets: [SelectedSet]
            do {
                switch dtype {
                case .f32: sets = try Self.withAligned(rows, Float.self) { try selector.selectBatch(rows: $0, vocab: vocab, golds: golds, threads: threads) }
                case .f16: sets = try Self.withAligned(rows, Float16.self) { try selector.selectBatch(rows: $0, vocab: vocab, golds: golds, threads: threads) }
                case .bf16: sets = try Self.withAligned(rows, BFloat16.self) { try selector.selectBatch(rows: $0, vocab: vocab, golds: golds, threads: threads) }
                }
            } catch let error as LogitError {
                var position: Int?
                if case .invalidLogits(let row, _) = error { position = row }
                throw IngestError(status: 400, error.description, offset: offsets[s], sequence: s, position: position)
            }
            records.append(SequenceRecord(key: seq.key, tokens: seq.tokens, lossMask: seq.lossMask, selected: sets))
        }
        return records
    }

    /// Typed view of the rows; copies only when the body is not aligned for `T`.
    static func withAligned<T, R>(_ raw: UnsafeRawBufferPointer, _: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        let count = raw.count / MemoryLayout<T>.stride
        if let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<T>.alignment == 0 {
            return try body(UnsafeBufferPointer(start: base.assumingMemoryBound(to: T.self), count: count))
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: raw.count, alignment: 64)
        defer { copy.deallocate() }
        copy.copyMemory(from: raw)
        return try body(UnsafeBufferPointer(start: copy.baseAddress!.assumingMemoryBound(to: T.self), count: count))
    }

    /// Seals the open shards of datasets idle for `sealIdleSeconds`; returns the datasets whose
    /// seal failed, with why (their shards stay open and are retried when idle again).
    func sealIdle() async -> [(dataset: String, error: any Error)] {
        guard settings.sealIdleSeconds > 0 else { return [] }
        let limit = Duration.milliseconds(Int(settings.sealIdleSeconds * 1000))
        let idle = lastAppend.withLock { last in
            let now = ContinuousClock.now
            let names = last.filter { now - $0.value >= limit }.map(\.key)
            for n in names { last[n] = nil }
            return names
        }
        var failed: [(dataset: String, error: any Error)] = []
        for name in idle {
            let store = self.store
            do { try await offload { try store.seal(dataset: name) } } catch {
                metrics.sealFailures.increment()
                lastAppend.withLock { $0[name] = $0[name] ?? ContinuousClock.now }
                failed.append((name, error))
            }
        }
        return failed
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}

/// An error answered to the client: status, message, and where in the body.
public struct IngestError: Error, Sendable, Codable, CustomStringConvertible {
    public var status: Int
    public var error: String
    public var offset: Int?
    public var sequence: Int?
    public var position: Int?
    public var key: String?

    public init(status: Int, _ message: String, offset: Int? = nil, sequence: Int? = nil, position: Int? = nil, key: String? = nil) {
        self.status = status
        self.error = message
        self.offset = offset
        self.sequence = sequence
        self.position = position
        self.key = key
    }

    /// Maps store errors to HTTP: 404 unknown dataset, 409 conflicts, 507 disk full, 400 bad
    /// input, 500 anything else.
    public init(_ error: Error) {
        guard let e = error as? StoreError else {
            self.init(status: 500, "\(error)")
            return
        }
        switch e {
        case .unknownDataset: self.init(status: 404, e.description)
        case .keyConflict(_, let key): self.init(status: 409, e.description, key: key)
        case .duplicateKeyInBatch(let key, _, let second): self.init(status: 409, e.description, sequence: second, key: key)
        case .datasetConflict: self.init(status: 409, e.description)
        case .invalidDatasetName, .invalidDataset, .invalidRecord: self.init(status: 400, e.description)
        case _ where e.isOutOfSpace:
            self.init(status: 507, "insufficient storage: \(e); nothing of this request was stored")
        default: self.init(status: 500, e.description)
        }
    }

    public var description: String { "\(status): \(error)" }

}
