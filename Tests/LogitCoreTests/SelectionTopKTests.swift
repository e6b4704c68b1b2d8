import Foundation
import XCTest
@testable import LogitCore

/// The definition, written the slow obvious way: Double log-softmax, full sort (ties by id),
/// cumulative mass to τ, clamp, force the gold.
func referenceSelection(_ z: [Float], gold: UInt32, policy: SelectionPolicy) -> SelectedSet {
    let v = z.count
    let m = z.map(Double.init).max()!
    let s = z.reduce(0.0) { $0 + exp(Double($1) - m) }
    let order = (0..<v).sorted { a, b in z[a] != z[b] ? z[a] > z[b] : a < b }
    var k = v
    var cumulative = 0.0
    for (j, id) in order.enumerated() {
        cumulative += exp(Double(z[id]) - m) / s
        if cumulative >= policy.tau { k = j + 1; break }
    }
    k = min(max(k, min(policy.kMin, v)), policy.kMax)
    var ids = order[0..<k].map { UInt32($0) }
    if !ids.contains(gold) { ids.append(gold) }
    let lps = ids.map { Double(z[Int($0)]) - m - log(s) }
    return SelectedSet(ids: ids, logprobs: lps.map { max(Float($0), -.greatestFiniteMagnitude) },
                       goldForced: !order[0..<k].contains(Int(gold)),
                       coveredMass: lps.reduce(0) { $0 + exp($1) })
}

func assertMatches(_ got: SelectedSet, _ want: SelectedSet, _ what: String,
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.ids, want.ids, "ids differ: \(what)", file: file, line: line)
    XCTAssertEqual(got.goldForced, want.goldForced, "goldForced differs: \(what)", file: file, line: line)
    XCTAssertEqual(got.logprobs.count, want.logprobs.count, "logprob count: \(what)", file: file, line: line)
    for (a, b) in zip(got.logprobs, want.logprobs) where !(abs(a - b) <= 1e-5 * max(1, abs(b))) {
        XCTFail("logprob \(a) vs reference \(b): \(what)", file: file, line: line)
        break
    }
    XCTAssertEqual(got.coveredMass, want.coveredMass, accuracy: 1e-5, "coveredMass: \(what)", file: file, line: line)
}

final class SelectionTopKTests: XCTestCase {
    var rng = SplitMix64(seed: 0xC0FFEE)

    func gaussian() -> Float {
        let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    /// Checks every row scan this CPU runs (portable Swift, and the AVX2+FMA kernel where
    /// present) against the reference, for Float32 and both half types.
    func check(_ z: [Float], gold: UInt32, _ policy: SelectionPolicy, _ what: String,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let want = referenceSelection(z, gold: gold, policy: policy)
        let h = z.map { Float16($0) }
        let wantH = h.allSatisfy({ $0.isFinite }) ? referenceSelection(h.map { Float($0) }, gold: gold, policy: policy) : nil
        let b = z.map { BFloat16($0) }
        let wantB = b.allSatisfy({ $0.floatValue.isFinite }) ? referenceSelection(b.map(\.floatValue), gold: gold, policy: policy) : nil
        for path in ScanPath.available {
            let selector = try TopKSelector(policy: policy, scanPath: path)
            let got = try z.withUnsafeBufferPointer { try selector.select(row: $0, gold: gold) }
            assertMatches(got, want, "Float32 \(what) policy \(policy) path \(path)", file: file, line: line)
            // Half types: the reference sees the same widened values.
            if let wantH {
                let gotH = try h.withUnsafeBufferPointer { try selector.select(row: $0, gold: gold) }
                assertMatches(gotH, wantH, "Float16 \(what) path \(path)", file: file, line: line)
            }
            if let wantB {
                let gotB = try b.withUnsafeBufferPointer { try selector.select(row: $0, gold: gold) }
                assertMatches(gotB, wantB, "BFloat16 \(what) path \(path)", file: file, line: line)
            }
        }
    }

    func testRandomRowsMatchFullSort() throws {
        let vocabs = [1, 2, 3, 15, 16, 63, 64, 65, 127, 130, 1000, 4099]
        let policies = [SelectionPolicy(tau: 0.95, kMin: 1, kMax: 64), SelectionPolicy(tau: 0.5, kMin: 2, kMax: 8),
                        SelectionPolicy(tau: 0.999, kMin: 1, kMax: 300), SelectionPolicy(tau: 0.3, kMin: 5, kMax: 5),
                        SelectionPolicy(tau: 1, kMin: 1, kMax: 20)]
        for v in vocabs {
            for policy in policies {
                for trial in 0..<3 {
                    let scale = Float([0.3, 2, 12][trial])
                    var z = (0..<v).map { _ in scale * gaussian() }
                    if trial == 2 { z = z.map { ($0 / 4).rounded() } } // coarse: many ties
                    let gold = UInt32(rng.next() % UInt64(v))
                    try check(z, gold: gold, policy, "random V=\(v) trial \(trial)")
                }
            }
        }
    }

    func testUniformRowTakesLowestIds() throws {
        // V = 1024: each p is 2^-10, so the cumulative mass hits τ = 0.5 exactly at 512.
        let z = [Float](repeating: 1.25, count: 1024)
        try check(z, gold: 3, SelectionPolicy(tau: 0.5, kMin: 1, kMax: 600), "uniform")
        let got = try TopKSelector(policy: .init(tau: 0.5, kMin: 1, kMax: 600))
            .select(row: z.withUnsafeBufferPointer { $0 }, gold: 1000)
        XCTAssertEqual(Array(got.ids.prefix(512)), (0..<512).map { UInt32($0) })
        XCTAssertEqual(got.ids.count, 513)
        XCTAssertTrue(got.goldForced)
        XCTAssertEqual(got.logprobs[0], Float(-log(1024.0)), accuracy: 1e-6)
        // K_max caps a long tie; the strict threshold must still keep the lowest ids.
        let long = [Float](repeating: -3, count: 20_000)
        try check(long, gold: 19_999, SelectionPolicy(tau: 0.95, kMin: 1, kMax: 64), "long tie")
    }

    func testTieStraddlingTau() throws {
        // Ten equal logits at scattered ids hold 10·e^6/(10·e^6 + 190) ≈ 0.955 of the mass
        // (0.0955 each); τ = 0.5 stops inside the tie group, which must yield its lowest ids.
        var z = [Float](repeating: 0, count: 200)
        let top: [Int] = [191, 7, 150, 64, 65, 3, 128, 99, 180, 42]
        for id in top { z[id] = 6 }
        for tau in [0.5, 0.55, 0.9, 0.95, 0.999] {
            try check(z, gold: 0, SelectionPolicy(tau: tau, kMin: 1, kMax: 64), "tie group τ=\(tau)")
        }
        let got = try TopKSelector(policy: .init(tau: 0.5, kMin: 1, kMax: 64)).select(row: z.withUnsafeBufferPointer { $0 }, gold: 42)
        XCTAssertEqual(got.ids, [3, 7, 42, 64, 65, 99])
        XCTAssertFalse(got.goldForced)
        // −0 and +0 are the same logit: ids decide.
        let zeros: [Float] = [-5, 0, -0.0, -5, 0, -0.0]
        let z2 = try TopKSelector(policy: .init(tau: 0.7, kMin: 1, kMax: 6)).select(row: zeros.withUnsafeBufferPointer { $0 }, gold: 1)
        XCTAssertEqual(z2.ids, [1, 2, 4])
    }

    func testOneHotAndKMin() throws {
        var z = [Float](repeating: 0, count: 300)
        z[217] = 1000
        for tau in [0.5, 0.95, 1.0] {
            let policy = SelectionPolicy(tau: tau, kMin: 1, kMax: 64)
            try check(z, gold: 217, policy, "one-hot τ=\(tau)")
            let got = try TopKSelector(policy: policy).select(row: z.withUnsafeBufferPointer { $0 }, gold: 217)
            XCTAssertEqual(got.ids, [217])
            XCTAssertEqual(got.logprobs, [0])
        }
        // kMin above the τ-prefix: ties after the winner by id.
        let got = try TopKSelector(policy: .init(tau: 0.9, kMin: 4, kMax: 8)).select(row: z.withUnsafeBufferPointer { $0 }, gold: 217)
        XCTAssertEqual(got.ids, [217, 0, 1, 2])
        try check(z, gold: 5, SelectionPolicy(tau: 0.9, kMin: 4, kMax: 8), "kMin > prefix, gold forced")
    }

    func testTauOneTakesKMaxAndKMaxCaps() throws {
        let z = (0..<5000).map { _ in gaussian() }
        let got = try TopKSelector(policy: .init(tau: 1, kMin: 1, kMax: 77)).select(row: z.withUnsafeBufferPointer { $0 }, gold: 0)
        XCTAssertEqual(got.ids.count - (got.goldForced ? 1 : 0), 77)
        let flat = try TopKSelector(policy: .init(tau: 0.99, kMin: 1, kMax: 8)).select(row: z.withUnsafeBufferPointer { $0 }, gold: 0)
        XCTAssertEqual(flat.ids.count - (flat.goldForced ? 1 : 0), 8)
        try check(z, gold: 0, SelectionPolicy(tau: 1, kMin: 1, kMax: 77), "τ=1")
    }

    func testGoldForcedAndInside() throws {
        let z = (0..<2000).map { Float($0 % 97) * 0.1 - Float($0) * 1e-4 }
        let argmin = UInt32(z.indices.min { z[$0] < z[$1] }!)
        let forced = try TopKSelector(policy: .default).select(row: z.withUnsafeBufferPointer { $0 }, gold: argmin)
        XCTAssertTrue(forced.goldForced)
        XCTAssertEqual(forced.ids.last, argmin)
        try check(z, gold: argmin, .default, "gold forced")
        let inside = try TopKSelector(policy: .default).select(row: z.withUnsafeBufferPointer { $0 }, gold: forced.ids[0])
        XCTAssertFalse(inside.goldForced)
        XCTAssertEqual(inside.ids, Array(forced.ids.dropLast()))
        // The forced set of a capped row holds kMax + 1 ids.
        let capped = try TopKSelector(policy: .init(tau: 0.999, kMin: 1, kMax: 4)).select(row: z.withUnsafeBufferPointer { $0 }, gold: argmin)
        XCTAssertEqual(capped.ids.count, 5)
    }

    func testSmallVocabularies() throws {
        try check([0.5], gold: 0, SelectionPolicy(tau: 0.9, kMin: 3, kMax: 10), "V=1")
        try check([0.5, 0.5], gold: 1, SelectionPolicy(tau: 0.9, kMin: 3, kMax: 10), "V=2 tie")
        try check([-1, 2], gold: 0, SelectionPolicy(tau: 0.5, kMin: 1, kMax: 1), "V=2 forced")
        let got = try TopKSelector(policy: .init(tau: 0.9, kMin: 5, kMax: 10)).select(row: [Float]([3, 1, 2]).withUnsafeBufferPointer { $0 }, gold: 1)
        XCTAssertEqual(got.ids, [0, 2, 1]) // V < kMin: the whole vocabulary
        XCTAssertEqual(got.coveredMass, 1, accuracy: 1e-9)
    }

    func testHugeMagnitudes() throws {
        var z = (0..<700).map { _ in Float([-1e30, 0, 1e30, 3e29][Int(rng.next() % 4)]) }
        z[5] = 1e30
        try check(z, gold: 1, .default, "±1e30")
        try check(z, gold: 1, SelectionPolicy(tau: 1, kMin: 1, kMax: 1000), "±1e30 all")
        // A logit range beyond Float: lp is clamped to the most negative finite Float.
        var wide = [Float](repeating: -3e38, count: 100)
        wide[9] = 3e38
        let got = try TopKSelector(policy: .default).select(row: wide.withUnsafeBufferPointer { $0 }, gold: 2)
        XCTAssertEqual(got.ids, [9, 2])
        XCTAssertEqual(got.logprobs, [0, -.greatestFiniteMagnitude])
    }

    func testLargestKMax() throws {
        // kMax at its ceiling: the pool holds up to 2·4096 + one block of keys.
        let z = (0..<12_000).map { _ in 0.5 * gaussian() }
        try check(z, gold: 11_999, SelectionPolicy(tau: 1, kMin: 1, kMax: SelectionPolicy.kMaxLimit), "kMax 4096")
        try check(z, gold: 7, SelectionPolicy(tau: 0.3, kMin: 4000, kMax: SelectionPolicy.kMaxLimit), "kMin 4000")
    }

    func testRisingAndFallingRows() throws {
        // Rising: every block beats the threshold (worst case for the candidate buffer).
        let rising = (0..<10_000).map { Float($0) * 1e-3 }
        try check(rising, gold: 5, SelectionPolicy(tau: 0.95, kMin: 1, kMax: 32), "rising")
        try check(Array(rising.reversed()), gold: 5, SelectionPolicy(tau: 0.95, kMin: 1, kMax: 32), "falling")
    }

    func testSyntheticTeacherRows() throws {
        let teacher = SyntheticTeacher(vocabSize: 20_000, seed: 7)
        var row = [Float](repeating: 0, count: teacher.vocabSize)
        for p in 0..<6 {
            let gold = row.withUnsafeMutableBufferPointer { teacher.fillRow(position: p, into: $0) }
            try check(row, gold: gold, .default, "synthetic position \(p)")
        }
    }

    func testBatchEqualsPerRow() throws {
        let v = 3001, n = 37
        let rows = (0..<(v * n)).map { _ in 2 * gaussian() }
        let golds = (0..<n).map { _ in UInt32(rng.next() % UInt64(v)) }
        let selector = try TopKSelector(policy: .default)
        let single = try (0..<n).map { r in
            try rows.withUnsafeBufferPointer { buf in
                try selector.select(row: UnsafeBufferPointer(rebasing: buf[(r * v)..<((r + 1) * v)]), gold: golds[r])
            }
        }
        for threads in [nil, 1, 2, 5] {
            let batch = try rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: v, golds: golds, threads: threads) }
            XCTAssertEqual(batch, single, "threads \(String(describing: threads))")
        }
        let half = rows.map { Float16($0) }, bf = rows.map { BFloat16($0) }
        let hb = try half.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: v, golds: golds, threads: 2) }
        let bb = try bf.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: v, golds: golds, threads: 2) }
        for r in 0..<n {
            let hr = try half.withUnsafeBufferPointer { try selector.select(row: UnsafeBufferPointer(rebasing: $0[(r * v)..<((r + 1) * v)]), gold: golds[r]) }
            let br = try bf.withUnsafeBufferPointer { try selector.select(row: UnsafeBufferPointer(rebasing: $0[(r * v)..<((r + 1) * v)]), gold: golds[r]) }
            XCTAssertEqual(hb[r], hr)
            XCTAssertEqual(bb[r], br)
        }
        let empty = try [Float]().withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: v, golds: []) }
        XCTAssertEqual(empty, [])
    }

    func testSequenceRecordFromSelections() throws {
        let teacher = SyntheticTeacher(vocabSize: 5000, seed: 3)
        var row = [Float](repeating: 0, count: teacher.vocabSize)
        let selector = try TopKSelector(policy: .default)
        var tokens: [UInt32] = [11]
        var sets: [SelectedSet] = []
        for p in 0..<4 {
            let gold = row.withUnsafeMutableBufferPointer { teacher.fillRow(position: p, into: $0) }
            tokens.append(gold)
            sets.append(try row.withUnsafeBufferPointer { try selector.select(row: $0, gold: gold) })
        }
        let record = SequenceRecord(key: "s", tokens: tokens, selected: sets)
        try record.validate(vocabSize: teacher.vocabSize, policy: .default, logprobScale: 64)
        for t in 0..<4 { XCTAssertEqual(record.set(at: t), sets[t].candidateSet) }
    }
}
