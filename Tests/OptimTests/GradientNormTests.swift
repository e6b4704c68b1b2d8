import Parameters
import XCTest
@testable import Optim

/// The global-norm clip's norm and scale run chunked and in parallel; they must equal a plain
/// Double loop over every element, whatever the chunking (tails of 1–7 lanes, tensors split over
/// chunks, several tensors).
final class GradientNormTests: XCTestCase {
    func store(_ counts: [Int]) throws -> ParameterStore {
        let store = ParameterStore()
        var rng = TestRNG(5)
        for (i, n) in counts.enumerated() {
            let t = try store.add(name: "t\(i)", shape: [n])
            for j in 0..<n { t.grad[j] = Float(rng.normal()) * (j % 97 == 0 ? 1e3 : 1e-3) }
        }
        return store
    }

    func testNormAndScaleEqualAPlainLoop() throws {
        for counts in [[1], [7], [8, 9], [3, 1 << 20, 13], [300_007, 17, 2_000_003]] {
            let store = try store(counts)
            let opt = try AdamW(store: store, schedule: .constant(1e-3))
            let reference = store.tensors.reduce(0.0) { acc, t in t.grad.reduce(acc) { $0 + Double($1) * Double($1) } }.squareRoot()
            let norm = opt.gradientNorm()
            // Both sum in Double; a sequential sum of n terms is good to about n·ε ≈ 2e-10 here.
            XCTAssertEqual(norm, reference, accuracy: 1e-9 * reference, "\(counts)")
            XCTAssertEqual(opt.gradientNorm(), norm, "\(counts): not deterministic")
            let before = store.tensors.map { Array($0.grad) }
            opt.scaleGradients(by: 0.25)
            for (t, old) in zip(store.tensors, before) {
                XCTAssertEqual(Array(t.grad), old.map { $0 * 0.25 }, "\(counts): \(t.name) not scaled element by element")
            }
        }
    }

    func testANaNAnywhereMakesTheNormNotFinite() throws {
        let store = try store([1_000, 99_999])
        let opt = try MoClip(store: store, schedule: .constant(1e-3))
        store.tensors[1].grad[99_998] = .nan  // in the last lane tail
        XCTAssertTrue(opt.gradientNorm().isNaN)
        store.tensors[1].grad[99_998] = .infinity
        XCTAssertEqual(opt.gradientNorm(), .infinity)
    }
}
