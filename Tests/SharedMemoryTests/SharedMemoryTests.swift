import Foundation
import SharedMemory
import XCTest

final class SharedMemoryTests: XCTestCase {
    func testAMappingSeesTheRegionsBytesAsTheyAreWritten() throws {
        let region = try SharedMemoryRegion(byteCount: 10_000)
        let mapping = try SharedMemoryMapping(path: region.path)
        XCTAssertEqual(mapping.byteCount, 10_000)
        XCTAssertEqual(mapping.ownerPID, getpid())
        XCTAssertFalse(mapping.ownerHasExited)
        region.bytes[9_999] = 42
        XCTAssertEqual(try mapping.bytes(offset: 9_990, length: 10).last, 42, "the mapping is shared, not a copy")
        // Written after mapping: still seen.
        region.bytes[0] = 7
        XCTAssertEqual(try mapping.bytes(offset: 0, length: 1).first, 7)
    }

    func testReadsOutsideTheRegionAreRefusedWithTheRange() throws {
        let region = try SharedMemoryRegion(byteCount: 100)
        let mapping = try SharedMemoryMapping(path: region.path)
        XCTAssertEqual(try mapping.bytes(offset: 100, length: 0).count, 0)
        for (offset, length) in [(90, 11), (-1, 1), (0, -1), (101, 0), (Int.max, 1), (1, Int.max)] {
            XCTAssertThrowsError(try mapping.bytes(offset: offset, length: length)) { error in
                XCTAssertTrue("\(error)".contains("outside the region's 100 bytes"), "\(error)")
            }
        }
    }

    func testTheRegionsSizeIsSealed() throws {
        let region = try SharedMemoryRegion(byteCount: 8192)
        let fd = open(region.path, O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(ftruncate(fd, 4096), -1, "a sealed region must not shrink")
        XCTAssertEqual(errno, EPERM)
        XCTAssertEqual(ftruncate(fd, 16384), -1, "nor grow")
    }

    func testWhatIsNotASealedMemfdIsRefused() throws {
        XCTAssertThrowsError(try SharedMemoryRegion(byteCount: 0))
        let dir = FileManager.default.temporaryDirectory.path + "/shm-tests-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/file", contents: Data(count: 100))
        XCTAssertThrowsError(try SharedMemoryMapping(path: dir + "/file")) { XCTAssertTrue("\($0)".contains(dir + "/file"), "\($0)") }
        XCTAssertThrowsError(try SharedMemoryMapping(path: dir)) { XCTAssertTrue("\($0)".contains("not a shared-memory file"), "\($0)") }
        XCTAssertThrowsError(try SharedMemoryMapping(path: dir + "/absent")) { XCTAssertTrue("\($0)".contains("No such file"), "\($0)") }
    }
}
