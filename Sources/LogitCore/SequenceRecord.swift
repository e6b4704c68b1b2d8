import Foundation

/// One sequence of a dataset: its input tokens and, for every supervised position `t`
/// (predicting `tokens[t+1]`), the teacher's candidate set. Candidate sets are stored flat
/// (CSR): set `t` is `ids[setOffsets[t] ..< setOffsets[t+1]]` with the matching `logprobs`.
///
/// The cache alone is enough to train from, so the tokens travel with the sets.
public struct SequenceRecord: Sendable, Equatable {
    /// Client key, unique within its dataset; re-sending the same key is idempotent. Obeys
    /// `SequenceKey.rule` (checked by `validate`).
    public var key: String
    /// Input token ids `x[0..L)`, L ≥ 2.
    public var tokens: [UInt32]
    /// Optional per-position loss mask (length L − 1, values 0 or 1); nil means all 1.
    public var lossMask: [UInt8]?
    /// CSR offsets, length L: `setOffsets[0] == 0`, non-decreasing, last == ids.count.
    public var setOffsets: [UInt32]
    /// Candidate token ids, set after set. Order within a set is not significant.
    public var ids: [UInt32]
    /// Teacher full-vocabulary log-probabilities matching `ids` (finite, ≤ 0).
    public var logprobs: [Float]
    /// Per position: the gold token was not in the τ-prefix and was added.
    public var goldForced: [Bool]

    public init(key: String, tokens: [UInt32], lossMask: [UInt8]? = nil, setOffsets: [UInt32],
                ids: [UInt32], logprobs: [Float], goldForced: [Bool]) {
        self.key = key
        self.tokens = tokens
        self.lossMask = lossMask
        self.setOffsets = setOffsets
        self.ids = ids
        self.logprobs = logprobs
        self.goldForced = goldForced
    }

    /// Builds a record from per-position sets (convenient for tests and importers).
    public init(key: String, tokens: [UInt32], lossMask: [UInt8]? = nil, sets: [CandidateSet]) {
        var offsets: [UInt32] = [0]
        offsets.reserveCapacity(sets.count + 1)
        let total = sets.reduce(0) { $0 + $1.ids.count }
        var ids: [UInt32] = []
        ids.reserveCapacity(total)
        var lps: [Float] = []
        lps.reserveCapacity(total)
        for set in sets {
            ids.append(contentsOf: set.ids)
            lps.append(contentsOf: set.logprobs)
            offsets.append(UInt32(truncatingIfNeeded: ids.count))
        }
        self.init(key: key, tokens: tokens, lossMask: lossMask, setOffsets: offsets, ids: ids,
                  logprobs: lps, goldForced: sets.map(\.goldForced))
    }

    /// Supervised positions: L − 1.
    @inlinable public var positions: Int { max(tokens.count - 1, 0) }

    /// Number of stored candidates (Σ K).
    @inlinable public var candidates: Int { ids.count }

    /// The candidate set of position `t`.
    public func set(at t: Int) -> CandidateSet {
        let lo = Int(setOffsets[t]), hi = Int(setOffsets[t + 1])
        return CandidateSet(ids: Array(ids[lo..<hi]), logprobs: Array(logprobs[lo..<hi]),
                            goldForced: goldForced[t])
    }

    /// Limits that keep hostile input from costing unbounded memory.
    public static let maxKeyBytes = SequenceKey.maxBytes
    public static let maxTokens = 1 << 20

    /// Checks every invariant of the data model against a dataset's vocab and policy.
    /// The error names the position and what was expected. `logprobScale`: the dataset's
    /// quantization (codes per nat); log-probs that were stored once (an export being imported)
    /// carry up to 0.5/scale of error each, so their Σp may exceed 1 by that factor.
    public func validate(vocabSize: Int, policy: SelectionPolicy, logprobScale: Float) throws(LogitError) {
        _ = try validatedCoverage(vocabSize: vocabSize, policy: policy, logprobScale: logprobScale)
    }

    /// The largest Σp a set may have: 1, times what quantization at `logprobScale` can add
    /// (each lp moves by at most 0.5/scale), plus float rounding.
    public static func maxCoveredMass(logprobScale: Float) -> Double {
        exp(0.5 / Double(max(logprobScale, 1))) * 1.001
    }

    /// `validate`, returning the record's coverage statistics as a by-product: the covered
    /// masses are summed during validation anyway, and ingest needs both (one exp per candidate
    /// instead of two).
    public func validatedCoverage(vocabSize: Int, policy: SelectionPolicy, logprobScale: Float) throws(LogitError) -> CoverageStats {
        let massBound = Self.maxCoveredMass(logprobScale: logprobScale)
        var coverage = CoverageStats()
        coverage.sequences = 1
        func fail(_ reason: String) -> LogitError { .invalidRecord(key: key, reason: reason) }
        do { try SequenceKey.validate(key) } catch {
            throw .invalidRecord(key: SequenceKey.printable(key), reason: error.description)
        }
        guard tokens.count >= 2, tokens.count <= Self.maxTokens else {
            throw fail("needs 2…\(Self.maxTokens) tokens, got \(tokens.count)")
        }
        let n = tokens.count - 1
        guard setOffsets.count == n + 1 else {
            throw fail("setOffsets has \(setOffsets.count) entries, expected tokens − 1 + 1 = \(n + 1)")
        }
        guard goldForced.count == n else {
            throw fail("goldForced has \(goldForced.count) entries, expected \(n)")
        }
        if let mask = lossMask {
            guard mask.count == n else { throw fail("lossMask has \(mask.count) entries, expected \(n)") }
            if let bad = mask.firstIndex(where: { $0 > 1 }) {
                throw fail("lossMask[\(bad)] = \(mask[bad]), expected 0 or 1")
            }
        }
        guard ids.count == logprobs.count else {
            throw fail("\(ids.count) ids but \(logprobs.count) logprobs")
        }
        guard setOffsets[0] == 0, Int(setOffsets[n]) == ids.count else {
            throw fail("setOffsets must start at 0 and end at ids.count (\(ids.count))")
        }
        for (i, tok) in tokens.enumerated() where Int(tok) >= vocabSize {
            throw fail("token \(i) is \(tok), expected < vocab size \(vocabSize)")
        }
        let kLow = min(policy.kMin, vocabSize)
        // Distinct ids per set through a small open-addressing table (K ≤ 4097): O(K), no sort.
        let tableSize = 1 << (Int.bitWidth - (2 * (policy.kMax + 1) - 1).leadingZeroBitCount)
        var table = [UInt32](repeating: .max, count: tableSize)
        let tableMask = tableSize - 1
        var used: [Int] = []
        used.reserveCapacity(policy.kMax + 1)
        for t in 0..<n {
            let lo = Int(setOffsets[t]), hi = Int(setOffsets[t + 1])
            guard lo <= hi else { throw fail("setOffsets decrease at position \(t)") }
            let k = hi - lo
            guard k >= kLow, k <= policy.kMax + 1 else {
                throw fail("position \(t) has K = \(k), expected \(kLow)…\(policy.kMax + 1)")
            }
            if k == policy.kMax + 1 && !goldForced[t] {
                throw fail("position \(t) has K = kMax + 1 = \(k) without gold_forced")
            }
            let gold = tokens[t + 1]
            var goldSeen = false
            var mass = 0.0
            used.removeAll(keepingCapacity: true)
            for j in lo..<hi {
                let id = ids[j], lp = logprobs[j]
                guard Int(id) < vocabSize else {
                    throw fail("position \(t) candidate \(j - lo) id \(id), expected < vocab size \(vocabSize)")
                }
                guard lp.isFinite, lp <= 0 else {
                    throw fail("position \(t) candidate \(j - lo) logprob \(lp), expected finite and ≤ 0")
                }
                if id == gold { goldSeen = true }
                mass += Double(exp(lp))
                var slot = Int(truncatingIfNeeded: (id &* 0x9E37_79B1) >> 7) & tableMask
                while table[slot] != .max {
                    if table[slot] == id {
                        throw fail("position \(t): candidate id \(id) appears twice")
                    }
                    slot = (slot + 1) & tableMask
                }
                table[slot] = id
                used.append(slot)
            }
            for u in used { table[u] = .max }
            guard goldSeen else { throw fail("position \(t): gold token \(gold) is not among its \(k) candidates") }
            // Σ p over a subset of the vocabulary cannot exceed 1 (beyond quantization and rounding).
            guard mass <= massBound else {
                throw fail("position \(t): candidate probabilities sum to \(mass), expected ≤ 1 (≤ \(massBound) with quantization; log-probs, not logits?)")
            }
            coverage.addPosition(k: k, coveredMass: mass, goldForced: goldForced[t])
        }
        return coverage
    }
}

/// One position's candidate set.
public struct CandidateSet: Sendable, Equatable {
    public var ids: [UInt32]
    public var logprobs: [Float]
    public var goldForced: Bool

    public init(ids: [UInt32], logprobs: [Float], goldForced: Bool) {
        self.ids = ids
        self.logprobs = logprobs
        self.goldForced = goldForced
    }

    /// Σ exp(lp): the teacher probability the set covers.
    public var coveredMass: Double { logprobs.reduce(0) { $0 + Double(exp($1)) } }
}
