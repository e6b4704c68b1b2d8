import Foundation
import XCTest
@testable import LogitCore

final class SelectionErrorsAndNumericsTests: XCTestCase {
    func assertRejects(_ z: [Float], gold: UInt32 = 0, _ fragment: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        for path in ScanPath.available {
            let selector = try! TopKSelector(policy: .default, scanPath: path)
            XCTAssertThrowsError(try z.withUnsafeBufferPointer { try selector.select(row: $0, gold: gold, rowIndex: 12) },
                                 file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "path \(path): '\(error)' lacks '\(fragment)'", file: file, line: line)
            }
        }
    }

    func testRejectsNonFiniteLogitsNamingTheIndex() {
        for (v, at) in [(200, 7), (200, 130), (200, 199), (40, 3)] { // vector blocks and scalar tail
            for (bad, text) in [(Float.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf")] {
                var z = [Float](repeating: 0.5, count: v)
                z[at] = bad
                assertRejects(z, "invalid logits row 12: logit at index \(at) is \(text), expected a finite number")
            }
        }
        // Every lane −inf or NaN, not just one.
        assertRejects([Float](repeating: -.infinity, count: 128), "logit at index 0 is -inf")
        assertRejects([Float](repeating: .nan, count: 128), "logit at index 0 is nan")
        for path in ScanPath.available {
            let selector = try! TopKSelector(policy: .default, scanPath: path)
            for (at, bad, text) in [(70, Float16.infinity, "inf"), (5, -.infinity, "-inf"), (98, .nan, "nan")] {
                var h = [Float16](repeating: 1, count: 100)
                h[at] = bad
                XCTAssertThrowsError(try h.withUnsafeBufferPointer { try selector.select(row: $0, gold: 0) }) {
                    XCTAssertTrue("\($0)".contains("logit at index \(at) is \(text)"), "path \(path): \($0)")
                }
            }
            for (at, bad, text) in [(66, Float.nan, "nan"), (31, .infinity, "inf"), (99, -.infinity, "-inf")] {
                var b = [BFloat16](repeating: BFloat16(1), count: 100)
                b[at] = BFloat16(bad)
                XCTAssertThrowsError(try b.withUnsafeBufferPointer { try selector.select(row: $0, gold: 0) }) {
                    XCTAssertTrue("\($0)".contains("logit at index \(at) is \(text)"), "path \(path): \($0)")
                }
            }
        }
    }

    func testRejectsGoldOutsideVocabAndEmptyRow() {
        assertRejects([1, 2, 3], gold: 3, "gold id 3 is outside the vocabulary, expected < 3")
        assertRejects([], gold: 0, "invalid logits row 12: row is empty")
    }

    func testRejectsBadPolicies() {
        for (policy, text) in [(SelectionPolicy(tau: 0, kMin: 1, kMax: 4), "tau must be in (0, 1], got 0.0"),
                               (SelectionPolicy(tau: 1.5, kMin: 1, kMax: 4), "tau must be in (0, 1], got 1.5"),
                               (SelectionPolicy(tau: .nan, kMin: 1, kMax: 4), "tau must be in (0, 1]"),
                               (SelectionPolicy(tau: 0.9, kMin: 0, kMax: 4), "kMin must be ≥ 1, got 0"),
                               (SelectionPolicy(tau: 0.9, kMin: 5, kMax: 4), "kMin (5) must not exceed kMax (4)")] {
            XCTAssertThrowsError(try TopKSelector(policy: policy)) {
                XCTAssertTrue("\($0)".contains("invalid selection policy: \(text)"), "\($0)")
            }
        }
    }

    func testBatchErrorsNameTheRow() throws {
        let selector = try TopKSelector(policy: .default)
        var rows = [Float](repeating: 0, count: 100 * 6)
        rows[3 * 100 + 42] = .nan
        rows[5 * 100 + 1] = .infinity
        for threads in [1, 2, 3] {
            XCTAssertThrowsError(try rows.withUnsafeBufferPointer {
                try selector.selectBatch(rows: $0, vocab: 100, golds: [UInt32](repeating: 0, count: 6), threads: threads)
            }) { XCTAssertEqual("\($0)", "invalid logits row 3: logit at index 42 is nan, expected a finite number") }
        }
        XCTAssertThrowsError(try rows.withUnsafeBufferPointer {
            try selector.selectBatch(rows: $0, vocab: 100, golds: [0, 0, 0, 0, 0, 100])
        }) { XCTAssertTrue("\($0)".contains("row 3")) } // row 3 comes first; 5's bad gold is later
        XCTAssertThrowsError(try rows.withUnsafeBufferPointer {
            try selector.selectBatch(rows: $0, vocab: 100, golds: [0, 0, 0])
        }) { XCTAssertTrue("\($0)".contains("batch holds 600 logits, expected golds (3) × vocab (100)"), "\($0)") }
        XCTAssertThrowsError(try rows.withUnsafeBufferPointer {
            try selector.selectBatch(rows: $0, vocab: 0, golds: [0])
        }) { XCTAssertTrue("\($0)".contains("batch vocab is 0, expected ≥ 1"), "\($0)") }
    }

    func testFastExpRelativeError() {
        var worst = 0.0
        var x: Float = -87
        while x <= 0 {
            let v = ScanFloats((0..<scanLanes).map { x + Float($0) * 1e-3 })
            let e = fastExpNonPositive(v)
            for l in 0..<scanLanes where v[l] <= 0 {
                let exact = exp(Double(v[l]))
                worst = max(worst, abs(Double(e[l]) - exact) / exact)
            }
            x += 0.0173
        }
        XCTAssertLessThan(worst, 2.5e-7, "fast exp worst relative error \(worst)")
        XCTAssertEqual(fastExpNonPositive(ScanFloats(repeating: 0))[scanLanes - 1], 1)
        XCTAssertLessThan(fastExpNonPositive(ScanFloats(repeating: -1e30))[0], 1.3e-38)
        XCTAssertTrue(fastExpNonPositive(ScanFloats(repeating: .nan))[0].isNaN)
    }

    func testHalfWideningIsExactForEveryPattern() {
        var bitsH = [UInt16](repeating: 0, count: scanLanes)
        for start in stride(from: 0, to: 65_536, by: scanLanes) {
            for l in 0..<scanLanes { bitsH[l] = UInt16(start + l) }
            let halves = bitsH.map { Float16(bitPattern: $0) }
            let wide = halves.withUnsafeBufferPointer { Float16.loadVector($0.baseAddress!) }
            let bfs = bitsH.map { BFloat16(bitPattern: $0) }
            let bwide = bfs.withUnsafeBufferPointer { BFloat16.loadVector($0.baseAddress!) }
            for l in 0..<scanLanes {
                let want = Float(halves[l])
                if want.isNaN {
                    XCTAssertTrue(wide[l].isNaN && halves[l].widened.isNaN)
                } else {
                    XCTAssertEqual(wide[l].bitPattern, want.bitPattern, "half 0x\(String(bitsH[l], radix: 16))")
                    XCTAssertEqual(halves[l].widened.bitPattern, want.bitPattern)
                }
                XCTAssertEqual(bwide[l].bitPattern, bfs[l].floatValue.bitPattern)
                XCTAssertEqual(bfs[l].floatValue.bitPattern, UInt32(bitsH[l]) << 16)
            }
        }
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(BFloat16(1.0).bitPattern, 0x3F80)
        XCTAssertEqual(BFloat16(Float(bitPattern: 0x3F80_8000)).bitPattern, 0x3F80) // tie → even
        XCTAssertEqual(BFloat16(Float(bitPattern: 0x3F81_8000)).bitPattern, 0x3F82) // tie → even
        XCTAssertEqual(BFloat16(Float(bitPattern: 0x3F80_8001)).bitPattern, 0x3F81)
        XCTAssertEqual(BFloat16(-2.5).floatValue, -2.5)
        XCTAssertEqual(BFloat16(Float.greatestFiniteMagnitude).floatValue, .infinity)
        XCTAssertTrue(BFloat16(Float.nan).floatValue.isNaN)
        XCTAssertEqual(BFloat16(-Float.infinity).floatValue, -.infinity)
    }
}
