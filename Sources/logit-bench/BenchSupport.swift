import Foundation

/// Monotonic wall-clock seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Best-of-`repeats` seconds of `body`: the minimum is the least noisy estimate here.
func bestTime(repeats: Int = 3, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<max(repeats, 1) {
        let t0 = now()
        try body()
        best = min(best, now() - t0)
    }
    return best
}

/// memcpy bandwidth on a buffer larger than the caches, measured in the same run as a
/// benchmark so that "fraction of memory bound" figures compare like with like.
func measureMemcpyBytesPerSecond(bytes: Int = 256 << 20) -> Double {
    let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { src.deallocate(); dst.deallocate() }
    memset(src, 1, bytes)
    memset(dst, 0, bytes)
    // The write(2) to an invalid fd reads nothing at run time, but it keeps each copy
    // observable: a memcpy into a buffer that is freed unread is otherwise deleted by the
    // optimizer in release builds (this measured 8.9e15 B/s).
    let seconds = bestTime(repeats: 5) {
        memcpy(dst, src, bytes)
        _ = write(-1, dst, bytes)
    }
    return Double(bytes) / seconds
}

/// Prints one JSON object on one line, keys in the given order.
func printJSONLine(_ fields: KeyValuePairs<String, Any>) {
    printJSONLine(fields.map { ($0.key, $0.value) })
}

/// The same for fields assembled at run time.
func printJSONLine(_ fields: [(String, Any)]) {
    var parts: [String] = []
    for (key, value) in fields {
        let rendered: String
        switch value {
        case let d as Double: rendered = d.isFinite ? String(format: "%.6g", d) : "null"
        case let f as Float: rendered = f.isFinite ? String(format: "%.6g", Double(f)) : "null"
        case let i as Int: rendered = String(i)
        case let b as Bool: rendered = b ? "true" : "false"
        case let s as String:
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [])
            rendered = String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        default: rendered = "\"\(value)\""
        }
        parts.append("\"\(key)\": \(rendered)")
    }
    print("{" + parts.joined(separator: ", ") + "}")
}
