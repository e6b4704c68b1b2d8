import ArgumentParser
import Foundation
import LogitCore

/// Dynamic Top-K selection on synthetic teacher rows (V = 151,936), against two baselines
/// measured in the same run: a full sort of each row, and the time memcpy needs just to read
/// the row's bytes (the ceiling for any one-pass method).
///
/// Rows come from a pool of distinct pre-generated rows, cycled: the pool is sized to exceed
/// the last-level cache so the timing is of rows streamed from memory, as in a teacher.
struct TopKBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topk",
        abstract: "Dynamic Top-K selection vs a full sort and vs memcpy speed; prints JSON.")

    @Flag(help: "Print only the JSON line.")
    var json = false

    @Option(help: "Positions to select (rows cycled from the pool).")
    var positions = 20_000

    @Option(help: "Distinct pre-generated rows; 64 rows are 39 MB, more than the 32 MB L3.")
    var poolRows = 64

    @Option(help: "Rows selected with the full-sort baseline (it is ~100x slower).")
    var sortRows = 200

    func validate() throws {
        guard positions >= 1 else { throw ValidationError("--positions must be ≥ 1, got \(positions)") }
        guard poolRows >= 1 else { throw ValidationError("--pool-rows must be ≥ 1, got \(poolRows)") }
        guard sortRows >= 1 else { throw ValidationError("--sort-rows must be ≥ 1, got \(sortRows)") }
    }

    func run() throws {
        let policy = SelectionPolicy.default
        let selector = try TopKSelector(policy: policy)
        let teacher = SyntheticTeacher()
        let vocab = teacher.vocabSize
        let rowBytes = vocab * MemoryLayout<Float>.stride

        let (pool, golds) = Self.syntheticPool(rows: poolRows)
        defer { pool.deallocate() }
        let rows = UnsafeBufferPointer(pool)
        func row(_ p: Int) -> UnsafeBufferPointer<Float> {
            UnsafeBufferPointer(rebasing: rows[(p * vocab)..<((p + 1) * vocab)])
        }

        let memcpyBytesPerSecond = measureMemcpyBytesPerSecond()

        // One thread, Float32 rows. Thread CPU time is kept beside wall time: on a shared
        // machine it shows the cost of the code itself.
        var kSum = 0, forcedCount = 0
        var cpuSeconds = Double.infinity
        let single = try bestTime {
            kSum = 0; forcedCount = 0
            let cpu0 = threadCPUSeconds()
            defer { cpuSeconds = min(cpuSeconds, threadCPUSeconds() - cpu0) }
            for i in 0..<positions {
                let p = i % poolRows
                let set = try selector.select(row: row(p), gold: golds[p], rowIndex: p)
                kSum += set.ids.count
                if set.goldForced { forcedCount += 1 }
            }
        }

        // The same rows with the memory stream taken out: each pool row is selected once to
        // warm it into L2 (one Float row is 607 KB), then timed on the second selection. The
        // gap to `cpu_us_per_position` is what reading the row from DRAM costs; this figure
        // is what the selection arithmetic costs.
        var cachedSeconds = 0.0
        for p in 0..<poolRows {
            _ = try selector.select(row: row(p), gold: golds[p], rowIndex: p)
            let cpu0 = threadCPUSeconds()
            _ = try selector.select(row: row(p), gold: golds[p], rowIndex: p)
            cachedSeconds += threadCPUSeconds() - cpu0
        }

        // Baseline in the same run: the portable Swift scan, on a quarter of the positions
        // (it is the slower path), streamed and with the row in L2. Equal to the figures above
        // when the CPU has no AVX2+FMA and the selector already runs the portable scan.
        let portable = try TopKSelector(policy: policy, scanPath: .portable)
        let portablePositions = max(positions / 4, 1)
        var portableCPUSeconds = Double.infinity
        _ = try bestTime {
            let cpu0 = threadCPUSeconds()
            defer { portableCPUSeconds = min(portableCPUSeconds, threadCPUSeconds() - cpu0) }
            for i in 0..<portablePositions {
                let p = i % poolRows
                let set = try portable.select(row: row(p), gold: golds[p], rowIndex: p)
                precondition(!set.ids.isEmpty)
            }
        }
        var portableCachedSeconds = 0.0
        for p in 0..<poolRows {
            _ = try portable.select(row: row(p), gold: golds[p], rowIndex: p)
            let cpu0 = threadCPUSeconds()
            _ = try portable.select(row: row(p), gold: golds[p], rowIndex: p)
            portableCachedSeconds += threadCPUSeconds() - cpu0
        }

        // Second baseline when the selector runs the AVX-512 kernel: the AVX2+FMA kernel on the
        // same positions, streamed and in L2, so the 16-lane gain is measured in one run.
        var avx2CPUSeconds = Double.nan, avx2CachedSeconds = Double.nan
        if selector.scanPath == .avx512 {
            let avx2 = try TopKSelector(policy: policy, scanPath: .avx2FMA)
            avx2CPUSeconds = .infinity
            _ = try bestTime {
                let cpu0 = threadCPUSeconds()
                defer { avx2CPUSeconds = min(avx2CPUSeconds, threadCPUSeconds() - cpu0) }
                for i in 0..<positions {
                    let p = i % poolRows
                    let set = try avx2.select(row: row(p), gold: golds[p], rowIndex: p)
                    precondition(!set.ids.isEmpty)
                }
            }
            avx2CachedSeconds = 0
            for p in 0..<poolRows {
                _ = try avx2.select(row: row(p), gold: golds[p], rowIndex: p)
                let cpu0 = threadCPUSeconds()
                _ = try avx2.select(row: row(p), gold: golds[p], rowIndex: p)
                avx2CachedSeconds += threadCPUSeconds() - cpu0
            }
        }

        let threads = ProcessInfo.processInfo.activeProcessorCount
        let parallel = try Self.allCoreSeconds(selector: selector, rows: rows, vocab: vocab, golds: golds,
                                               positions: positions, threads: threads)

        // The same rows as Float16 and BFloat16 (teachers on GPUs emit these), one thread,
        // a quarter of the positions: only to show what the widening costs.
        let halfPositions = max(positions / 4, 1)
        let halves = pool.map { Float16($0) }, bfloats = pool.map { BFloat16($0) }
        let halfSeconds = try halves.withUnsafeBufferPointer { h in
            try bestTime {
                for i in 0..<halfPositions {
                    let p = i % poolRows
                    _ = try selector.select(row: UnsafeBufferPointer(rebasing: h[(p * vocab)..<((p + 1) * vocab)]), gold: golds[p])
                }
            }
        }
        let bfloatSeconds = try bfloats.withUnsafeBufferPointer { b in
            try bestTime {
                for i in 0..<halfPositions {
                    let p = i % poolRows
                    _ = try selector.select(row: UnsafeBufferPointer(rebasing: b[(p * vocab)..<((p + 1) * vocab)]), gold: golds[p])
                }
            }
        }

        // Baseline: log-softmax with Foundation exp in Double, then a full sort of the row's
        // (logit, id) keys. Its answers double as a check of the fast path.
        let sortCount = min(sortRows, positions)
        var keys = [UInt64](repeating: 0, count: vocab)
        var mismatches = 0
        let sortSeconds = try bestTime(repeats: 1) {
            for i in 0..<sortCount {
                let p = i % poolRows
                let want = fullSortSelection(row(p), gold: golds[p], policy: policy, keys: &keys)
                if i < poolRows {
                    let got = try selector.select(row: row(p), gold: golds[p])
                    if got.ids != want { mismatches += 1 }
                }
            }
        }
        guard mismatches == 0 else {
            throw ValidationError("fast selection disagreed with the full sort on \(mismatches) rows")
        }

        let perSecond = Double(positions) / single
        let perSecondThreads = Double(positions) / parallel
        let sortPerSecond = Double(sortCount) / sortSeconds
        let memoryBound = memcpyBytesPerSecond / Double(rowBytes)
        if !json {
            print("""
                topk: V=\(vocab), \(positions) positions, pool \(poolRows) rows (\((poolRows * rowBytes) >> 20) MiB)
                  1 thread:  \(Int(perSecond)) positions/s (\(String(format: "%.0f", 1e6 / perSecond)) µs each), \
                \(String(format: "%.1f", 100 * perSecond / memoryBound))% of memory bound, \
                \(String(format: "%.0f", perSecond / sortPerSecond))× the full sort
                  1 thread CPU time: \(String(format: "%.1f", 1e6 * cpuSeconds / Double(positions))) µs per position, \
                \(String(format: "%.1f", 1e6 * cachedSeconds / Double(poolRows))) µs with the row already in L2
                  scan path \(selector.scanPath); portable scan: \(String(format: "%.1f", 1e6 * portableCPUSeconds / Double(portablePositions))) µs CPU per position, \
                \(String(format: "%.1f", 1e6 * portableCachedSeconds / Double(poolRows))) µs in L2
                  AVX2+FMA kernel (when the selector runs AVX-512): \(String(format: "%.1f", 1e6 * avx2CPUSeconds / Double(positions))) µs CPU per position, \
                \(String(format: "%.1f", 1e6 * avx2CachedSeconds / Double(poolRows))) µs in L2
                  \(threads) threads: \(Int(perSecondThreads)) positions/s
                  1 thread, Float16 rows: \(Int(Double(halfPositions) / halfSeconds)) positions/s, \
                BFloat16 rows: \(Int(Double(halfPositions) / bfloatSeconds)) positions/s
                  full sort: \(String(format: "%.1f", sortPerSecond)) positions/s; memcpy \
                \(String(format: "%.2f", memcpyBytesPerSecond / 1e9)) GB/s = \(Int(memoryBound)) rows/s
                """)
        }
        printJSONLine([
            "bench": "topk",
            "vocab": vocab,
            "positions": positions,
            "positions_per_s": perSecond,
            "cpu_us_per_position": 1e6 * cpuSeconds / Double(positions),
            "cached_cpu_us_per_position": 1e6 * cachedSeconds / Double(poolRows),
            "scan_path": selector.scanPath.description,
            "portable_cpu_us_per_position": 1e6 * portableCPUSeconds / Double(portablePositions),
            "portable_cached_cpu_us_per_position": 1e6 * portableCachedSeconds / Double(poolRows),
            "cpu_speedup_vs_portable": (portableCPUSeconds / Double(portablePositions)) / (cpuSeconds / Double(positions)),
            "avx2_cpu_us_per_position": 1e6 * avx2CPUSeconds / Double(positions),
            "avx2_cached_cpu_us_per_position": 1e6 * avx2CachedSeconds / Double(poolRows),
            "cpu_speedup_vs_avx2": avx2CPUSeconds / cpuSeconds,
            "positions_per_s_threads": perSecondThreads,
            "threads": threads,
            "sort_baseline_positions_per_s": sortPerSecond,
            "sort_baseline_rows": sortCount,
            "memory_bound_positions_per_s": memoryBound,
            "memcpy_bytes_per_s": memcpyBytesPerSecond,
            "fraction_of_memory_bound": perSecond / memoryBound,
            "speedup_vs_sort": perSecond / sortPerSecond,
            "positions_per_s_float16": Double(halfPositions) / halfSeconds,
            "positions_per_s_bfloat16": Double(halfPositions) / bfloatSeconds,
            "mean_k": Double(kSum) / Double(positions),
            "gold_forced_rate": Double(forcedCount) / Double(positions),
            "pool_rows": poolRows,
            "pool_bytes": poolRows * rowBytes,
        ])
    }
}

/// CPU seconds consumed by the calling thread.
extension TopKBench {
    /// All cores through the batch API (whole pools, then a prefix of the pool), best of three:
    /// the figure `logit-bench ingest --mode logits` is held against, so both measure it alike.
    static func allCoreSeconds(selector: TopKSelector, rows: UnsafeBufferPointer<Float>, vocab: Int, golds: [UInt32],
                               positions: Int, threads: Int) throws -> Double {
        let poolRows = golds.count
        return try bestTime {
            var done = 0
            while done < positions {
                let n = min(poolRows, positions - done)
                let batch = try selector.selectBatch(rows: UnsafeBufferPointer(rebasing: rows[0..<(n * vocab)]),
                                                     vocab: vocab, golds: Array(golds[0..<n]), threads: threads)
                precondition(batch.count == n)
                done += n
            }
        }
    }

    /// `rows` distinct synthetic teacher rows (V = 151,936) and their gold tokens.
    static func syntheticPool(rows: Int) -> (UnsafeMutableBufferPointer<Float>, [UInt32]) {
        let teacher = SyntheticTeacher()
        let vocab = teacher.vocabSize
        let pool = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * vocab)
        var golds = [UInt32](repeating: 0, count: rows)
        for p in 0..<rows {
            golds[p] = teacher.fillRow(position: p, into: UnsafeMutableBufferPointer(rebasing: pool[(p * vocab)..<((p + 1) * vocab)]))
        }
        return (pool, golds)
    }
}

private func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The selection done the straightforward way: Double log-softmax, full sort of the
/// vocabulary by (logit descending, id ascending), cumulative mass to τ, clamp, force gold.
/// Returns the ids.
private func fullSortSelection(_ row: UnsafeBufferPointer<Float>, gold: UInt32, policy: SelectionPolicy,
                               keys: inout [UInt64]) -> [UInt32] {
    var m = -Double.infinity
    for z in row { m = max(m, Double(z)) }
    var s = 0.0
    for z in row { s += exp(Double(z) - m) }
    for (id, z) in row.enumerated() {
        let bits = (z + 0).bitPattern
        let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        keys[id] = UInt64(ordered) << 32 | UInt64(~UInt32(id))
    }
    keys.sort(by: >)
    var k = row.count
    var cumulative = 0.0
    for j in 0..<row.count {
        let id = Int(~UInt32(truncatingIfNeeded: keys[j]))
        cumulative += exp(Double(row[id]) - m) / s
        if cumulative >= policy.tau { k = j + 1; break }
    }
    k = min(max(k, min(policy.kMin, row.count)), policy.kMax)
    var ids = (0..<k).map { ~UInt32(truncatingIfNeeded: keys[$0]) }
    if !ids.contains(gold) { ids.append(gold) }
    return ids
}
