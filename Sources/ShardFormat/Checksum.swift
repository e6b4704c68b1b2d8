import CXXHash

/// XXH3-64 helpers. One seedless 64-bit hash everywhere (blocks, header, footer, whole file)
/// so a reader in another language needs a single hash function.
@usableFromInline
enum Checksum {
    static func xxh3(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    static func xxh3(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { xxh3($0) }
    }
}

/// Streaming XXH3-64 (whole-file hashes, block header + payload). Single owner.
final class StreamingXXH3 {
    private let state: OpaquePointer

    init() {
        guard let s = XXH3_createState() else { fatalError("XXH3_createState: out of memory") }
        state = s
        XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        XXH3_64bits_update(state, bytes.baseAddress, bytes.count)
    }

    func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    func digest() -> UInt64 { XXH3_64bits_digest(state) }
}
