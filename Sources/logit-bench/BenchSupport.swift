import ArgumentParser
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

/// Bytes per second one loopback TCP connection carries between two threads of this process,
/// with nothing else to do: the ceiling of any transport that moves logits rows through a socket.
func measureLoopbackTCPBytesPerSecond(bytes: Int = 2 << 30) throws -> Double {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard listener >= 0 else { throw ValidationError("socket: \(String(cString: strerror(errno)))") }
    defer { close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0 }
    }
    guard bound else { throw ValidationError("binding a loopback socket: \(String(cString: strerror(errno)))") }
    let chunk = 1 << 20
    let boundAddress = address
    let sender = Thread {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var target = boundAddress
        let connected = withUnsafePointer(to: &target) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 1)
        var sent = 0
        while connected && sent < bytes {
            let n = send(fd, buffer.baseAddress, min(chunk, bytes - sent), 0)
            if n <= 0 { break }
            sent += n
        }
        buffer.deallocate()
        close(fd)
    }
    sender.start()
    let connection = accept(listener, nil, nil)
    guard connection >= 0 else { throw ValidationError("accept: \(String(cString: strerror(errno)))") }
    defer { close(connection) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
    defer { buffer.deallocate() }
    var received = 0
    let t0 = now()
    while true {
        let n = recv(connection, buffer.baseAddress, chunk, 0)
        if n <= 0 { break }
        received += n
    }
    return Double(received) / (now() - t0)
}
