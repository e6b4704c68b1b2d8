import CCatalogVFS
import Foundation
import LogitCore
#if canImport(Glibc)
import Glibc
#endif

/// The catalog files checked byte for byte, below SQLite (schema/CATALOG_FILE.md).
///
/// SQLite's integrity_check only looks at bytes SQLite uses, so damage in a free page, in the
/// unused space of a b-tree page or in a WAL frame superseded by a later one goes unseen — and a
/// damaged WAL frame makes SQLite's recovery silently drop it *and every committed frame after
/// it*. Here every page of `catalog.sqlite` is checked against the checksum in its reserved
/// bytes, and every frame of `catalog.sqlite-wal` against both its page checksum and the WAL's
/// own cumulative frame checksum.
public struct CatalogFileAudit: Sendable {
    public var problems: [CacheVerifier.Problem] = []
    public var pagesChecked = 0
    public var framesChecked = 0
    /// Set when SQLite's WAL recovery would silently drop committed transactions (what and where).
    public var walLoss: String?

    /// Lists at most this many damaged pages or frames per file, then a count of the rest.
    static let listLimit = 20

    /// Audits `catalogPath` and, when present, its `-wal` file. Reads the files directly; SQLite
    /// is not involved, so a file SQLite would refuse to open is still reported on in detail.
    public static func run(catalogPath: String) -> CatalogFileAudit {
        var audit = CatalogFileAudit()
        guard let pageSize = audit.auditDatabase(path: catalogPath) else { return audit }
        audit.auditWAL(path: catalogPath + "-wal", pageSize: pageSize)
        return audit
    }

    /// Audits only the WAL: what opening the catalog checks first, so that SQLite never silently
    /// drops committed frames behind a damaged one.
    static func wal(path: String, pageSize: Int) -> CatalogFileAudit {
        var audit = CatalogFileAudit()
        audit.auditWAL(path: path, pageSize: pageSize)
        return audit
    }

    private mutating func problem(_ path: String, _ message: String) {
        problems.append(CacheVerifier.Problem(path: (path as NSString).lastPathComponent, block: nil, message: message))
    }

    /// Checks the header, the size and every page's checksum. Returns the page size, or nil when
    /// the header is unusable.
    private mutating func auditDatabase(path: String) -> Int? {
        guard let measured = FileOps.size(path) else { problem(path, "file is missing"); return nil }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { problem(path, "cannot be opened: \(SystemError.message(errno))"); return nil }
        defer { close(fd) }
        var headerBytes = [UInt8](repeating: 0, count: 100)
        let got = headerBytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 100, 0) }
        guard got == 100 else { problem(path, "\(measured) bytes, shorter than the 100-byte SQLite header (truncated)"); return nil }
        let header: CatalogFileFormat.Header
        switch CatalogFileFormat.parseHeader(headerBytes) {
        case .success(let h): header = h
        case .failure(let p): problem(path, p.text); return nil
        }
        let ps = header.pageSize
        var size = measured
        // A checkpoint beside a live writer writes page 1 (the page count) before the pages that
        // extend the file: a file shorter than its header says is re-measured before it is damage.
        if let recorded = header.recordedPages, size < UInt64(recorded) * UInt64(ps) {
            size = Self.settledSize(path: path, atLeast: UInt64(recorded) * UInt64(ps)) ?? size
        }
        let full = Int(size / UInt64(ps))
        if size % UInt64(ps) != 0 {
            problem(path, "\(size) bytes is not a whole number of \(ps)-byte pages: the last \(size % UInt64(ps)) bytes are a partial page (truncated or extended)")
        }
        if let recorded = header.recordedPages, full < recorded {
            problem(path, "the header records \(recorded) pages, the file holds \(full): truncated")
        }
        let chunkPages = max(1, (1 << 20) / ps)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkPages * ps, alignment: 64)
        defer { buffer.deallocate() }
        var bad = 0
        var first = 0
        while first < full {
            let n = min(chunkPages, full - first)
            let read = pread(fd, buffer.baseAddress, n * ps, off_t(first * ps))
            guard read == n * ps else {
                problem(path, "reading pages \(first + 1)…\(first + n) failed: \(read < 0 ? SystemError.message(errno) : "short read")")
                return ps
            }
            for i in 0..<n {
                let offset = UInt64(first + i) * UInt64(ps)
                if offset <= CatalogFileFormat.lockByteOffset && CatalogFileFormat.lockByteOffset < offset + UInt64(ps) { continue }
                pagesChecked += 1
                let page = buffer.baseAddress!.advanced(by: i * ps).assumingMemoryBound(to: UInt8.self)
                if logit_catalog_page_checksum_ok(page, ps) == 0 && !Self.settlesClean(fd: fd, offset: offset, pageSize: ps) {
                    bad += 1
                    if bad <= Self.listLimit {
                        problem(path, "page \(first + i + 1) (byte offset \(offset)): page checksum mismatch, the page is not what was written")
                    }
                }
            }
            first += n
        }
        if bad > Self.listLimit { problem(path, "\(bad - Self.listLimit) more damaged pages not listed") }
        return ps
    }

    /// Re-reads a page that failed its check: a page being written while it was read (a
    /// checkpoint beside a live writer) can be seen half old, half new. Damage stays.
    private static func settlesClean(fd: Int32, offset: UInt64, pageSize ps: Int) -> Bool {
        var page = [UInt8](repeating: 0, count: ps)
        for _ in 0..<3 {
            usleep(10_000)
            let read = page.withUnsafeMutableBytes { pread(fd, $0.baseAddress, ps, off_t(offset)) }
            if read == ps && logit_catalog_page_checksum_ok(page, ps) != 0 { return true }
        }
        return false
    }

    /// The file's size once it reaches `bytes` within a few re-reads (a checkpoint still writing),
    /// or nil when it stays shorter. Damage stays.
    private static func settledSize(path: String, atLeast bytes: UInt64) -> UInt64? {
        for _ in 0..<3 {
            usleep(10_000)
            if let size = FileOps.size(path), size >= bytes { return size }
        }
        return nil
    }

    /// One frame as found in the WAL file.
    private struct Frame {
        var page: UInt32
        var commit: Bool
        var currentSalts: Bool
        /// Its cumulative checksum follows from the previous frame's *stored* checksum.
        var chainOK: Bool
        var pageOK: Bool
    }

    /// Audits the WAL; findings are confirmed by re-reading until two reads agree, because a WAL
    /// read while a writer appends (or restarts it after a checkpoint) is not a consistent
    /// snapshot. Damage reads the same every time; a race does not.
    private mutating func auditWAL(path: String, pageSize ps: Int) {
        var previous: CatalogFileAudit?
        for attempt in 0..<6 {
            if attempt > 0 { usleep(20_000) }
            var one = CatalogFileAudit()
            one.auditWALOnce(path: path, pageSize: ps)
            if one.problems.isEmpty || (one.problems == previous?.problems && one.walLoss == previous?.walLoss) {
                previous = one
                break
            }
            previous = one
        }
        guard let result = previous else { return }
        problems += result.problems
        framesChecked += result.framesChecked
        walLoss = result.walLoss
    }

    private mutating func auditWALOnce(path: String, pageSize ps: Int) {
        guard FileOps.exists(path) else { return }
        guard let data = FileManager.default.contents(atPath: path) else { problem(path, "cannot be read"); return }
        if data.isEmpty { return }
        guard data.count >= 32 else { problem(path, "\(data.count) bytes, shorter than the 32-byte WAL header (truncated)"); return }
        data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            let be32 = { (at: Int) in CatalogFileFormat.be32(b, at) }
            let magic = be32(0)
            guard magic & ~1 == 0x377f_0682 else {
                problem(path, "WAL magic 0x\(String(magic, radix: 16)), expected 0x377f0682/3: SQLite ignores the whole WAL")
                return
            }
            let bigEndian: Int32 = Int32(magic & 1)
            let base = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
            func checksum(_ seed: (UInt32, UInt32), _ ranges: [(Int, Int)]) -> (UInt32, UInt32) {
                var s: [UInt32] = [seed.0, seed.1]
                for (at, count) in ranges { logit_catalog_wal_checksum(bigEndian, base + at, count, &s) }
                return (s[0], s[1])
            }
            if be32(4) != 3_007_000 { problem(path, "WAL format version \(be32(4)), expected 3007000") }
            guard Int(be32(8)) == ps else {
                problem(path, "WAL page size \(be32(8)) differs from the catalog's \(ps): SQLite ignores every frame")
                return
            }
            let headerStored = (be32(24), be32(28))
            let headerOK = checksum((0, 0), [(0, 24)]) == headerStored
            if !headerOK { problem(path, "WAL header checksum mismatch: SQLite ignores every frame of this WAL") }
            let salts = (be32(16), be32(20))
            let frameSize = ps + 24
            let count = (data.count - 32) / frameSize
            var frames: [Frame] = []
            frames.reserveCapacity(count)
            var sqliteEnd: Int? = headerOK ? nil : 0   // first frame SQLite's recovery rejects
            for k in 0..<count {
                let at = 32 + k * frameSize
                let previous = k == 0 ? headerStored : (be32(at - frameSize + 16), be32(at - frameSize + 20))
                let frame = Frame(
                    page: be32(at), commit: be32(at + 4) != 0,
                    currentSalts: be32(at + 8) == salts.0 && be32(at + 12) == salts.1,
                    chainOK: checksum(previous, [(at, 8), (at + 24, ps)]) == (be32(at + 16), be32(at + 20)),
                    pageOK: logit_catalog_page_checksum_ok(base + at + 24, ps) != 0)
                if sqliteEnd == nil && !(frame.currentSalts && frame.chainOK) { sqliteEnd = k }
                frames.append(frame)
            }
            framesChecked += count
            let end = sqliteEnd ?? count
            let lastCommit = frames.indices.last { frames[$0].currentSalts && frames[$0].chainOK && frames[$0].commit }
            if let lastCommit, lastCommit >= end {
                let what = end < count
                    ? "frame \(end + 1) (page \(frames[end].page), byte offset \(32 + end * frameSize)) is damaged"
                    : "the WAL header is damaged"
                let loss = "\(what): SQLite's recovery would silently drop it and the committed frames after it, through frame \(lastCommit + 1)"
                walLoss = "\((path as NSString).lastPathComponent): \(loss)"
                problem(path, loss)
            }
            var bad = 0
            for (k, f) in frames.enumerated() {
                // Frames of this WAL generation after its last commit were never acknowledged:
                // a writer killed mid-transaction leaves them torn (the shim writes a frame's page
                // before its header), SQLite's recovery ignores them, and so does the audit.
                // Damage there cannot lose data; damage before it is always reported.
                if f.currentSalts && (lastCommit.map { k > $0 } ?? true) { continue }
                var issues: [String] = []
                if f.currentSalts && !f.chainOK { issues.append("frame checksum mismatch") }
                if !f.pageOK { issues.append("page checksum mismatch" + (f.currentSalts ? "" : " (a stale frame of an earlier WAL generation)")) }
                guard !issues.isEmpty else { continue }
                bad += 1
                if bad <= Self.listLimit {
                    problem(path, "frame \(k + 1) (page \(f.page), byte offset \(32 + k * frameSize)): \(issues.joined(separator: "; "))")
                }
            }
            if bad > Self.listLimit { problem(path, "\(bad - Self.listLimit) more damaged frames not listed") }
        }
    }
}
