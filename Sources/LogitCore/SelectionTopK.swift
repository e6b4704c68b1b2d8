import Foundation

/// One position's selected candidates: ids in descending log-prob order (ties: lower id
/// first), a forced gold id last. `logprobs` are full-vocabulary log-softmax values.
public struct SelectedSet: Sendable, Equatable {
    public var ids: [UInt32]
    public var logprobs: [Float]
    /// The gold id was outside the τ-prefix and was appended (the set may hold kMax + 1 ids).
    public var goldForced: Bool
    /// Σ exp(lp) over the returned ids, in Double.
    public var coveredMass: Double

    public init(ids: [UInt32], logprobs: [Float], goldForced: Bool, coveredMass: Double) {
        self.ids = ids
        self.logprobs = logprobs
        self.goldForced = goldForced
        self.coveredMass = coveredMass
    }

    /// The same set as stored in a `SequenceRecord`.
    public var candidateSet: CandidateSet { CandidateSet(ids: ids, logprobs: logprobs, goldForced: goldForced) }
}

/// Dynamic Top-K: per row of full-vocabulary logits, the smallest prefix of the descending
/// probability order whose mass reaches τ, K clamped to [kMin, kMax] (kMin to V when V < kMin),
/// ties by lower id, gold appended when missing. Exactly the answer of a full sort, in O(V):
/// one vectorized pass (`ScanPath.scan`: an AVX-512 or AVX2+FMA kernel where the CPU has one, else the
/// portable `scanRow`) plus sorts of at most 2·kMax + `scanPoolSlack` candidates.
///
/// Log-probs are `z − m − log S` in Double, S from the fast exp (relative error ≈ 1e-7), so
/// they are accurate to ~1e-7 absolute. The τ test uses the same S: a row whose cumulative
/// mass lands within ~1e-7 of τ may be cut one id differently than with an exact S.
/// A log-prob below −Float.greatestFiniteMagnitude (a logit range beyond Float) is stored as
/// that finite value: its probability is 0 either way, and stored log-probs must be finite.
public struct TopKSelector: Sendable {
    public let policy: SelectionPolicy
    /// The row-scan implementation: the fastest this CPU runs unless pinned (see `ScanPath`).
    public let scanPath: ScanPath

    public init(policy: SelectionPolicy) throws(LogitError) {
        try self.init(policy: policy, scanPath: .best)
    }

    /// Pins the row scan, so tests and benchmarks can run each path. A path this CPU cannot
    /// run (not in `ScanPath.available`) is refused.
    public init(policy: SelectionPolicy, scanPath: ScanPath) throws(LogitError) {
        try policy.validate()
        guard ScanPath.available.contains(scanPath) else {
            throw .invalidPolicy("scan path \(scanPath) is not available on this CPU (it runs \(ScanPath.available))")
        }
        self.policy = policy
        self.scanPath = scanPath
    }

    /// `rowIndex` only names the row in error messages.
    public func select(row: UnsafeBufferPointer<Float>, gold: UInt32, rowIndex: Int = 0) throws(LogitError) -> SelectedSet {
        try selectRow(row, gold: gold, rowIndex: rowIndex)
    }

    public func select(row: UnsafeBufferPointer<Float16>, gold: UInt32, rowIndex: Int = 0) throws(LogitError) -> SelectedSet {
        try selectRow(row, gold: gold, rowIndex: rowIndex)
    }

    public func select(row: UnsafeBufferPointer<BFloat16>, gold: UInt32, rowIndex: Int = 0) throws(LogitError) -> SelectedSet {
        try selectRow(row, gold: gold, rowIndex: rowIndex)
    }

    /// Many rows laid out row-major (`rows.count == golds.count * vocab`), spread over
    /// `threads` (default: all cores). Errors name the row; the lowest failing row wins.
    public func selectBatch(rows: UnsafeBufferPointer<Float>, vocab: Int, golds: [UInt32],
                            threads: Int? = nil) throws(LogitError) -> [SelectedSet] {
        try batch(rows, vocab: vocab, golds: golds, threads: threads)
    }

    public func selectBatch(rows: UnsafeBufferPointer<Float16>, vocab: Int, golds: [UInt32],
                            threads: Int? = nil) throws(LogitError) -> [SelectedSet] {
        try batch(rows, vocab: vocab, golds: golds, threads: threads)
    }

    public func selectBatch(rows: UnsafeBufferPointer<BFloat16>, vocab: Int, golds: [UInt32],
                            threads: Int? = nil) throws(LogitError) -> [SelectedSet] {
        try batch(rows, vocab: vocab, golds: golds, threads: threads)
    }

    // MARK: - Implementation

    func selectRow<E: LogitElement>(_ row: UnsafeBufferPointer<E>, gold: UInt32,
                                    rowIndex: Int) throws(LogitError) -> SelectedSet {
        guard !row.isEmpty else {
            throw .invalidLogits(row: rowIndex, reason: "row is empty, expected one logit per vocabulary id")
        }
        guard Int(gold) < row.count else {
            throw .invalidLogits(row: rowIndex, reason: "gold id \(gold) is outside the vocabulary, expected < \(row.count)")
        }
        let poolLimit = Swift.min(policy.kMax, row.count)
        let outcome: Result<SelectedSet, LogitError> = withUnsafeTemporaryAllocation(
            of: UInt64.self, capacity: 2 * poolLimit + scanPoolSlack
        ) { pool in
            guard let scan = scanPath.scan(row, poolLimit: poolLimit, pool: pool) else {
                guard let bad = firstNonFinite(row) else {
                    // Only a row written while it is read (a shared-memory slot a client reuses
                    // too early) gets here; the caller's bad input must not stop the daemon.
                    return .failure(.invalidLogits(row: rowIndex,
                        reason: "a non-finite logit seen by the scan was gone on a second read: the row changed while it was being read"))
                }
                return .failure(.invalidLogits(row: rowIndex,
                    reason: "logit at index \(bad.index) is \(bad.value), expected a finite number"))
            }
            return .success(assemble(scan, pool: pool, row: row, gold: gold))
        }
        return try outcome.get()
    }

    /// Cuts the sorted pool at the τ-prefix, clamps K, appends the gold if missing.
    func assemble<E: LogitElement>(_ scan: RowScanResult, pool: UnsafeMutableBufferPointer<UInt64>,
                                   row: UnsafeBufferPointer<E>, gold: UInt32) -> SelectedSet {
        let m = scan.maxLogit, s = scan.partition
        let logS = Foundation.log(s)
        var k = scan.poolCount
        var cumulative = 0.0
        for j in 0..<scan.poolCount {
            cumulative += Foundation.exp(Double(keyLogit(pool[j])) - m) / s
            if cumulative >= policy.tau { k = j + 1; break }
        }
        k = Swift.min(Swift.max(k, Swift.min(policy.kMin, row.count)), policy.kMax)

        var ids = [UInt32](); ids.reserveCapacity(k + 1)
        var logprobs = [Float](); logprobs.reserveCapacity(k + 1)
        var covered = 0.0
        var goldSeen = false
        func append(_ id: UInt32, _ z: Float) {
            let lp = Double(z) - m - logS
            ids.append(id)
            logprobs.append(Swift.max(Float(lp), -Float.greatestFiniteMagnitude))
            covered += Foundation.exp(lp)
        }
        for j in 0..<k {
            let id = keyId(pool[j])
            if id == gold { goldSeen = true }
            append(id, keyLogit(pool[j]))
        }
        if !goldSeen { append(gold, row[Int(gold)].widened) }
        return SelectedSet(ids: ids, logprobs: logprobs, goldForced: !goldSeen, coveredMass: covered)
    }

    func batch<E: LogitElement>(_ rows: UnsafeBufferPointer<E>, vocab: Int, golds: [UInt32],
                                threads: Int?) throws(LogitError) -> [SelectedSet] {
        guard vocab >= 1 else {
            throw .invalidLogits(row: 0, reason: "batch vocab is \(vocab), expected ≥ 1")
        }
        let (expected, overflow) = golds.count.multipliedReportingOverflow(by: vocab)
        guard !overflow, rows.count == expected else {
            throw .invalidLogits(row: 0, reason: "batch holds \(rows.count) logits, expected golds (\(golds.count)) × vocab (\(vocab))")
        }
        let n = golds.count
        if n == 0 { return [] }
        let requested = threads ?? ProcessInfo.processInfo.activeProcessorCount
        precondition(requested >= 1, "selectBatch threads must be ≥ 1, got \(requested)")
        let workers = Swift.min(requested, n)
        let base = rows.baseAddress!

        let empty = SelectedSet(ids: [], logprobs: [], goldForced: false, coveredMass: 0)
        var results = [SelectedSet](repeating: empty, count: n)
        var failures = [LogitError?](repeating: nil, count: workers)
        results.withUnsafeMutableBufferPointer { out in
            failures.withUnsafeMutableBufferPointer { fail in
                let slots = BatchSlots(rows: base, out: out, fail: fail)
                // Contiguous chunks: worker w stops at its first bad row, so the first failing
                // chunk holds the lowest failing row.
                let work: @Sendable (Int) -> Void = { [self] w in
                    let lo = n * w / workers, hi = n * (w + 1) / workers
                    for r in lo..<hi {
                        let row = UnsafeBufferPointer(start: slots.rows + r * vocab, count: vocab)
                        do throws(LogitError) {
                            slots.out[r] = try self.selectRow(row, gold: golds[r], rowIndex: r)
                        } catch {
                            slots.fail[w] = error
                            return
                        }
                    }
                }
                if workers == 1 {
                    work(0)
                } else {
                    DispatchQueue.concurrentPerform(iterations: workers, execute: work)
                }
            }
        }
        if let first = failures.lazy.compactMap({ $0 }).first { throw first }
        return results
    }
}

/// The batch's shared buffers, handed to worker threads. Unchecked because each worker reads
/// only the input and writes only its own disjoint range of `out` and its own `fail` slot, and
/// `concurrentPerform` returns only after every worker is done.
private struct BatchSlots<E>: @unchecked Sendable {
    let rows: UnsafePointer<E>
    let out: UnsafeMutableBufferPointer<SelectedSet>
    let fail: UnsafeMutableBufferPointer<LogitError?>
}
