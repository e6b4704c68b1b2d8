/// ggml's block formats to f32, one function per type, written from ggml's block definitions
/// (schema/GGUF.md lists each layout). Every value is computed with the same float operations
/// in the same order as ggml's reference dequantizers, so results are bit-identical to theirs.
enum Dequantize {
    static func run(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>, count: Int,
                    path: String, tensor: String, fileOffset: Int) throws(GGUFError) {
        guard let layout = type.blockLayout else {
            throw GGUFError(path: path, offset: fileOffset, item: tensor, reason: "type \(type.name) is not read")
        }
        let blocks = count / layout.elements
        guard count % layout.elements == 0, src.count == blocks * layout.bytes else {
            throw GGUFError(path: path, offset: fileOffset, item: tensor,
                            reason: "\(src.count) bytes for \(count) \(type.name) values, expected \(blocks * layout.bytes)")
        }
        let base = src.baseAddress!
        for b in 0..<blocks {
            let p = base + b * layout.bytes, y = out + b * layout.elements
            switch type {
            case .f32: y[0] = Float(bitPattern: p.loadUnaligned(as: UInt32.self).littleEndian)
            case .f16: y[0] = half(p)
            case .bf16: y[0] = Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self).littleEndian) << 16)
            case .q4_0: q4(p + 2, y, scale: half(p), min: nil)
            case .q4_1: q4(p + 4, y, scale: half(p), min: half(p + 2))
            case .q5_0: q5(p + 2, y, scale: half(p), min: nil)
            case .q5_1: q5(p + 4, y, scale: half(p), min: half(p + 2))
            case .q8_0:
                let d = half(p)
                for j in 0..<32 { y[j] = Float(Int8(bitPattern: p.load(fromByteOffset: 2 + j, as: UInt8.self))) * d }
            case .q4_K: kQuant(p, y, highBits: nil)
            case .q5_K: kQuant(p, y, highBits: p + 16)
            case .q6_K: q6K(p, y)
            default: preconditionFailure("blockLayout and run disagree on \(type.name)")
            }
        }
        for i in 0..<count where !out[i].isFinite {
            throw GGUFError(path: path, offset: fileOffset, item: tensor, reason: "value \(i) dequantizes to \(out[i]); weights must be finite")
        }
    }

    @inline(__always) static func half(_ p: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self).littleEndian))
    }

    @inline(__always) static func byte(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }

    /// Q4_0 / Q4_1: 16 bytes of nibbles; low nibbles are values 0..<16, high nibbles 16..<32.
    /// Q4_0 centres on 8 (x = (q − 8)·d), Q4_1 adds a minimum (x = q·d + m).
    @inline(__always) static func q4(_ qs: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, scale d: Float, min m: Float?) {
        for j in 0..<16 {
            let q = byte(qs, j)
            if let m {
                y[j] = Float(q & 0x0F) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            } else {
                y[j] = Float(Int(q & 0x0F) - 8) * d
                y[j + 16] = Float(Int(q >> 4) - 8) * d
            }
        }
    }

    /// Q5_0 / Q5_1: as Q4 with a fifth bit per value from a 32-bit mask (bit j for value j).
    @inline(__always) static func q5(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, scale d: Float, min m: Float?) {
        let qh = p.loadUnaligned(as: UInt32.self).littleEndian, qs = p + 4
        for j in 0..<16 {
            let q = byte(qs, j)
            let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) << 4 & 0x10)
            let hi = Int(q >> 4) | Int((qh >> UInt32(j + 12)) & 0x10)
            if let m {
                y[j] = Float(lo) * d + m
                y[j + 16] = Float(hi) * d + m
            } else {
                y[j] = Float(lo - 16) * d
                y[j + 16] = Float(hi - 16) * d
            }
        }
    }

    /// The 6-bit scale and minimum of sub-block `j` (0..<8) packed in Q4_K/Q5_K's 12 bytes.
    @inline(__always) static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (Float, Float) {
        if j < 4 { return (Float(byte(s, j) & 63), Float(byte(s, j + 4) & 63)) }
        let sc = (byte(s, j + 4) & 0x0F) | ((byte(s, j - 4) >> 6) << 4)
        let m = (byte(s, j + 4) >> 4) | ((byte(s, j) >> 6) << 4)
        return (Float(sc), Float(m))
    }

    /// Q4_K and Q5_K: a 256-value super-block of eight 32-value sub-blocks, each with its own
    /// 6-bit scale and minimum times the super-block's f16 d and dmin. Q5_K adds a fifth bit
    /// per value from 32 bytes of high bits.
    @inline(__always) static func kQuant(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, highBits qh: UnsafeRawPointer?) {
        let d = half(p), dmin = half(p + 2), scales = p + 4
        var qs = p + (qh == nil ? 16 : 48)
        var out = y, sub = 0
        var u1: UInt8 = 1, u2: UInt8 = 2
        for _ in 0..<4 {
            let (sc1, m1) = scaleMin(sub, scales), (sc2, m2) = scaleMin(sub + 1, scales)
            let d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2
            for l in 0..<32 {
                let high: UInt8 = qh.map { byte($0, l) & u1 != 0 ? 16 : 0 } ?? 0
                out[l] = d1 * Float((byte(qs, l) & 0x0F) + high) - min1
            }
            for l in 0..<32 {
                let high: UInt8 = qh.map { byte($0, l) & u2 != 0 ? 16 : 0 } ?? 0
                out[l + 32] = d2 * Float((byte(qs, l) >> 4) + high) - min2
            }
            qs += 32; out += 64; sub += 2
            u1 <<= 2; u2 <<= 2
        }
    }

    /// Q6_K: 256 values of 6 bits (4 low bits in ql, 2 high bits in qh) centred on 32, sixteen
    /// int8 scales of 16 values each, one f16 d.
    @inline(__always) static func q6K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        var ql = p, qh = p + 128, sc = p + 192
        let d = half(p + 208)
        var out = y
        for _ in 0..<2 {
            for l in 0..<32 {
                let s = l / 16
                let h = byte(qh, l)
                let q1 = Int(byte(ql, l) & 0x0F | (h & 3) << 4) - 32
                let q2 = Int(byte(ql, l + 32) & 0x0F | ((h >> 2) & 3) << 4) - 32
                let q3 = Int(byte(ql, l) >> 4 | ((h >> 4) & 3) << 4) - 32
                let q4 = Int(byte(ql, l + 32) >> 4 | ((h >> 6) & 3) << 4) - 32
                func scale(_ i: Int) -> Float { Float(Int8(bitPattern: byte(sc, i))) }
                out[l] = d * scale(s) * Float(q1)
                out[l + 32] = d * scale(s + 2) * Float(q2)
                out[l + 64] = d * scale(s + 4) * Float(q3)
                out[l + 96] = d * scale(s + 6) * Float(q4)
            }
            out += 128; ql += 64; qh += 32; sc += 8
        }
    }
}
