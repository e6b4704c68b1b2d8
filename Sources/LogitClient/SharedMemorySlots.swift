import Foundation
import SharedMemory

/// Sends wire bodies to a `logitd` on this host through shared memory instead of the socket:
/// `slotCount` slots of `slotBytes` in one sealed memfd, registered once. A logits body is
/// written once, into its slot, and the daemon selects from it there; through a socket the
/// same bytes would be copied into the kernel, out again, and into a buffer.
///
/// A slot is the caller's while its `append` runs: give each concurrent sender its own slot.
public final class SharedMemorySlots: Sendable {
    public let client: LogitClient
    public let region: SharedMemoryRegion
    public let name: String
    public let slotBytes: Int
    public let slotCount: Int

    /// Creates and registers the region. Slots start at multiples of 64 bytes.
    public init(client: LogitClient, name: String, slotBytes: Int, slotCount: Int = 1) async throws {
        guard slotBytes >= 1, slotCount >= 1 else {
            throw LogitClientError(status: nil, message: "shared-memory slots need slotBytes ≥ 1 and slotCount ≥ 1")
        }
        let stride = (slotBytes + 63) / 64 * 64
        self.client = client
        self.name = name
        self.slotBytes = stride
        self.slotCount = slotCount
        region = try SharedMemoryRegion(byteCount: stride * slotCount, name: "logitd-\(name)")
        try await client.registerRegion(name: name, region: region)
    }

    /// The bytes of `slot`, to build a body in place.
    public func slot(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0 && slot < slotCount, "slot \(slot) outside 0..<\(slotCount)")
        return UnsafeMutableRawBufferPointer(rebasing: region.bytes[slot * slotBytes..<(slot + 1) * slotBytes])
    }

    /// Sends the first `length` bytes of `slot`, a body built there.
    public func append(dataset: String, slot: Int, length: Int) async throws -> LogitClient.AppendResponse {
        guard slot >= 0, slot < slotCount, length >= 0, length <= slotBytes else {
            throw LogitClientError(status: nil, message: "a \(length)-byte body in slot \(slot) does not fit \(slotCount) slot(s) of \(slotBytes) bytes")
        }
        return try await client.appendShared(dataset: dataset, region: name, offset: slot * slotBytes, length: length)
    }

    /// Copies `body` into `slot` and sends it.
    public func append(dataset: String, body: [UInt8], slot: Int) async throws -> LogitClient.AppendResponse {
        guard body.count <= slotBytes, slot >= 0, slot < slotCount else {
            throw LogitClientError(status: nil, message: "a \(body.count)-byte body in slot \(slot) does not fit \(slotCount) slot(s) of \(slotBytes) bytes")
        }
        body.withUnsafeBytes { self.slot(slot).copyMemory(from: $0) }
        return try await append(dataset: dataset, slot: slot, length: body.count)
    }

    /// Unregisters the region (the daemon also drops it once this process exits).
    public func close() async throws {
        try await client.unregisterRegion(name: name)
    }
}
