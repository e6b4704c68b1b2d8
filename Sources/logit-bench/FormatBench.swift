import ArgumentParser
import CZstd
import Dispatch
import Foundation
import LogitCore
import ShardFormat

/// `logit-bench format`: bytes per candidate and encode/decode speed of the shard format on
/// synthetic teacher rows (V = 151,936, τ = 0.95, K in 1…64), against the naive u32 id + f32
/// log-prob layout, raw and through zstd at our default level, in the same run.
struct FormatBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "format", abstract: "Shard format: bytes per candidate, encode and decode speed vs naive (+zstd).")

    @Option(help: "Token positions to generate (rows of the synthetic teacher).") var positions = 20_480
    @Option(help: "Positions per sequence.") var sequenceLength = 512
    @Option(help: "Block codec: zstd, lz4 or none.") var codec = "zstd"
    @Option(help: "zstd level (default: the writer's default).") var level = ShardWriterOptions().zstdLevel
    @Option(help: "Target raw block size in bytes.") var blockBytes = ShardWriterOptions().targetBlockBytes
    @Option(help: "Timing repetitions (best is reported).") var repeats = 3
    @Flag(help: "Also measure other codecs/levels and alternative codings (extra keys).") var compare = false
    @Option(help: "Cache file for the generated sets (reused when it matches --positions).") var cache: String? = nil
    @Flag(help: "Print only the JSON line.") var json = false

    func run() throws {
        guard positions >= sequenceLength, sequenceLength >= 1 else {
            throw ValidationError("need positions ≥ sequence length ≥ 1")
        }
        guard let blockCodec = ["none": BlockCodec.none, "zstd": .zstd, "lz4": .lz4][codec] else {
            throw ValidationError("codec must be zstd, lz4 or none, got \(codec)")
        }
        let policy = SelectionPolicy.default
        let teacher = SyntheticTeacher()
        let vocab = teacher.vocabSize
        let t0 = now()
        let (records, sets) = try generate(teacher: teacher, policy: policy)
        let candidates = sets.reduce(0) { $0 + $1.ids.count }
        if !json { print("generated \(sets.count) positions, \(candidates) candidates in \(String(format: "%.1f", now() - t0)) s") }

        let prov = ShardProvenance(datasetName: "bench", vocabSize: vocab, policy: policy, teacherId: "synthetic",
                                   tokenizerId: "synthetic", tokenizerHash: "-")
        let options = ShardWriterOptions(codec: blockCodec, zstdLevel: level, targetBlockBytes: blockBytes)
        let dir = NSTemporaryDirectory() + "logit-bench-format-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // Encode: append + seal (includes the fsyncs the writer always does).
        var sealed: SealedShard? = nil
        var run = 0
        let encodeSeconds = try bestTime(repeats: repeats) {
            run += 1
            sealed = try writeShard(records, provenance: prov, options: options, path: dir + "/e\(run)")
        }
        let shard = sealed!

        // Decode: a fresh memory-mapped reader each time (checksums verified on first touch).
        var maxError: Float = 0
        let decodeSeconds = try bestTime(repeats: repeats) {
            let reader = try ShardReader(sealedAt: shard.path, access: .mmap)
            var out: [SequenceRecord] = []
            var seen = 0
            for b in 0..<reader.blockCount {
                try reader.decodeBlock(b, into: &out)
                seen += out.count
            }
            precondition(seen == records.count)
        }
        let reader = try ShardReader(sealedAt: shard.path)
        var decoded: [SequenceRecord] = []
        var index = 0
        for b in 0..<reader.blockCount {
            try reader.decodeBlock(b, into: &decoded)
            for r in decoded {
                maxError = max(maxError, Self.maxLogprobError(decoded: r, original: records[index]))
                index += 1
            }
        }

        let naive = Self.naiveBytes(sets)
        let naiveZstd = Self.zstdChunked(naive, level: level, chunk: blockBytes)
        let memcpyRate = measureMemcpyBytesPerSecond()
        let c = Double(candidates)
        var extra: [(String, Any)] = []
        if compare {
            for (name, o) in [("lz4", ShardWriterOptions(codec: .lz4)), ("none", ShardWriterOptions(codec: .none)),
                              ("zstd1", ShardWriterOptions(zstdLevel: 1)), ("zstd9", ShardWriterOptions(zstdLevel: 9)),
                              ("zstd19", ShardWriterOptions(zstdLevel: 19)),
                              ("zstd3_4MiB", ShardWriterOptions(zstdLevel: 3, targetBlockBytes: 4 << 20))] {
                run += 1
                let s = try writeShard(records, provenance: prov, options: o, path: dir + "/v\(run)")
                extra.append(("bytes_per_candidate_\(name)", Double(s.bytes) / c))
            }
            extra.append(("bytes_per_candidate_sorted_delta_varint_u16lp_zstd",
                          Double(Self.zstdChunked(Self.sortedDeltaCoding(sets, scale: prov.logprobScale), level: level, chunk: blockBytes)) / c))
            extra.append(("bytes_per_candidate_lporder_delta_varint_zstd",
                          Double(Self.zstdChunked(Self.lpOrderDeltaCoding(sets, scale: prov.logprobScale), level: level, chunk: blockBytes)) / c))
        }
        let bpc = Double(shard.bytes) / c
        if !json {
            print(String(format: "shard %d bytes, %d blocks: %.3f B/candidate (naive 8, naive+zstd %.3f); max |lp err| %.5f",
                         Int(shard.bytes), shard.blocks, bpc, Double(naiveZstd) / c, Double(maxError)))
            print(String(format: "encode %.1f M cand/s, decode %.1f M cand/s (1 thread, mmap)", c / encodeSeconds / 1e6, c / decodeSeconds / 1e6))
            for (k, v) in extra { print("  \(k): \(String(format: "%.4f", v as! Double))") }
        }
        let fields: KeyValuePairs<String, Any> = [
            "bench": "format", "positions": sets.count, "candidates": candidates, "sequences": records.count,
            "codec": codec, "zstd_level": level, "block_bytes": blockBytes, "blocks": shard.blocks,
            "shard_bytes": Int(shard.bytes), "bytes_per_candidate": bpc, "bytes_per_candidate_naive": 8.0,
            "bytes_per_candidate_naive_zstd": Double(naiveZstd) / c,
            "max_abs_logprob_error": Double(maxError), "logprob_error_bound": Double(0.5 / prov.logprobScale),
            "encode_candidates_per_s": c / encodeSeconds, "decode_candidates_per_s": c / decodeSeconds,
            "decode_bytes_per_s_naive_equivalent": 8 * c / decodeSeconds, "memcpy_bytes_per_s": memcpyRate,
        ]
        if !extra.isEmpty {
            // KeyValuePairs is a literal-only type: render the extra keys through the same printer.
            var parts: [(String, Any)] = fields.map { ($0.key, $0.value) }
            parts += extra
            printDynamicJSONLine(parts)
        } else {
            printJSONLine(fields)
        }
    }

    /// Synthetic rows in chunks, selected by `TopKSelector`; sequences of `sequenceLength`
    /// positions whose tokens are the gold ids.
    func generate(teacher: SyntheticTeacher, policy: SelectionPolicy) throws -> ([SequenceRecord], [SelectedSet]) {
        var (sets, golds) = cache.flatMap { Self.loadCache($0, positions: positions) } ?? ([], [])
        if sets.isEmpty {
            (sets, golds) = try select(teacher: teacher, policy: policy)
            if let cache { Self.saveCache(cache, sets: sets, golds: golds) }
        }
        var records: [SequenceRecord] = []
        var p = 0
        while p < sets.count {
            let n = min(sequenceLength, sets.count - p)
            let tokens = [p == 0 ? 0 : golds[p - 1]] + golds[p ..< p + n]
            records.append(SequenceRecord(key: "seq-\(records.count)", tokens: tokens, selected: Array(sets[p ..< p + n])))
            p += n
        }
        return (records, sets)
    }

    func select(teacher: SyntheticTeacher, policy: SelectionPolicy) throws -> ([SelectedSet], [UInt32]) {
        try SyntheticSets.select(teacher: teacher, policy: policy, positions: positions)
    }

    /// Cache layout (host order, benchmark-only): count, then per position gold, K, forced,
    /// covered mass, K ids, K log-probs.
    static func saveCache(_ path: String, sets: [SelectedSet], golds: [UInt32]) {
        var out = Data()
        func put<T>(_ v: T) { withUnsafeBytes(of: v) { out.append(contentsOf: $0) } }
        put(UInt64(sets.count))
        for (s, g) in zip(sets, golds) {
            put(g); put(UInt32(s.ids.count)); put(s.goldForced ? UInt8(1) : 0); put(s.coveredMass)
            s.ids.withUnsafeBytes { out.append(contentsOf: $0) }
            s.logprobs.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        _ = FileManager.default.createFile(atPath: path, contents: out)
    }

    static func loadCache(_ path: String, positions: Int) -> ([SelectedSet], [UInt32])? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return data.withUnsafeBytes { b -> ([SelectedSet], [UInt32])? in
            var at = 0
            func get<T>(_: T.Type) -> T { defer { at += MemoryLayout<T>.size }; return b.loadUnaligned(fromByteOffset: at, as: T.self) }
            guard b.count >= 8, get(UInt64.self) == UInt64(positions) else { return nil }
            var sets: [SelectedSet] = [], golds: [UInt32] = []
            for _ in 0..<positions {
                golds.append(get(UInt32.self))
                let k = Int(get(UInt32.self)), forced = get(UInt8.self) == 1, mass = get(Double.self)
                let ids = (0..<k).map { _ in get(UInt32.self) }, lps = (0..<k).map { _ in get(Float.self) }
                sets.append(SelectedSet(ids: ids, logprobs: lps, goldForced: forced, coveredMass: mass))
            }
            return (sets, golds)
        }
    }

    func writeShard(_ records: [SequenceRecord], provenance: ShardProvenance, options: ShardWriterOptions, path: String) throws -> SealedShard {
        let w = try ShardWriter(creating: path + ".tmp", provenance: provenance, shardID: UUID(), options: options)
        for r in records { try w.append(r) }
        return try w.seal(to: path + ".shard")
    }

    static func maxLogprobError(decoded: SequenceRecord, original: SequenceRecord) -> Float {
        var worst: Float = 0
        for t in 0..<original.positions {
            let a = original.set(at: t), b = decoded.set(at: t)
            for (j, id) in a.ids.enumerated() {
                guard let k = b.ids.firstIndex(of: id) else { return .infinity }
                worst = max(worst, abs(a.logprobs[j] - b.logprobs[k]))
            }
        }
        return worst
    }

    static func naiveBytes(_ sets: [SelectedSet]) -> [UInt8] {
        var out: [UInt8] = []
        for s in sets {
            for (id, lp) in zip(s.ids, s.logprobs) {
                withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) }
                withUnsafeBytes(of: lp.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Alternative A: ids sorted ascending, delta + LEB128 varint; u16 lp codes in id order.
    static func sortedDeltaCoding(_ sets: [SelectedSet], scale: Float) -> [UInt8] {
        var ids: [UInt8] = [], lps: [UInt8] = []
        for s in sets {
            let order = s.ids.indices.sorted { s.ids[$0] < s.ids[$1] }
            var prev: UInt32 = 0
            for j in order {
                varint(s.ids[j] - prev, into: &ids)
                prev = s.ids[j]
                let code = UInt16(min(LogprobQuantization.code(s.logprobs[j], scale: scale), 65535))
                lps.append(UInt8(code & 0xFF)); lps.append(UInt8(code >> 8))
            }
        }
        return ids + lps
    }

    /// Alternative B: lp order, first lp code + lp deltas as varints, ids zigzag-delta varints.
    static func lpOrderDeltaCoding(_ sets: [SelectedSet], scale: Float) -> [UInt8] {
        var ids: [UInt8] = [], lps: [UInt8] = []
        for s in sets {
            let keys = zip(s.ids, s.logprobs).map { UInt64(LogprobQuantization.code($1, scale: scale)) << 32 | UInt64($0) }.sorted()
            var prevId: Int64 = 0, prevCode: UInt32 = 0
            for k in keys {
                let id = Int64(k & 0xFFFF_FFFF), code = UInt32(k >> 32)
                let d = id - prevId
                varint(UInt32(truncatingIfNeeded: (d << 1) ^ (d >> 63)), into: &ids)
                varint(code - prevCode, into: &lps)
                prevId = id; prevCode = code
            }
        }
        return ids + lps
    }

    static func varint(_ v: UInt32, into out: inout [UInt8]) {
        var x = v
        while x >= 0x80 { out.append(UInt8(x & 0x7F) | 0x80); x >>= 7 }
        out.append(UInt8(x))
    }

    /// zstd-compressed size of `bytes` cut into `chunk`-byte frames (as our blocks are).
    static func zstdChunked(_ bytes: [UInt8], level: Int, chunk: Int) -> Int {
        var total = 0
        bytes.withUnsafeBytes { src in
            var dst = [UInt8](repeating: 0, count: ZSTD_compressBound(chunk))
            var at = 0
            while at < src.count {
                let n = min(chunk, src.count - at)
                let r = dst.withUnsafeMutableBytes { ZSTD_compress($0.baseAddress, $0.count, src.baseAddress! + at, n, Int32(level)) }
                precondition(ZSTD_isError(r) == 0)
                total += r
                at += n
            }
        }
        return total
    }
}

/// `printJSONLine` for keys only known at run time.
func printDynamicJSONLine(_ fields: [(String, Any)]) {
    var parts: [String] = []
    for (key, value) in fields {
        let rendered: String
        switch value {
        case let d as Double: rendered = d.isFinite ? String(format: "%.6g", d) : "null"
        case let i as Int: rendered = String(i)
        case let s as String: rendered = "\"\(s)\""
        default: rendered = "\"\(value)\""
        }
        parts.append("\"\(key)\": \(rendered)")
    }
    print("{" + parts.joined(separator: ", ") + "}")
}
