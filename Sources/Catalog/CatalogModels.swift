import Foundation
import LogitCore
import ShardFormat

/// Whether a dataset may be created: the shard's limits, and names and strings safe to use as
/// directory names and in logs.
extension DatasetSpec {
    public func validate() throws(StoreError) {
        try DatasetSpec.validateName(name)
        if let why = provenance.invalidity() { throw .invalidDataset(why) }
        // Beyond what a shard can hold: these strings reach logs and HTTP answers.
        for (field, value) in [("teacher_id", teacherId), ("tokenizer_id", tokenizerId), ("tokenizer_hash", tokenizerHash)]
        where value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw .invalidDataset("\(field) must not contain control characters")
        }
    }

    /// `isValidName`, as the store's error.
    public static func validateName(_ name: String) throws(StoreError) {
        guard isValidName(name) else {
            throw .invalidDatasetName("dataset name \(name.debugDescription) must be 1…128 of [A-Za-z0-9._-] and not start with '.'")
        }
    }
}

/// A dataset as stored in the catalog.
public struct DatasetInfo: Sendable, Equatable {
    public var id: Int64
    public var spec: DatasetSpec
    public var createdAt: String
}

public enum ShardState: String, Sendable, Codable {
    case open, sealed, quarantined
}

/// A shard row: where the file is, how much of it is committed, and its coverage aggregates.
public struct ShardEntry: Sendable, Equatable {
    public var id: Int64
    public var datasetId: Int64
    public var uuid: UUID
    public var generation: Int
    /// Relative to the cache directory.
    public var path: String
    public var state: ShardState
    public var committedBytes: UInt64
    public var blocks: Int
    public var fileHash: UInt64?
    public var coverage: CoverageStats
    public var quarantineReason: String?
    public var createdAt: String
    public var sealedAt: String?
}

/// A sequence row: its location and its own coverage sums.
public struct SequenceEntry: Sendable, Equatable {
    public var datasetId: Int64
    public var key: String
    public var shardId: Int64
    public var block: Int
    public var ordinal: Int
    public var positions: Int
    public var candidates: Int
    public var goldForced: Int
    public var coveredMassSum: Double
    public var contentHash: UInt64
}

/// Errors of the catalog and the store. Messages say what, where and what was expected.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidDatasetName(String)
    case invalidDataset(String)
    case datasetConflict(name: String, differences: [String])
    case unknownDataset(String)
    /// A record in a batch broke the data model; `index` is its position in the batch.
    case invalidRecord(index: Int, reason: String)
    /// The key exists (or appears earlier in the batch) with different content.
    case keyConflict(dataset: String, key: String)
    case duplicateKeyInBatch(key: String, first: Int, second: Int)
    case locked(String)
    /// A file operation failed; `errno` when a system call said why.
    case io(String, errno: Int32? = nil)
    /// SQLite failed; `resultCode` is its primary result code (SQLITE_FULL = 13: disk full).
    case catalog(String, resultCode: Int32? = nil)
    case corrupt(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .invalidDatasetName(let m), .invalidDataset(let m): return m
        case .datasetConflict(let name, let diffs):
            return "dataset '\(name)' exists with different provenance: \(diffs.joined(separator: "; "))"
        case .unknownDataset(let name): return "unknown dataset '\(name)'"
        case .invalidRecord(let index, let reason): return "sequence \(index) of the batch: \(reason)"
        case .keyConflict(let dataset, let key):
            return "key '\(key)' already exists in dataset '\(dataset)' with different content"
        case .duplicateKeyInBatch(let key, let first, let second):
            return "key '\(key)' appears twice in the batch with different content (sequences \(first) and \(second))"
        case .locked(let m): return m
        case .io(let m, _): return "I/O error: \(m)"
        case .catalog(let m, _): return "catalog error: \(m)"
        case .corrupt(let m): return "corrupt cache: \(m)"
        case .notFound(let m): return m
        }
    }
}

extension StoreError {
    /// A lower layer's failure as a store error, keeping its errno (the daemon answers 507 on it).
    public init(io cause: any Error) {
        switch cause {
        case let e as StoreError: self = e
        case let e as ShardError: self = .io(e.description, errno: e.errno)
        case let e as SystemError: self = .io(e.description, errno: e.code)
        default: self = .io("\(cause)")
        }
    }

    /// The disk or quota is full: a condition the client can wait out, not a fault of ours.
    public var isOutOfSpace: Bool {
        switch self {
        case .io(_, let code?): return SystemError.isOutOfSpace(code)
        case .catalog(_, let code?): return code == 13  // SQLITE_FULL
        default: return false
        }
    }
}
