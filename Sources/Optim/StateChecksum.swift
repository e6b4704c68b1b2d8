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
        var stream = Stream()
        stream.update(bytes)
        return stream.finish()
    }

    /// The same checksum fed in pieces, so a state of any size is written without holding it
    /// whole: stripes are mixed as they complete, a partial one is carried to the next piece.
    struct Stream {
        var l0 = p3, l1 = p3 &+ p1, l2 = p3 &+ 2 &* p1, l3 = p3 &+ 3 &* p1
        var length = 0
        var carry = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var carried = 0

        @inline(__always)
        mutating func mixStripe(_ bytes: UnsafeRawPointer) {
            l0 = mix(l0, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
            l1 = mix(l1, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            l2 = mix(l2, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            l3 = mix(l3, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
        }

        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            let n = bytes.count
            guard n > 0 else { return }
            length += n
            var i = 0
            if carried > 0 {
                let take = min(32 - carried, n)
                withUnsafeMutableBytes(of: &carry) { dst in
                    UnsafeMutableRawBufferPointer(rebasing: dst[carried..<(carried + take)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
                }
                carried += take
                i = take
                guard carried == 32 else { return }
                var stripe = carry
                withUnsafeBytes(of: &stripe) { mixStripe($0.baseAddress!) }
                carried = 0
            }
            let base = bytes.baseAddress!
            while i + 32 <= n {
                mixStripe(base + i)
                i += 32
            }
            if i < n {
                carry = (0, 0, 0, 0)
                withUnsafeMutableBytes(of: &carry) { dst in
                    UnsafeMutableRawBufferPointer(rebasing: dst[0..<(n - i)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[i..<n]))
                }
                carried = n - i
            }
        }

        /// The final partial stripe, zero-padded to 32 bytes (the length term tells the padding
        /// apart), then the lanes folded with the length.
        mutating func finish() -> UInt64 {
            if carried > 0 {
                var stripe = carry
                withUnsafeMutableBytes(of: &stripe) { dst in
                    for k in carried..<32 { dst[k] = 0 }
                }
                withUnsafeBytes(of: &stripe) { mixStripe($0.baseAddress!) }
            }
            var h = UInt64(length) &* p3
            for lane in [l0, l1, l2, l3] { h = (h ^ rotl(lane &* p2, 27)) &* p1 }
            h ^= h >> 33; h &*= p2
            h ^= h >> 29; h &*= p3
            h ^= h >> 32
            return h
        }
    }
}
