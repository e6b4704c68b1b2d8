/// bfloat16: the upper 16 bits of an IEEE binary32. Teachers on GPUs often emit logits in it.
/// Swift has no native type for it, so this is a storage type with exact widening to `Float`
/// and round-to-nearest-even narrowing.
public struct BFloat16: Sendable, Hashable {
    public var bitPattern: UInt16

    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Round to nearest, ties to even; NaN stays a (quiet) NaN with its sign, overflow becomes ±inf.
    @inlinable public init(_ f: Float) {
        let bits = f.bitPattern
        if f.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let roundingBias: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
        }
    }

    /// Exact: every bfloat16 is a binary32.
    @inlinable public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

/// Element types a logits row may hold. `loadVector` widens `scanLanes` consecutive elements
/// to `Float` exactly, without per-lane library calls (the default x86-64 target has no F16C, so
/// `Float(Float16)` would be a call per element on the hot path).
protocol LogitElement: Sendable {
    static func loadVector(_ p: UnsafePointer<Self>) -> ScanFloats
    var widened: Float { get }
}

extension Float: LogitElement {
    @inline(__always)
    static func loadVector(_ p: UnsafePointer<Float>) -> ScanFloats {
        UnsafeRawPointer(p).loadUnaligned(as: ScanFloats.self)
    }
    @inline(__always) var widened: Float { self }
}

extension BFloat16: LogitElement {
    @inline(__always)
    static func loadVector(_ p: UnsafePointer<BFloat16>) -> ScanFloats {
        unsafeBitCast(widenHalves(UnsafeRawPointer(p)) &<< 16, to: ScanFloats.self)
    }
    @inline(__always) var widened: Float { floatValue }
}

extension Float16: LogitElement {
    /// binary16 → binary32 by bit manipulation: shifting exponent+mantissa into place and
    /// multiplying by 2^112 rebiases the exponent and turns half subnormals into normal floats
    /// exactly; inf/NaN (exponent all ones) get the binary32 all-ones exponent instead.
    @inline(__always)
    static func loadVector(_ p: UnsafePointer<Float16>) -> ScanFloats {
        let h = widenHalves(UnsafeRawPointer(p))
        let sign = (h & 0x8000) &<< 16
        let em = (h & 0x7FFF) &<< 13
        let scaled = unsafeBitCast(em, to: ScanFloats.self) * 0x1p112
        // em ≥ 0x0F80_0000 (inf/NaN) ⇔ bit 28 of em + 0x0080_0000: integer ops only, no mask
        // select (the mutating `replace(with:where:)` compiled to a lane loop).
        let infNaN = (0 &- (((em &+ 0x0080_0000) &>> 28) & 1)) & 0x7F80_0000
        let bits = unsafeBitCast(scaled, to: ScanBits.self) | infNaN | sign
        return unsafeBitCast(bits, to: ScanFloats.self)
    }
    @inline(__always) var widened: Float {
        // Same bit recipe as `loadVector`, scalar, so both paths agree bit for bit.
        let h = UInt32(bitPattern)
        let em = (h & 0x7FFF) << 13
        var bits = (Float(bitPattern: em) * 0x1p112).bitPattern
        if em >= 0x0F80_0000 { bits = em | 0x7F80_0000 }
        return Float(bitPattern: bits | ((h & 0x8000) << 16))
    }
}
