import Foundation
import Parameters

#if _endian(big)
#error("OptimizerStateFormat copies fp32 moments as little-endian bytes; big-endian hosts are not supported")
#endif

/// Which moment semantics a state file holds; MoClip and Adam-atan2 share theirs.
enum StateAlgorithm: UInt32 {
    case adamW = 1
    case atan2Family = 2

    var label: String { self == .adamW ? "AdamW" : "MoClip/Adam-atan2" }
}

/// Encoder and validating decoder of schema/OPTIM_STATE.md (version 1).
enum OptimizerStateFormat {
    static let magic: [UInt8] = Array("LGDOPTST".utf8)
    static let version: UInt32 = 1
    static let headerSize = 32
    static let checksumSize = 8

    static func encodedSize(_ core: OptimizerCore) -> Int {
        var size = headerSize + checksumSize
        for t in core.tensors { size += 4 + t.name.utf8.count + 4 + 8 * t.rank + 8 * t.count }
        return size
    }

    /// Streams the encoding of `core` to `sink` piece by piece — the header and each tensor's
    /// name and shape as small pieces, the moments straight from the optimizer's buffers — so
    /// saving a 1 GB state needs no 1 GB copy. The checksum is computed over the same pieces.
    static func write(_ core: OptimizerCore, to sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var checksum = StateChecksum.Stream()
        var small: [UInt8] = []
        func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { small.append(contentsOf: $0) } }
        func emit(_ bytes: UnsafeRawBufferPointer) throws {
            checksum.update(bytes)
            try sink(bytes)
        }
        func flushSmall() throws {
            try small.withUnsafeBytes { try emit($0) }
            small.removeAll(keepingCapacity: true)
        }
        small.append(contentsOf: magic)
        put(version)
        put(core.algorithm.rawValue)
        put(UInt64(core.step))
        put(UInt32(core.tensors.count))
        put(UInt32(0))
        for (i, t) in core.tensors.enumerated() {
            let name = Array(t.name.utf8)
            put(UInt32(name.count))
            small.append(contentsOf: name)
            put(UInt32(t.rank))
            for d in t.shape { put(UInt64(d)) }
            try flushSmall()
            try emit(UnsafeRawBufferPointer(core.m[i]))
            try emit(UnsafeRawBufferPointer(core.v[i]))
        }
        try flushSmall()
        try withUnsafeBytes(of: checksum.finish().littleEndian) { try sink($0) }
    }

    static func encode(_ core: OptimizerCore) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSize(core))
        write(core) { out.append(contentsOf: $0) }
        precondition(out.count == encodedSize(core), "state encoder wrote \(out.count) bytes, computed \(encodedSize(core))")
        return out
    }

    /// Bounds-checked little-endian reader whose errors say what was being read and where.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at = 0

        mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
            let end = try span(MemoryLayout<T>.size, what())
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: end - MemoryLayout<T>.size, as: T.self))
        }

        /// Advances over `count` bytes and returns the end offset.
        mutating func span(_ count: Int, _ what: @autoclosure () -> String) throws -> Int {
            let (end, overflow) = at.addingReportingOverflow(count)
            if overflow || end > bytes.count {
                throw OptimError.invalidState("truncated: \(what()) needs \(count) bytes at offset \(at), but the state has \(bytes.count) bytes in all")
            }
            at = end
            return end
        }
    }

    /// Validates everything (structure against the optimizer's own tensors, checksum, moment
    /// values) before copying anything, so a bad state leaves the optimizer untouched.
    static func decode(_ bytes: UnsafeRawBufferPointer, into core: OptimizerCore) throws {
        var r = Reader(bytes: bytes)
        let magicEnd = try r.span(magic.count, "the magic number")
        if !magic.elementsEqual(bytes[0..<magicEnd]) {
            throw OptimError.invalidState("bad magic \(Array(bytes[0..<magicEnd])), expected \"LGDOPTST\": not an optimizer state")
        }
        let fileVersion = try r.read(UInt32.self, "the version")
        if fileVersion != version { throw OptimError.invalidState("format version \(fileVersion), this build reads version \(version)") }
        let algorithm = try r.read(UInt32.self, "the algorithm tag")
        if algorithm != core.algorithm.rawValue {
            let written = StateAlgorithm(rawValue: algorithm)?.label ?? "unknown algorithm \(algorithm)"
            throw OptimError.invalidState("state was written by \(written), this optimizer is \(core.algorithm.label)")
        }
        let step = try r.read(UInt64.self, "the step counter")
        if step > UInt64(Int32.max) * 1024 { throw OptimError.invalidState("step counter \(step) is implausibly large") }
        let tensorCount = try r.read(UInt32.self, "the tensor count")
        if Int(tensorCount) != core.tensors.count {
            throw OptimError.invalidState("state holds \(tensorCount) tensors, this optimizer has \(core.tensors.count)")
        }
        let reserved = try r.read(UInt32.self, "the reserved field")
        if reserved != 0 { throw OptimError.invalidState("reserved header field is \(reserved), expected 0") }

        var momentOffsets: [Int] = []
        for (i, t) in core.tensors.enumerated() {
            let nameLength = try r.read(UInt32.self, "the name length of tensor \(i)")
            if nameLength > UInt32(ParameterTensor.maxNameBytes) {
                throw OptimError.invalidState("tensor \(i) name length \(nameLength), expected ≤ \(ParameterTensor.maxNameBytes)")
            }
            let nameEnd = try r.span(Int(nameLength), "the name of tensor \(i)")
            let name = String(decoding: bytes[(nameEnd - Int(nameLength))..<nameEnd], as: UTF8.self)
            if name != t.name {
                throw OptimError.invalidState("tensor \(i) is '\(name)' in the state, expected '\(t.name)'")
            }
            let rank = try r.read(UInt32.self, "the rank of '\(t.name)'")
            if rank != UInt32(t.rank) {
                throw OptimError.invalidState("tensor '\(t.name)' has rank \(rank) in the state, expected \(t.rank)")
            }
            var shape: [UInt64] = []
            for axis in 0..<t.rank { shape.append(try r.read(UInt64.self, "dimension \(axis) of '\(t.name)'")) }
            if shape != t.shape.map({ UInt64($0) }) {
                throw OptimError.invalidState("tensor '\(t.name)' has shape \(shape) in the state, expected \(t.shape)")
            }
            let end = try r.span(8 * t.count, "the moments of '\(t.name)' (\(t.count) + \(t.count) floats)")
            momentOffsets.append(end - 8 * t.count)
        }
        let bodyEnd = r.at
        let stored = try r.read(UInt64.self, "the checksum")
        if r.at != bytes.count {
            throw OptimError.invalidState("\(bytes.count - r.at) unexpected bytes after the checksum at offset \(r.at)")
        }
        let computed = StateChecksum.compute(UnsafeRawBufferPointer(rebasing: bytes[0..<bodyEnd]))
        if computed != stored {
            throw OptimError.invalidState("checksum mismatch: stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16)) over \(bodyEnd) bytes; the state is corrupt")
        }
        for (i, t) in core.tensors.enumerated() {
            let base = momentOffsets[i]
            for j in 0..<t.count {
                let mj = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self)))
                if !mj.isFinite { throw OptimError.invalidState("tensor '\(t.name)' first moment [\(j)] is \(mj), expected finite") }
                let vj = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: base + 4 * (t.count + j), as: UInt32.self)))
                if !(vj.isFinite && vj >= 0) { throw OptimError.invalidState("tensor '\(t.name)' second moment [\(j)] is \(vj), expected finite and ≥ 0") }
            }
        }
        for (i, t) in core.tensors.enumerated() {
            let base = momentOffsets[i]
            UnsafeMutableRawBufferPointer(core.m[i]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[base..<(base + 4 * t.count)]))
            UnsafeMutableRawBufferPointer(core.v[i]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[(base + 4 * t.count)..<(base + 8 * t.count)]))
        }
        core.step = Int(step)
    }
}

extension Optimizer {
    /// Convenience for callers holding the bytes in an array (tests, small states).
    public func restoreState(from bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try restoreState(from: $0) } }

    /// Writes the state durably, streamed (no in-memory copy of the moments): temporary file,
    /// fsync, rename over `path`, fsync of the directory. A crash leaves either the old file or
    /// the new one, never a torn one.
    public func saveState(to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw OptimError.io(path: temporary, reason: "open failed: \(String(cString: strerror(errno)))") }
        var written = 0
        do {
            try writeState { piece in
                var done = 0
                while done < piece.count {
                    let n = write(fd, piece.baseAddress! + done, piece.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw OptimError.io(path: temporary, reason: "write failed after \(written + done) bytes: \(String(cString: strerror(errno)))")
                    }
                    done += n
                }
                written += done
            }
            if fsync(fd) != 0 { throw OptimError.io(path: temporary, reason: "fsync failed: \(String(cString: strerror(errno)))") }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        if rename(temporary, path) != 0 {
            throw OptimError.io(path: path, reason: "rename from \(temporary) failed: \(String(cString: strerror(errno)))")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Reads and restores a state written by `saveState(to:)`, validated through a read-only
    /// mapping of the file (no second copy of the moments). A file longer than this optimizer's
    /// state is refused before reading; a shorter one is read and diagnosed.
    public func loadState(from path: String) throws {
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw OptimError.io(path: path, reason: "open failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw OptimError.io(path: path, reason: "fstat failed: \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        let expected = encodedStateSize
        if size > expected {
            throw OptimError.invalidState("file '\(path)' is \(size) bytes, larger than the \(expected) bytes of this optimizer's state: written for other tensors")
        }
        guard size > 0 else { return try restoreState(from: UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw OptimError.io(path: path, reason: "mmap of \(size) bytes failed: \(String(cString: strerror(errno)))")
        }
        defer { munmap(mapped, size) }
        try restoreState(from: UnsafeRawBufferPointer(start: mapped, count: size))
    }
}
