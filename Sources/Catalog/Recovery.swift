import Foundation
import ShardFormat

/// What start-up recovery found and did, for the log and for `logitctl`.
public struct RecoveryReport: Sendable, Equatable, CustomStringConvertible {
    public struct Action: Sendable, Equatable {
        public var path: String
        public var what: String
    }
    /// Open shards cut back to their committed length and sealed.
    public var sealed: [Action] = []
    /// Bytes past the committed length that were cut off (written but never acked).
    public var truncatedBytes: UInt64 = 0
    /// Shards renamed to .lgs whose catalog row still said open (crash between rename and commit).
    public var adopted: [Action] = []
    /// Files moved to quarantine/ (no catalog row, or unreadable).
    public var quarantined: [Action] = []
    /// Catalog rows whose file is gone: their sequences cannot be read.
    public var missing: [Action] = []

    public var isClean: Bool { sealed.isEmpty && adopted.isEmpty && quarantined.isEmpty && missing.isEmpty }

    public var description: String {
        if isClean { return "recovery: clean" }
        var lines = ["recovery: sealed \(sealed.count) open shard(s), cut \(truncatedBytes) un-acked byte(s), adopted \(adopted.count), quarantined \(quarantined.count), missing \(missing.count)"]
        for a in sealed + adopted + quarantined + missing { lines.append("  \(a.path): \(a.what)") }
        return lines.joined(separator: "\n")
    }
}

/// Start-up recovery of a cache directory (docs/DESIGN.md §4.3, storage invariant 4): the catalog is the commit
/// point. Each open shard is cut back to its committed, checksum-valid prefix and sealed; files
/// with no catalog row are moved to `quarantine/`, never deleted.
struct Recovery {
    let directory: String
    let catalog: CatalogDB
    let options: ShardWriterOptions

    func run() throws(StoreError) -> RecoveryReport {
        var report = RecoveryReport()
        for shard in try catalog.shards(states: [.open]) {
            try recoverOpenShard(shard, &report)
        }
        for shard in try catalog.shards(states: [.sealed]) where !FileOps.exists(directory + "/" + shard.path) {
            report.missing.append(.init(path: shard.path, what: "sealed shard file is missing; its \(shard.coverage.sequences) sequence(s) are unreadable"))
            try catalog.markQuarantined(shardId: shard.id, path: shard.path, reason: "file missing at start-up")
        }
        try quarantineOrphans(&report)
        return report
    }

    private func recoverOpenShard(_ shard: ShardEntry, _ report: inout RecoveryReport) throws(StoreError) {
        let openPath = directory + "/" + shard.path
        let sealedRelative = CacheStore.sealedPath(for: shard.path)
        let sealedPath = directory + "/" + sealedRelative
        if FileOps.exists(openPath) {
            let before = FileOps.size(openPath) ?? 0
            do {
                let writer = try ShardWriter.resume(path: openPath, committedLength: shard.committedBytes,
                                                    options: options)
                let sealed = try writer.seal(to: sealedPath)
                try FileOps.fsyncDirectory((sealedPath as NSString).deletingLastPathComponent)
                try catalog.markSealed(shardId: shard.id, path: sealedRelative, bytes: sealed.bytes, blocks: sealed.blocks,
                                       fileHash: sealed.fileHash)
                let cut = before > shard.committedBytes ? before - shard.committedBytes : 0
                report.truncatedBytes += cut
                report.sealed.append(.init(path: shard.path, what: "cut \(cut) un-acked byte(s), sealed as \(sealedRelative)"))
            } catch let error as StoreError {
                throw error
            } catch {
                let moved = try quarantine(openPath, reason: "\(error)")
                try catalog.markQuarantined(shardId: shard.id, path: moved, reason: "recovery failed: \(error)")
                report.quarantined.append(.init(path: shard.path, what: "committed prefix unreadable (\(error)); moved to \(moved)"))
            }
        } else if FileOps.exists(sealedPath) {
            // Crashed after the rename and before the catalog said sealed: check and adopt it.
            do {
                let reader = try ShardReader(sealedAt: sealedPath)
                guard reader.blockCount >= shard.blocks else {
                    throw StoreError.corrupt("\(sealedRelative) has \(reader.blockCount) blocks, catalog committed \(shard.blocks)")
                }
                let hash = try ShardReader.fileHash(path: sealedPath)
                try catalog.markSealed(shardId: shard.id, path: sealedRelative, bytes: FileOps.size(sealedPath) ?? 0,
                                       blocks: reader.blockCount, fileHash: hash)
                report.adopted.append(.init(path: sealedRelative, what: "sealed before the last crash; catalog updated"))
            } catch {
                let moved = try quarantine(sealedPath, reason: "\(error)")
                try catalog.markQuarantined(shardId: shard.id, path: moved, reason: "recovery failed: \(error)")
                report.quarantined.append(.init(path: sealedRelative, what: "unreadable (\(error)); moved to \(moved)"))
            }
        } else {
            try catalog.markQuarantined(shardId: shard.id, path: shard.path, reason: "file missing at start-up")
            report.missing.append(.init(path: shard.path, what: "open shard file is missing; its \(shard.coverage.sequences) committed sequence(s) are unreadable"))
        }
    }

    /// Moves every file under shards/ that no catalog row names into quarantine/.
    private func quarantineOrphans(_ report: inout RecoveryReport) throws(StoreError) {
        let known = Set(try catalog.shards().map(\.path))
        for dataset in FileOps.subdirectories(of: directory + "/shards") {
            for name in FileOps.files(in: directory + "/shards/" + dataset) {
                let relative = "shards/" + dataset + "/" + name
                guard !known.contains(relative) else { continue }
                let moved = try quarantine(directory + "/" + relative, reason: "no catalog row")
                report.quarantined.append(.init(path: relative, what: "no catalog row; moved to \(moved)"))
            }
        }
    }

    private func quarantine(_ path: String, reason: String) throws(StoreError) -> String {
        try Quarantine(directory: directory, catalog: catalog).move(path, reason: reason)
    }
}

/// Moving files aside instead of deleting them: a human decides what happens to them.
struct Quarantine {
    let directory: String
    let catalog: CatalogDB

    /// Moves a file into quarantine/ under a unique name, records it, returns the new relative path.
    func move(_ path: String, reason: String) throws(StoreError) -> String {
        try FileOps.makeDirectory(directory + "/quarantine")
        let name = (path as NSString).lastPathComponent
        var relative = "quarantine/" + name
        var n = 1
        while FileOps.exists(directory + "/" + relative) {
            relative = "quarantine/\(name).\(n)"
            n += 1
        }
        let original = path.hasPrefix(directory + "/") ? String(path.dropFirst(directory.count + 1)) : path
        try FileOps.rename(path, directory + "/" + relative)
        try FileOps.fsyncDirectory(directory + "/quarantine")
        try FileOps.fsyncDirectory((path as NSString).deletingLastPathComponent)
        try catalog.recordQuarantine(originalPath: original, movedTo: relative, reason: reason)
        return relative
    }
}
