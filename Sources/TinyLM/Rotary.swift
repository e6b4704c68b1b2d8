import Foundation

/// Rotary position embedding (RoPE), "rotate-half" layout as in Hugging Face Llama: inside each
/// head of width h, feature i pairs with feature i + h/2 and the pair turns by angle
/// `position · θ^(−2i/h)`. Positions restart at 0 in every row of a packed batch.
///
/// A rotation is orthogonal, so the backward pass is the same rotation by the negative angle;
/// nothing but the positions needs saving.
struct RotaryTable: Sendable {
    let headDim: Int
    let maxPositions: Int
    /// cos and sin of position · frequency, [maxPositions × headDim/2].
    let cosines: [Float]
    let sines: [Float]

    init(headDim: Int, maxPositions: Int, theta: Float) {
        self.headDim = headDim
        self.maxPositions = maxPositions
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPositions * half)
        var s = [Float](repeating: 0, count: maxPositions * half)
        for p in 0..<maxPositions {
            for i in 0..<half {
                // Double: angles reach ~65k radians, where fp32 would lose the fraction.
                let angle = Double(p) * pow(Double(theta), -2 * Double(i) / Double(headDim))
                c[p * half + i] = Float(cos(angle))
                s[p * half + i] = Float(sin(angle))
            }
        }
        cosines = c
        sines = s
    }

    /// Rotates, in place, every head of every token of `x` ([n × heads·headDim]) by the token's
    /// position; `inverse` rotates backwards (the gradient of the forward rotation).
    func apply(_ x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, n: Int, heads: Int, inverse: Bool) {
        let half = headDim / 2, width = heads * headDim
        let sign: Float = inverse ? -1 : 1
        nonisolated(unsafe) let x = x, positions = positions
        let tasks = taskCount(items: n, work: n * width)
        cosines.withUnsafeBufferPointer { cb in
            sines.withUnsafeBufferPointer { sb in
                nonisolated(unsafe) let cb = cb.baseAddress!, sb = sb.baseAddress!
                parallelTasks(tasks) { task in
                    for t in share(task, of: tasks, n) {
                        let c = cb + Int(positions[t]) * half, s = sb + Int(positions[t]) * half
                        for h in 0..<heads {
                            let x1 = x + t * width + h * headDim, x2 = x1 + half
                            for i in 0..<half {
                                let a = x1[i], b = x2[i], si = sign * s[i]
                                x1[i] = a * c[i] - b * si
                                x2[i] = a * si + b * c[i]
                            }
                        }
                    }
                }
            }
        }
    }
}
