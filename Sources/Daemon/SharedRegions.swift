import Foundation
import LogitCore
import Catalog
import SharedMemory
import Synchronization

/// The shared-memory regions teachers on this host have registered (schema/SHARED_MEMORY.md).
/// A request holds its region's mapping while it runs, so unregistering never unmaps bytes a
/// selection is still reading.
final class SharedRegions: Sendable {
    static let maxRegions = 64
    /// Bytes all regions may map together (setting `max_shared_bytes`).
    let limit: Int
    private let regions = Mutex<[String: SharedMemoryMapping]>([:])

    init(limit: Int) { self.limit = limit }

    /// Maps `path` under `name`; the same name and path again is a no-op (a teacher retrying).
    func register(name: String, path: String) throws -> (SharedRegionInfo, created: Bool) {
        try Self.validate(name)
        // Every region must have an owner whose exit drops it: a path that names the teacher's
        // process. Anything else (a symlink, /proc/self, "..", a NUL) would stay mapped forever.
        guard let owner = SharedMemoryMapping.owner(of: path) else {
            throw IngestError(status: 400, "region path \(path.debugDescription) must be /proc/PID/fd/N: the teacher's memfd named through the teacher's own process id (so the region is dropped when it exits)")
        }
        guard owner != getpid() else {
            throw IngestError(status: 400, "region path \(path.debugDescription) names logitd's own process; name the teacher's")
        }
        // Checked again under the lock below: another request may register the name meanwhile.
        func already(_ existing: SharedMemoryMapping) throws -> (SharedRegionInfo, created: Bool) {
            guard existing.path == path else {
                throw IngestError(status: 409, "region \(name.debugDescription) is registered for \(existing.path), not \(path)")
            }
            return (Self.entry(name, existing), false)
        }
        if let existing = regions.withLock({ $0[name] }) { return try already(existing) }
        let mapping: SharedMemoryMapping
        do { mapping = try SharedMemoryMapping(path: path, maxBytes: limit - mapped) } catch {
            if case .tooLarge(_, let bytes) = error {
                // Larger than the whole bound: no retry helps. Otherwise others hold the room.
                guard bytes <= limit else {
                    throw IngestError(status: 413, "region \(name.debugDescription) of \(bytes) bytes exceeds max_shared_bytes \(limit)")
                }
                throw IngestError(status: 503, "region \(name.debugDescription): \(error) (max_shared_bytes \(limit)); unregister a region first")
            }
            throw IngestError(status: 400, "region \(name.debugDescription): \(error)")
        }
        return try regions.withLock { all in
            if let raced = all[name] { return try already(raced) }
            guard all.count < Self.maxRegions else {
                throw IngestError(status: 503, "\(Self.maxRegions) regions are registered already; unregister one first")
            }
            guard all.values.reduce(mapping.byteCount, { $0 + $1.byteCount }) <= limit else {
                throw IngestError(status: 503, "registering \(name.debugDescription) would map more than max_shared_bytes \(limit); unregister a region first")
            }
            all[name] = mapping
            return (Self.entry(name, mapping), true)
        }
    }

    func mapping(_ name: String) throws -> SharedMemoryMapping {
        guard let m = regions.withLock({ $0[name] }) else {
            throw IngestError(status: 404, "unknown shared-memory region \(name.debugDescription); register it first")
        }
        return m
    }

    func unregister(_ name: String) throws {
        guard regions.withLock({ $0.removeValue(forKey: name) }) != nil else {
            throw IngestError(status: 404, "unknown shared-memory region \(name.debugDescription)")
        }
    }

    /// Bytes mapped by the registered regions.
    var mapped: Int { regions.withLock { $0.values.reduce(0) { $0 + $1.byteCount } } }

    var list: [SharedRegionInfo] {
        regions.withLock { $0.map { Self.entry($0.key, $0.value) } }.sorted { $0.name < $1.name }
    }

    /// Unregisters the regions whose owning process has exited; returns their names.
    func dropOrphans() -> [String] {
        regions.withLock { all in
            let gone = all.filter { $0.value.ownerHasExited }.map(\.key)
            for name in gone { all[name] = nil }
            return gone.sorted()
        }
    }

    static func entry(_ name: String, _ m: SharedMemoryMapping) -> SharedRegionInfo {
        SharedRegionInfo(name: name, path: m.path, bytes: m.byteCount, owner_pid: m.ownerPID)
    }

    /// Region names follow the dataset-name rule: 1…128 of [A-Za-z0-9._-], not starting with '.'.
    static func validate(_ name: String) throws {
        guard DatasetSpec.isValidName(name) else {
            throw IngestError(status: 400, "region name \(name.debugDescription) must be 1…128 of [A-Za-z0-9._-] and not start with '.'")
        }
    }
}
