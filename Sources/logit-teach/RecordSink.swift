import Catalog
import Foundation
import LogitClient
import LogitCore
import SharedMemory
import WireFormat

/// Where a teacher's sequences go: straight into a cache directory (one machine, no daemon), or
/// to `logitd` over HTTP (the normal set-up: teachers elsewhere, one daemon). Both are
/// idempotent per key, so a re-run after a crash resends nothing twice.
enum RecordSink {
    case cache(CacheStore)
    /// `shared`: logits bodies go through a shared-memory slot (logitd on this host).
    case daemon(LogitClient, shared: SharedLogitsSender?)

    func createDataset(_ spec: DatasetSpec) async throws {
        switch self {
        case .cache(let store): _ = try store.createDataset(spec)
        case .daemon(let client, _): try await client.createDataset(spec)
        }
    }

    /// The keys already stored (their windows are skipped before any model work).
    func present(dataset: String, keys: [String]) async throws -> Set<String> {
        switch self {
        case .cache(let store):
            let info = try store.dataset(named: dataset)
            var found = Set<String>()
            for start in stride(from: 0, to: keys.count, by: 1000) {
                let chunk = Array(keys[start..<min(start + 1000, keys.count)])
                found.formUnion(try store.catalog.contentHashes(datasetId: info.id, keys: chunk).keys)
            }
            return found
        case .daemon(let client, _):
            return try await client.presentKeys(dataset: dataset, keys: keys)
        }
    }

    /// Sets mode: durable when this returns.
    func append(dataset: String, vocabSize: Int, records: [SequenceRecord]) async throws {
        switch self {
        case .cache(let store): _ = try store.appendDurably(dataset: dataset, records: records)
        case .daemon(let client, _): _ = try await client.append(dataset: dataset, vocabSize: vocabSize, records: records)
        }
    }

    /// Logits mode: the daemon selects with the dataset's policy.
    func appendLogits(dataset: String, body: [UInt8]) async throws {
        switch self {
        case .cache: throw ValidationErrorMessage("--mode logits sends full rows to logitd; it needs --daemon")
        case .daemon(_, let shared?): try await shared.append(dataset: dataset, body: body)
        case .daemon(let client, nil): _ = try await client.append(dataset: dataset, body: body)
        }
    }

    func seal(dataset: String) async throws {
        switch self {
        case .cache(let store): try store.seal(dataset: dataset)
        case .daemon(let client, let shared):
            try await shared?.close()
            try await client.seal(dataset: dataset)
        }
    }
}

/// Sends logits bodies through one shared-memory slot (schema/SHARED_MEMORY.md): the rows are
/// written once, into memory the daemon maps, instead of crossing a socket. The slot is made
/// on the first body and remade larger if a later body does not fit.
actor SharedLogitsSender {
    let client: LogitClient
    private var slots: SharedMemorySlots?

    init(client: LogitClient) { self.client = client }

    func append(dataset: String, body: [UInt8]) async throws {
        if let current = slots, body.count > current.slotBytes {
            try await current.close()
            slots = nil
        }
        let slots: SharedMemorySlots
        if let current = self.slots {
            slots = current
        } else {
            slots = try await SharedMemorySlots(client: client, name: "logit-teach-\(getpid())", slotBytes: body.count)
            self.slots = slots
        }
        _ = try await slots.append(dataset: dataset, body: body, slot: 0)
    }

    func close() async throws {
        try await slots?.close()
        slots = nil
    }
}

struct ValidationErrorMessage: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
