import Foundation
import Parameters
import XCTest
@testable import Optim

/// Deterministic test randomness (SplitMix64; LogitCore's copy is not a dependency of Optim).
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    /// Uniform in [-1, 1).
    mutating func symmetric() -> Float { Float(unit() * 2 - 1) }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u1 = max(unit(), 1e-300), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// A store with the given shapes, values filled from `seed`.
func makeStore(_ shapes: [(String, [Int])], seed: UInt64 = 1) throws -> ParameterStore {
    let store = ParameterStore()
    var rng = TestRNG(seed)
    for (name, shape) in shapes {
        let t = try store.add(name: name, shape: shape)
        for i in 0..<t.count { t.value[i] = rng.symmetric() }
    }
    return store
}

/// Shapes with tails that are not multiples of 8 and one tensor large enough for the parallel
/// path (more than `WorkPlan.serialThreshold` elements in all, several chunks).
let mixedShapes: [(String, [Int])] = [
    ("w1", [37, 29]), ("b1", [29]), ("w2", [256, 260]), ("g", [7]), ("s", [1]),
]

func snapshot(_ store: ParameterStore) -> [[Float]] { store.tensors.map { Array($0.value) } }

func restore(_ store: ParameterStore, _ values: [[Float]]) {
    for (t, v) in zip(store.tensors, values) { for i in 0..<t.count { t.value[i] = v[i] } }
}

/// Gradient of a fixed random quadratic plus deterministic per-step noise: a function of
/// (parameters, step) only, so two runs from the same state see the same gradients.
func writeQuadraticGradients(_ store: ParameterStore, step: Int, scale: Float = 1, noise: Float = 0.5) {
    for (k, t) in store.tensors.enumerated() {
        var rng = TestRNG(UInt64(step) &* 1_000_003 &+ UInt64(k))
        for i in 0..<t.count {
            let curvature = Float(1 + (i % 5))
            let target = Float((i % 7) - 3) * 0.1
            t.grad[i] = scale * (curvature * (t.value[i] - target) + noise * rng.symmetric())
        }
    }
}

func bitsEqual(_ a: [[Float]], _ b: [[Float]]) -> Bool {
    zip(a, b).allSatisfy { x, y in x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern } }
}

func angle(_ a: [Double], _ b: [Double]) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in a.indices { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
    return acos(max(-1, min(1, dot / (na.squareRoot() * nb.squareRoot()))))
}

func norm(_ a: [Double]) -> Double { a.reduce(0) { $0 + $1 * $1 }.squareRoot() }

func assertThrowsMessage<T>(_ expression: @autoclosure () throws -> T, _ fragment: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
    }
}

/// The same without the large tensor, for tests that loop many times (debug builds are slow).
let smallShapes: [(String, [Int])] = [("w1", [37, 29]), ("b1", [29]), ("g", [7]), ("s", [1])]
