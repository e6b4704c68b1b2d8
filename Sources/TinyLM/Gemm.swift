import COpenBLAS
import Dispatch
import Foundation

// The model's matrix products and the small vector kernels its loops share. Every product goes
// through OpenBLAS `cblas_sgemm` (itself multi-threaded), called from one thread at a time;
// the element-wise and attention loops parallelise with `concurrentPerform` instead.
// Linear weights are [out × in] row-major, activations [rows × features] row-major.

enum Gemm {
    /// y[n×out] = x[n×in] · wᵀ  (+ y when `accumulate`).
    static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       n: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
        guard n > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), w, Int32(inFeatures), accumulate ? 1 : 0, y, Int32(outFeatures))
    }

    /// dx[n×in] = dy[n×out] · w  (+ dx when `accumulate`): the input gradient of `linear`.
    static func linearInputGrad(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                n: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool) {
        guard n > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(inFeatures), Int32(outFeatures),
                    1, dy, Int32(outFeatures), w, Int32(inFeatures), accumulate ? 1 : 0, dx, Int32(inFeatures))
    }

    /// dw[out×in] += dyᵀ[out×n] · x[n×in]: the weight gradient of `linear`, always accumulated.
    static func linearWeightGrad(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                 n: Int, inFeatures: Int, outFeatures: Int) {
        guard n > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(n),
                    1, dy, Int32(outFeatures), x, Int32(inFeatures), 1, dw, Int32(inFeatures))
    }
}

/// Runs `body(task)` for `tasks` tasks, concurrently when there is more than one.
@inline(__always)
func parallelTasks(_ tasks: Int, _ body: @Sendable (Int) -> Void) {
    if tasks <= 1 {
        if tasks == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: tasks, execute: body)
}

/// About four tasks per core (uneven rows balance out), never more than `items`, and one task
/// when the work is too small to pay for waking threads.
func taskCount(items: Int, work: Int) -> Int {
    guard items > 1, work >= 1 << 14 else { return min(items, 1) }
    let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    return min(items, cores * 4)
}

/// Task `task` of `tasks`' share of `0..<count`.
@inline(__always)
func share(_ task: Int, of tasks: Int, _ count: Int) -> Range<Int> {
    (count * task / tasks)..<(count * (task + 1) / tasks)
}

/// A float scratch buffer that grows and is otherwise reused across steps (contents are not
/// kept when it grows: every user rewrites it before reading).
final class ActivationBuffer: @unchecked Sendable {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init() {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).bindMemory(to: Float.self, capacity: 16)
        capacity = 16
    }

    deinit { pointer.deallocate() }

    /// Makes room for `count` floats and returns the base pointer.
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            let bytes = count * MemoryLayout<Float>.stride
            pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: count)
            capacity = count
        }
        return pointer
    }

    func zero(_ count: Int) { pointer.update(repeating: 0, count: count) }
}

// SIMD helpers over raw float runs (unaligned loads; n is usually the head dimension).

@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y[0..<n] += alpha · x[0..<n]
@inline(__always)
func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    let va = SIMD8<Float>(repeating: alpha)
    while i + 8 <= n {
        let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            + va * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}
