import CCatalogVFS
import Foundation
import LogitCore
#if canImport(Glibc)
import Glibc
#endif

/// The catalog file's own format, beneath the SQL schema (schema/CATALOG_FILE.md): an SQLite 3
/// database with 8 reserved bytes at the end of every page holding a checksum of the page, kept
/// by the `logit-catalog` VFS shim (Sources/CCatalogVFS), and application_id "LGC2" (format 2).
/// Format 1 (no page checksums) is refused: there are no users yet, so no migration.
enum CatalogFileFormat {
    static let applicationId = UInt32(LOGIT_CATALOG_APPLICATION_ID)
    static let reserveBytes = Int(LOGIT_CATALOG_RESERVE)
    /// SQLite never uses the page holding this offset (its lock byte), so it is never written.
    static let lockByteOffset: UInt64 = 0x4000_0000

    struct Header {
        var pageSize: Int
        /// The page count recorded in the header, when the header says it is current.
        var recordedPages: Int?
    }

    /// Registers the checksumming VFS as the process's default (idempotent). Every SQLite
    /// connection of the process goes through it; files that are not format-2 catalogs pass
    /// straight through.
    static func registerVFS() throws(StoreError) {
        let rc = logit_catalog_vfs_register()
        guard rc == 0 else { throw .catalog("registering the \(LOGIT_CATALOG_VFS_NAME) SQLite VFS failed (SQLite code \(rc))") }
    }

    /// Creates an empty format-2 catalog at `path` atomically (built beside it, then renamed), so
    /// a crash never leaves a half-made catalog that later opens would refuse.
    static func create(at path: String) throws(StoreError) {
        try registerVFS()
        let staging = path + ".creating"
        unlink(staging)
        var message = [CChar](repeating: 0, count: 512)
        let rc = logit_catalog_create(staging, &message, message.count)
        guard rc == 0 else {
            unlink(staging)
            throw .catalog(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        let file = open(staging, O_RDONLY)
        if file >= 0 { _ = fsync(file); close(file) }
        try FileOps.rename(staging, path)
        try FileOps.fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Reads and checks the 100-byte database header. Throws `.corrupt` naming the file and what
    /// is wrong (an older format gets its own message).
    static func readHeader(path: String) throws(StoreError) -> Header {
        let name = (path as NSString).lastPathComponent
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw StoreError(io: SystemError("opening \(path)")) }
        defer { close(fd) }
        var h = [UInt8](repeating: 0, count: 100)
        let got = h.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 100, 0) }
        guard got == 100 else {
            throw .corrupt("\(name): \(max(got, 0)) bytes where a 100-byte SQLite header was expected (truncated or not a catalog)")
        }
        switch parseHeader(h) {
        case .success(let header): return header
        case .failure(let problem): throw .corrupt("\(name): \(problem.text)")
        }
    }

    struct HeaderProblem: Error { var text: String }

    /// Checks a header's magic, format marks and page size; the problem text leaves out the file name.
    static func parseHeader(_ h: [UInt8]) -> Result<Header, HeaderProblem> {
        guard h.count >= 100, h.starts(with: Array("SQLite format 3\0".utf8)) else {
            return .failure(HeaderProblem(text: "no SQLite header (the first 16 bytes are not \"SQLite format 3\"): not a logitd catalog, or damaged"))
        }
        let appId = be32(h, 68)
        let reserve = Int(h[20])
        if appId == 0 && reserve == 0 {
            return .failure(HeaderProblem(text: "a format-1 catalog (no page checksums) written by an older logitd; this logitd only opens format 2 and does not migrate: re-create the cache"))
        }
        guard appId == applicationId, reserve == reserveBytes else {
            return .failure(HeaderProblem(text: "header has application_id 0x\(String(appId, radix: 16)) and \(reserve) reserved bytes per page, expected 0x\(String(applicationId, radix: 16)) (\"LGC2\") and \(reserveBytes): not a format-2 logitd catalog, or a damaged header"))
        }
        var pageSize = Int(h[16]) << 8 | Int(h[17])
        if pageSize == 1 { pageSize = 65536 }
        guard pageSize >= 512, pageSize & (pageSize - 1) == 0 else {
            return .failure(HeaderProblem(text: "header gives page size \(pageSize), not a power of two in 512…65536 (damaged header)"))
        }
        let current = be32(h, 24) == be32(h, 92)
        return .success(Header(pageSize: pageSize, recordedPages: current ? Int(be32(h, 28)) : nil))
    }

    /// The last page-checksum failure the VFS saw ("catalog.sqlite page 7 …"), for error messages:
    /// SQLite itself only reports "disk I/O error".
    static func lastChecksumFailure() -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        let count = logit_catalog_last_failure(&buffer, buffer.count)
        guard count > 0 else { return "page checksum failure (no detail recorded)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func be32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    static func be32(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
}
