/// RMSNorm over each row of d features: `y = w ⊙ x · r`, `r = 1/√(mean(x²) + ε)`.
///
/// Backward, with x̂ = x·r and g = dy ⊙ w:
///   dw += Σ_rows dy ⊙ x̂,   dx = r · (g − x̂ · mean(g ⊙ x̂)).
/// Rows run in parallel; dw is summed per task into `scratch` and reduced afterwards, so no
/// two threads write the same gradient element.
enum RMSNorm {
    static func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>, n: Int, d: Int, epsilon: Float) {
        nonisolated(unsafe) let x = x, weight = weight, y = y, rstd = rstd
        let tasks = taskCount(items: n, work: n * d)
        parallelTasks(tasks) { task in
            for t in share(task, of: tasks, n) {
                let xt = x + t * d, yt = y + t * d
                let r = 1 / (dot(xt, xt, d) / Float(d) + epsilon).squareRoot()
                rstd[t] = r
                for i in 0..<d { yt[i] = xt[i] * r * weight[i] }
            }
        }
    }

    /// dx is overwritten, or added to when `accumulate` (the residual stream's gradient).
    static func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         rstd: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                         n: Int, d: Int, accumulate: Bool, scratch: ActivationBuffer) {
        let tasks = taskCount(items: n, work: n * d)
        nonisolated(unsafe) let dy = dy, x = x, weight = weight, rstd = rstd, dx = dx
        nonisolated(unsafe) let partial = scratch.reserve(max(tasks, 1) * d)
        parallelTasks(tasks) { task in
            let dw = partial + task * d
            dw.update(repeating: 0, count: d)
            for t in share(task, of: tasks, n) {
                let xt = x + t * d, dyt = dy + t * d, dxt = dx + t * d
                let r = rstd[t]
                var mean: Float = 0
                for i in 0..<d {
                    let xhat = xt[i] * r
                    dw[i] += dyt[i] * xhat
                    mean += dyt[i] * weight[i] * xhat
                }
                mean /= Float(d)
                if accumulate {
                    for i in 0..<d { dxt[i] += r * (dyt[i] * weight[i] - xt[i] * r * mean) }
                } else {
                    for i in 0..<d { dxt[i] = r * (dyt[i] * weight[i] - xt[i] * r * mean) }
                }
            }
        }
        for task in 0..<tasks { axpy(1, partial + task * d, dWeight, d) }
    }
}
