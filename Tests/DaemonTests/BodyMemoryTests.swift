@testable import Daemon
import NIOCore
import XCTest

final class BodyMemoryTests: XCTestCase {
    func testIdleBodyBuffersAreReusedAndGiveWayToBodiesInFlight() throws {
        let memory = BodyMemory(limit: 10 << 20)
        let storage: UInt
        do {
            var a = try XCTUnwrap(memory.acquire(4 << 20, capacity: 4 << 20))
            a.writeBytes([1, 2, 3])
            storage = a.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
            memory.release(4 << 20, buffer: a)
        }
        XCTAssertEqual(memory.inFlight, 0)

        // The next body of at most that size gets the same memory back, emptied.
        do {
            var b = try XCTUnwrap(memory.acquire(3 << 20, capacity: 3 << 20))
            XCTAssertEqual(b.readableBytes, 0)
            XCTAssertGreaterThanOrEqual(b.capacity, 4 << 20)
            b.writeBytes([9])
            XCTAssertEqual(b.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }, storage, "the buffer was not reused")
            memory.release(3 << 20, buffer: b)
        }

        // 9 MiB in flight fits only by dropping the idle 4 MiB: idle buffers never cause a 503.
        let c = memory.acquire(9 << 20, capacity: 64)
        XCTAssertNotNil(c)
        XCTAssertNil(memory.acquire(2 << 20, capacity: 64), "10 MiB is the bound")
        XCTAssertEqual(memory.inFlight, 9 << 20)
        XCTAssertEqual(memory.requests, 1)
    }

    /// A body grows its charge as bytes arrive; what does not fit is refused without changing
    /// the charge, and `fits` reserves nothing.
    func testChargesGrowWithArrivedBytes() throws {
        let memory = BodyMemory(limit: 1000)
        XCTAssertTrue(memory.fits(1000))
        XCTAssertFalse(memory.fits(1001))
        let buffer = try XCTUnwrap(memory.acquire(100, capacity: 1000))
        XCTAssertEqual(memory.inFlight, 100)
        XCTAssertTrue(memory.grow(800))
        XCTAssertFalse(memory.grow(101), "past the bound")
        XCTAssertEqual(memory.inFlight, 900)
        XCTAssertTrue(memory.fits(100))
        XCTAssertEqual(memory.inFlight, 900, "fits reserved something")
        memory.release(900, buffer: buffer)
        XCTAssertEqual(memory.inFlight, 0)
        XCTAssertEqual(memory.requests, 0)
    }
}
