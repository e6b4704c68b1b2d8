import XCTest
@testable import LogitCore

final class SequenceRecordTests: XCTestCase {
    let policy = SelectionPolicy(tau: 0.9, kMin: 1, kMax: 3)

    func validRecord() -> SequenceRecord {
        SequenceRecord(key: "doc-1", tokens: [5, 7, 9], sets: [
            CandidateSet(ids: [7, 2], logprobs: [-0.1, -2.5], goldForced: false),
            CandidateSet(ids: [1, 3, 4, 9], logprobs: [-0.5, -1.5, -2.0, -9.0], goldForced: true),
        ])
    }

    func testValidRecordPasses() throws {
        try validRecord().validate(vocabSize: 10, policy: policy, logprobScale: 64)
    }

    func assertInvalid(_ record: SequenceRecord, vocab: Int = 10, _ fragment: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try record.validate(vocabSize: vocab, policy: policy, logprobScale: 64), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    func testRejectsEachBrokenInvariant() {
        var r = validRecord(); r.ids[3] = 12
        assertInvalid(r, "position 1 candidate 1 id 12, expected < vocab size 10")
        r = validRecord(); r.logprobs[0] = .nan
        assertInvalid(r, "position 0 candidate 0 logprob nan")
        r = validRecord(); r.logprobs[1] = 0.5
        assertInvalid(r, "expected finite and ≤ 0")
        r = validRecord(); r.ids[0] = 8
        assertInvalid(r, "gold token 7 is not among")
        r = validRecord(); r.ids[1] = 7
        assertInvalid(r, "appears twice")
        r = validRecord(); r.goldForced[1] = false
        assertInvalid(r, "without gold_forced")
        r = validRecord(); r.lossMask = [1]
        assertInvalid(r, "lossMask has 1 entries, expected 2")
        r = validRecord(); r.tokens[0] = 10
        assertInvalid(r, "token 0 is 10")
        r = validRecord(); r.logprobs = [-0.01, -0.02, -0.5, -1.5, -2.0, -9.0]
        assertInvalid(r, "sum to")
        r = validRecord(); r.key = ""
        assertInvalid(r, "key must be")
    }

    /// Σp may exceed 1 by what quantization at the dataset's scale can add (each lp off by at
    /// most 0.5/scale), no more: an export of stored sets imports again; logits are still caught.
    func testMassBoundFollowsTheQuantizationScale() throws {
        func record(mass: Double) -> SequenceRecord {
            let lp = Float(log(mass / 2))
            return SequenceRecord(key: "m", tokens: [1, 2], sets: [CandidateSet(ids: [2, 5], logprobs: [lp, lp], goldForced: false)])
        }
        XCTAssertEqual(SequenceRecord.maxCoveredMass(logprobScale: 64), exp(0.5 / 64) * 1.001, accuracy: 1e-12)
        try record(mass: 1.006).validate(vocabSize: 10, policy: policy, logprobScale: 64)  // ≤ e^(1/128) = 1.0078
        XCTAssertThrowsError(try record(mass: 1.006).validate(vocabSize: 10, policy: policy, logprobScale: 4096))
        XCTAssertThrowsError(try record(mass: 1.02).validate(vocabSize: 10, policy: policy, logprobScale: 64)) {
            XCTAssertTrue("\($0)".contains("sum to"), "\($0)")
        }
        try record(mass: 1.5).validate(vocabSize: 10, policy: policy, logprobScale: 1)  // e^0.5 = 1.65 at scale 1
    }

    func testPolicyValidation() {
        XCTAssertThrowsError(try SelectionPolicy(tau: 0, kMin: 1, kMax: 2).validate())
        XCTAssertThrowsError(try SelectionPolicy(tau: 1.5, kMin: 1, kMax: 2).validate())
        XCTAssertThrowsError(try SelectionPolicy(tau: .nan, kMin: 1, kMax: 2).validate())
        XCTAssertThrowsError(try SelectionPolicy(tau: 0.9, kMin: 0, kMax: 2).validate())
        XCTAssertThrowsError(try SelectionPolicy(tau: 0.9, kMin: 3, kMax: 2).validate())
        XCTAssertNoThrow(try SelectionPolicy(tau: 1, kMin: 2, kMax: 2).validate())
    }

    func testCoverageStatsQuantilesAndMerge() {
        var a = CoverageStats()
        a.add(validRecord())
        XCTAssertEqual(a.positions, 2)
        XCTAssertEqual(a.candidates, 6)
        XCTAssertEqual(a.goldForced, 1)
        XCTAssertEqual(a.kQuantile(0.5), 2)
        XCTAssertEqual(a.kQuantile(1.0), 4)
        var b = a
        b.merge(a)
        XCTAssertEqual(b.positions, 4)
        XCTAssertEqual(b.kHistogram[4], 2)
        XCTAssertEqual(b.coveredMassSum, 2 * a.coveredMassSum, accuracy: 1e-12)
    }

    func testSyntheticTeacherIsDeterministic() {
        let t = SyntheticTeacher(vocabSize: 1000, seed: 7)
        var a = [Float](repeating: 0, count: 1000), b = a
        let ga = a.withUnsafeMutableBufferPointer { t.fillRow(position: 3, into: $0) }
        let gb = b.withUnsafeMutableBufferPointer { SyntheticTeacher(vocabSize: 1000, seed: 7).fillRow(position: 3, into: $0) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(ga, gb)
        XCTAssertTrue(a.allSatisfy(\.isFinite))
    }
}
