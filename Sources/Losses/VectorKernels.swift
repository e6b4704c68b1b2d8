/// Small fp32 vector kernels for the restricted loss: d-length dot and axpy on raw pointers,
/// 16 lanes at a time (d = 576 is 36 vectors), fp32 accumulation as the losses specify.
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 32 <= d {
        acc0 += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
            * rb.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
        i += 32
    }
    while i + 16 <= d {
        acc0 += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < d { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += alpha · x over d floats.
@inline(__always)
func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ d: Int) {
    var i = 0
    let a = SIMD16<Float>(repeating: alpha)
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    while i + 16 <= d {
        let v = ry.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            + a * rx.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        ry.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < d { y[i] += alpha * x[i]; i += 1 }
}

/// Work split for `concurrentPerform`: about `perThread` tasks per core so uneven positions
/// balance, never more tasks than items.
func taskCount(items: Int, perThread: Int = 4) -> Int {
    let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    return max(1, min(items, cores * perThread))
}

import Foundation
