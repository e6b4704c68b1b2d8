/// The 64-bit checksum closing an optimizer state file (schema/OPTIM_STATE.md).
///
/// Four independent 64-bit lanes over 32-byte stripes, so it runs at several GB/s without
/// any library (the Optim target has no dependencies). Each lane step is a bijection of the lane
/// for a fixed word and of the word for a fixed lane, so any change confined to one 8-byte word
/// is always detected; it detects storage corruption, it does not resist forgery.
enum StateChecksum {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9

    @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always)
    static func mix(_ lane: UInt64, _ word: UInt64) -> UInt64 { rotl(lane ^ (word &* p2), 31) &* p1 }

    static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var l0 = p3, l1 = p3 &+ p1, l2 = p3 &+ 2 &* p1, l3 = p3 &+ 3 &* p1
        let n = bytes.count
        var i = 0
        while i + 32 <= n {
            l0 = mix(l0, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            l1 = mix(l1, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
            l2 = mix(l2, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
            l3 = mix(l3, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
            i += 32
        }
        if i < n {
            // Final partial stripe, zero-padded to 32 bytes (the length term below tells the padding apart).
            var stripe = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &stripe) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[i..<n]))
            }
            l0 = mix(l0, UInt64(littleEndian: stripe.0))
            l1 = mix(l1, UInt64(littleEndian: stripe.1))
            l2 = mix(l2, UInt64(littleEndian: stripe.2))
            l3 = mix(l3, UInt64(littleEndian: stripe.3))
        }
        var h = UInt64(n) &* p3
        for lane in [l0, l1, l2, l3] { h = (h ^ rotl(lane &* p2, 27)) &* p1 }
        h ^= h >> 33; h &*= p2
        h ^= h >> 29; h &*= p3
        h ^= h >> 32
        return h
    }
}
