import Catalog
import Foundation
import LogitCore
import XCTest
@testable import ShardFormat
@testable import Daemon

/// A full disk is recognised by errno kept through the layers (shard write → store error →
/// HTTP 507), not by the wording of a message. /dev/full fails every write with ENOSPC, so no
/// root or tmpfs is needed (DiskFullTests covers the whole daemon on a real full filesystem).
final class OutOfSpaceErrnoTests: XCTestCase {
    func testENOSPCFromAShardWriteBecomes507() throws {
        let fd = open("/dev/full", O_WRONLY)
        try XCTSkipIf(fd < 0, "/dev/full is not available")
        defer { close(fd) }
        var shardError: ShardError?
        do { try writeAll(fd, [1, 2, 3], at: 0, path: "/dev/full") } catch { shardError = error }
        let e = try XCTUnwrap(shardError, "a write to /dev/full succeeded")
        XCTAssertEqual(e.errno, ENOSPC)
        XCTAssertTrue(e.description.contains("No space left on device (errno \(ENOSPC))"), e.description)
        let store = StoreError(io: e)
        XCTAssertTrue(store.isOutOfSpace)
        XCTAssertEqual(IngestError(store).status, 507)
    }

    func testOtherErrorsAreNotOutOfSpaceWhateverTheirText() {
        // The text that the old rule matched on, without the code: not 507.
        XCTAssertEqual(IngestError(StoreError.io("No space left on device")).status, 500)
        XCTAssertEqual(IngestError(StoreError.io("opening x", errno: EACCES)).status, 500)
        XCTAssertEqual(IngestError(StoreError.io("writing x", errno: EDQUOT)).status, 507)
        XCTAssertEqual(IngestError(StoreError.catalog("database or disk is full", resultCode: 13)).status, 507)
        XCTAssertEqual(IngestError(StoreError(io: SystemError("fsync of /x", code: ENOSPC))).status, 507)
    }
}
