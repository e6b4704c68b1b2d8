import Dispatch

/// dW[id] += dz · H[pos] for every supervised candidate (`entryPos[e] ≥ 0`) of the restricted
/// losses. Entries are counting-sorted by vocab id (stable, so position order is kept) and the
/// sorted list is split at id boundaries, so each W row is owned by exactly one task and its
/// contributions are added in position order: no locks, no per-thread dW copies, and the result
/// is bit-identical whatever the thread count or scheduling.
func accumulateCandidateWeightGradient(ids: UnsafeBufferPointer<UInt32>, dz: UnsafeBufferPointer<Float>,
                                       entryPos: UnsafeBufferPointer<Int32>, hidden: UnsafePointer<Float>, d: Int,
                                       vocab: Int, dWeight: UnsafeMutablePointer<Float>) {
    let total = ids.count
    guard total > 0 else { return }
    let start = UnsafeMutableBufferPointer<Int32>.allocate(capacity: vocab + 1)
    let sorted = UnsafeMutableBufferPointer<Int32>.allocate(capacity: total)
    defer { start.deallocate(); sorted.deallocate() }
    start.initialize(repeating: 0)
    var live = 0
    for e in 0..<total where entryPos[e] >= 0 { start[Int(ids[e]) + 1] += 1; live += 1 }
    for v in 0..<vocab { start[v + 1] += start[v] }
    for e in 0..<total where entryPos[e] >= 0 {
        let v = Int(ids[e])
        sorted[Int(start[v])] = Int32(e)
        start[v] += 1
    }
    guard live > 0 else { return }
    // Split points: near equal shares of entries, moved forward to the next id boundary.
    let tasks = taskCount(items: live)
    var bounds = [0]
    for t in 1..<tasks {
        var b = max(live * t / tasks, bounds.last!)
        while b > 0, b < live, ids[Int(sorted[b])] == ids[Int(sorted[b - 1])] { b += 1 }
        bounds.append(min(b, live))
    }
    bounds.append(live)
    nonisolated(unsafe) let sp = sorted.baseAddress!, idp = ids.baseAddress!, dzp = dz.baseAddress!
    nonisolated(unsafe) let pp = entryPos.baseAddress!, H = hidden, dW = dWeight
    let b = bounds
    DispatchQueue.concurrentPerform(iterations: tasks) { t in
        for s in b[t]..<b[t + 1] {
            let e = Int(sp[s])
            axpy(dzp[e], H + Int(pp[e]) * d, dW + Int(idp[e]) * d, d)
        }
    }
}
