import Foundation
import XCTest
@testable import TinyLM

/// Each layer's fp32 forward against a double-precision reference written out naively here,
/// and its fp32 backward against central differences of that reference.
final class LayerGradientTests: XCTestCase {

    // MARK: RMSNorm

    func rmsReference(_ x: [Double], _ w: [Double], n: Int, d: Int, eps: Double) -> [Double] {
        var y = [Double](repeating: 0, count: n * d)
        for t in 0..<n {
            var ss = 0.0
            for i in 0..<d { ss += x[t * d + i] * x[t * d + i] }
            let r = 1 / (ss / Double(d) + eps).squareRoot()
            for i in 0..<d { y[t * d + i] = x[t * d + i] * r * w[i] }
        }
        return y
    }

    func checkRMSNorm(n: Int, d: Int, sampled: Int?) {
        var rng = TestRNG(state: UInt64(n * 31 + d))
        let x = rng.floats(n * d, scale: 2), w = (0..<d).map { _ in 1 + Float(rng.signed()) * 0.5 }
        let r = rng.floats(n * d)
        let eps: Float = 1e-5
        var y = [Float](repeating: 0, count: n * d), rstd = [Float](repeating: 0, count: n)
        RMSNorm.forward(x: x, weight: w, y: &y, rstd: &rstd, n: n, d: d, epsilon: eps)
        let xd = x.map(Double.init), wd = w.map(Double.init), rd = r.map(Double.init)
        assertClose(y.map(Double.init), rmsReference(xd, wd, n: n, d: d, eps: Double(eps)), abs: 1e-6, rel: 1e-5, "RMSNorm forward")

        // Accumulating mode: dx and dw start at 1 and must end at 1 + gradient.
        var dx = [Float](repeating: 1, count: n * d), dw = [Float](repeating: 1, count: d)
        RMSNorm.backward(dy: r, x: x, weight: w, rstd: rstd, dx: &dx, dWeight: &dw, n: n, d: d, accumulate: true,
                         scratch: ActivationBuffer())
        let idx = sampled.map { k in (0..<k).map { ($0 * 7919) % (n * d) } } ?? Array(0..<(n * d))
        let gx = numericGradient(xd, indices: idx) { dotD(self.rmsReference($0, wd, n: n, d: d, eps: Double(eps)), rd) }
        let gw = numericGradient(wd) { dotD(self.rmsReference(xd, $0, n: n, d: d, eps: Double(eps)), rd) }
        assertClose(idx.map { Double(dx[$0]) - 1 }, gx, abs: 2e-5, rel: 2e-3, "RMSNorm dx")
        assertClose(dw.map { Double($0) - 1 }, gw, abs: 2e-5, rel: 2e-3, "RMSNorm dweight")

        // Overwrite mode gives the same gradient.
        var dx2 = [Float](repeating: 99, count: n * d), dw2 = [Float](repeating: 0, count: d)
        RMSNorm.backward(dy: r, x: x, weight: w, rstd: rstd, dx: &dx2, dWeight: &dw2, n: n, d: d, accumulate: false,
                         scratch: ActivationBuffer())
        assertClose(dx2.map(Double.init), dx.map { Double($0) - 1 }, abs: 1e-6, rel: 1e-5, "RMSNorm overwrite vs accumulate")
    }

    func testRMSNormSerial() { checkRMSNorm(n: 3, d: 13, sampled: nil) }
    func testRMSNormParallelRows() { checkRMSNorm(n: 300, d: 64, sampled: 97) }

    // MARK: Rotary

    func ropeReference(_ x: [Double], positions: [Int], heads: Int, hd: Int, theta: Double) -> [Double] {
        var y = x
        let half = hd / 2, width = heads * hd
        for (t, p) in positions.enumerated() {
            for h in 0..<heads {
                for i in 0..<half {
                    let angle = Double(p) * pow(theta, -2 * Double(i) / Double(hd))
                    let a = x[t * width + h * hd + i], b = x[t * width + h * hd + i + half]
                    y[t * width + h * hd + i] = a * cos(angle) - b * sin(angle)
                    y[t * width + h * hd + i + half] = a * sin(angle) + b * cos(angle)
                }
            }
        }
        return y
    }

    func testRotaryMatchesReferenceAndInverseIsGradient() {
        let heads = 3, hd = 6, theta: Float = 10000
        let positions = [0, 1, 2, 3, 4, 0, 1, 2, 1500]
        let table = RotaryTable(headDim: hd, maxPositions: 2000, theta: theta)
        var rng = TestRNG(state: 3)
        let n = positions.count, width = heads * hd
        let x = rng.floats(n * width), r = rng.floats(n * width)
        let pos32 = positions.map(Int32.init)
        var y = x
        table.apply(&y, positions: pos32, n: n, heads: heads, inverse: false)
        let ref = ropeReference(x.map(Double.init), positions: positions, heads: heads, hd: hd, theta: Double(theta))
        assertClose(y.map(Double.init), ref, abs: 2e-6, rel: 1e-5, "RoPE forward")
        // Position 0 is the identity.
        XCTAssertEqual(Array(y[0..<width]), Array(x[0..<width]))
        // Backward = inverse rotation of the upstream gradient.
        var g = r
        table.apply(&g, positions: pos32, n: n, heads: heads, inverse: true)
        let fd = numericGradient(x.map(Double.init)) {
            dotD(self.ropeReference($0, positions: positions, heads: heads, hd: hd, theta: Double(theta)), r.map(Double.init))
        }
        assertClose(g.map(Double.init), fd, abs: 1e-6, rel: 1e-4, "RoPE backward")
        // Inverse undoes forward.
        table.apply(&y, positions: pos32, n: n, heads: heads, inverse: true)
        assertClose(y.map(Double.init), x.map(Double.init), abs: 1e-6, rel: 1e-5, "RoPE inverse ∘ forward")
    }

    // MARK: Attention

    struct AttnCase {
        let rows: [Int32]
        let heads: Int, kvHeads: Int, hd: Int
        var n: Int { Int(rows.last!) }
    }

    func attentionReference(q: [Double], k: [Double], v: [Double], c: AttnCase) -> [Double] {
        let qw = c.heads * c.hd, kw = c.kvHeads * c.hd, group = c.heads / c.kvHeads
        var y = [Double](repeating: 0, count: c.n * qw)
        let scale = 1 / Double(c.hd).squareRoot()
        for r in 0..<(c.rows.count - 1) {
            let s0 = Int(c.rows[r]), len = Int(c.rows[r + 1]) - s0
            for h in 0..<c.heads {
                let hk = h / group
                for i in 0..<len {
                    var scores = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        var s = 0.0
                        for e in 0..<c.hd { s += q[(s0 + i) * qw + h * c.hd + e] * k[(s0 + j) * kw + hk * c.hd + e] }
                        scores[j] = s * scale
                    }
                    let mx = scores.max()!
                    let ex = scores.map { exp($0 - mx) }
                    let z = ex.reduce(0, +)
                    for j in 0...i {
                        for e in 0..<c.hd { y[(s0 + i) * qw + h * c.hd + e] += ex[j] / z * v[(s0 + j) * kw + hk * c.hd + e] }
                    }
                }
            }
        }
        return y
    }

    func checkAttention(_ c: AttnCase, samples: Int?) {
        var rng = TestRNG(state: UInt64(c.n * 13 + c.heads))
        let qw = c.heads * c.hd, kw = c.kvHeads * c.hd
        let q = rng.floats(c.n * qw, scale: 1.5), k = rng.floats(c.n * kw, scale: 1.5), v = rng.floats(c.n * kw)
        let r = rng.floats(c.n * qw)
        var maxLen = 0
        for i in 0..<(c.rows.count - 1) { maxLen = max(maxLen, Int(c.rows[i + 1] - c.rows[i])) }
        let shape = AttentionShape(heads: c.heads, kvHeads: c.kvHeads, headDim: c.hd)
        var y = [Float](repeating: .nan, count: c.n * qw)
        var dq = [Float](repeating: .nan, count: c.n * qw), dk = [Float](repeating: .nan, count: c.n * kw)
        var dv = [Float](repeating: .nan, count: c.n * kw)
        c.rows.withUnsafeBufferPointer { rows in
            let packed = PackedRows(rowStart: rows.baseAddress!, rows: c.rows.count - 1, maxLength: maxLen)
            // Backward recomputes P in its own scratch; the forward's scratch holds only the last row's.
            Attention.forward(q: q, k: k, v: v, y: &y, rows: packed, shape: shape, scratch: ActivationBuffer())
            Attention.backward(dy: r, q: q, k: k, v: v, dq: &dq, dk: &dk, dv: &dv, rows: packed, shape: shape,
                               probScratch: ActivationBuffer(), scratch: ActivationBuffer())
        }
        let qd = q.map(Double.init), kd = k.map(Double.init), vd = v.map(Double.init), rd = r.map(Double.init)
        assertClose(y.map(Double.init), attentionReference(q: qd, k: kd, v: vd, c: c), abs: 1e-5, rel: 1e-4, "attention forward")
        func pick(_ count: Int) -> [Int] { samples.map { s in (0..<min(s, count)).map { ($0 * 7919) % count } } ?? Array(0..<count) }
        let iq = pick(qd.count), ik = pick(kd.count), iv = pick(vd.count)
        let gq = numericGradient(qd, indices: iq) { dotD(self.attentionReference(q: $0, k: kd, v: vd, c: c), rd) }
        let gk = numericGradient(kd, indices: ik) { dotD(self.attentionReference(q: qd, k: $0, v: vd, c: c), rd) }
        let gv = numericGradient(vd, indices: iv) { dotD(self.attentionReference(q: qd, k: kd, v: $0, c: c), rd) }
        assertClose(iq.map { Double(dq[$0]) }, gq, abs: 3e-5, rel: 2e-3, "attention dq")
        assertClose(ik.map { Double(dk[$0]) }, gk, abs: 3e-5, rel: 2e-3, "attention dk (grouped heads summed)")
        assertClose(iv.map { Double(dv[$0]) }, gv, abs: 3e-5, rel: 2e-3, "attention dv (grouped heads summed)")
    }

    /// Four query heads on two kv heads, a head width with a SIMD tail (10 = 8 + 2), rows of
    /// different lengths including an empty one.
    func testGroupedQueryAttentionSmall() {
        checkAttention(AttnCase(rows: [0, 5, 8, 8, 12], heads: 4, kvHeads: 2, hd: 10), samples: nil)
    }

    /// Large enough to take the parallel path; one kv head for all three query heads.
    func testGroupedQueryAttentionParallel() {
        checkAttention(AttnCase(rows: [0, 40, 70], heads: 3, kvHeads: 1, hd: 16), samples: 60)
    }

    /// kvHeads == heads is plain multi-head attention.
    func testMultiHeadAttention() {
        checkAttention(AttnCase(rows: [0, 6, 9], heads: 2, kvHeads: 2, hd: 8), samples: nil)
    }

    // MARK: SwiGLU

    func swigluReference(x: [Double], wg: [Double], wu: [Double], wd: [Double], n: Int, d: Int, ffn: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * d)
        for t in 0..<n {
            var h = [Double](repeating: 0, count: ffn)
            for f in 0..<ffn {
                var g = 0.0, u = 0.0
                for i in 0..<d { g += x[t * d + i] * wg[f * d + i]; u += x[t * d + i] * wu[f * d + i] }
                h[f] = g / (1 + exp(-g)) * u
            }
            for o in 0..<d { for f in 0..<ffn { out[t * d + o] += h[f] * wd[o * ffn + f] } }
        }
        return out
    }

    func testSwiGLU() {
        let n = 4, d = 8, ffn = 12
        var rng = TestRNG(state: 11)
        let x = rng.floats(n * d, scale: 1.5), wg = rng.floats(ffn * d), wu = rng.floats(ffn * d), wd = rng.floats(d * ffn)
        let r = rng.floats(n * d)
        var g = [Float](repeating: 0, count: n * ffn), u = g, h = g
        var out = [Float](repeating: 0.5, count: n * d)   // forward adds into the residual stream
        SwiGLU.forward(x: x, wGate: wg, wUp: wu, wDown: wd, g: &g, u: &u, h: &h, out: &out, n: n, d: d, ffn: ffn)
        let xd = x.map(Double.init), gd = wg.map(Double.init), ud = wu.map(Double.init), dd = wd.map(Double.init)
        let rd = r.map(Double.init)
        assertClose(out.map { Double($0) - 0.5 }, swigluReference(x: xd, wg: gd, wu: ud, wd: dd, n: n, d: d, ffn: ffn),
                    abs: 1e-5, rel: 1e-4, "SwiGLU forward")
        var dx = [Float](repeating: .nan, count: n * d)
        var dWg = [Float](repeating: 0, count: ffn * d), dWu = dWg, dWd = [Float](repeating: 0, count: d * ffn)
        var dh = [Float](repeating: 0, count: n * ffn), du = dh
        SwiGLU.backward(dOut: r, x: x, g: g, u: u, wGate: wg, wUp: wu, wDown: wd, dWGate: &dWg, dWUp: &dWu, dWDown: &dWd,
                        dx: &dx, dh: &dh, du: &du, n: n, d: d, ffn: ffn)
        let f = { (x: [Double], wg: [Double], wu: [Double], wd: [Double]) in
            dotD(self.swigluReference(x: x, wg: wg, wu: wu, wd: wd, n: n, d: d, ffn: ffn), rd)
        }
        assertClose(dx.map(Double.init), numericGradient(xd) { f($0, gd, ud, dd) }, abs: 3e-5, rel: 2e-3, "SwiGLU dx")
        assertClose(dWg.map(Double.init), numericGradient(gd) { f(xd, $0, ud, dd) }, abs: 3e-5, rel: 2e-3, "SwiGLU dW_gate")
        assertClose(dWu.map(Double.init), numericGradient(ud) { f(xd, gd, $0, dd) }, abs: 3e-5, rel: 2e-3, "SwiGLU dW_up")
        assertClose(dWd.map(Double.init), numericGradient(dd) { f(xd, gd, ud, $0) }, abs: 3e-5, rel: 2e-3, "SwiGLU dW_down")
    }
}
