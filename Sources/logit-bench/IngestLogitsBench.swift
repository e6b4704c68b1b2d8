import ArgumentParser
import Catalog
import Foundation
import LogitClient
import LogitCore
import NIOCore
import SharedMemory
import WireFormat

/// `logit-bench ingest --mode logits`: full-vocabulary rows (V = 151,936) for the daemon to
/// select from, through each transport in turn, against the baselines measured in the same run:
/// `logit-bench topk`'s all-core selection of f32 rows already in this process's memory, and
/// the bytes one loopback TCP connection carries (the ceiling of the `http` transport).
///
/// - `http`: bodies ready in `ByteBuffer`s before the clock; every byte crosses the loopback
///   socket (a copy into the kernel and one out) and is collected into one buffer.
/// - `shm` (the headline): each client's body lies in its own slot of a registered region, as
///   a GPU teacher's device-to-host DMA leaves it; per request the client writes only the new
///   key into it, and only a reference crosses the socket.
/// - `shm-copy`: per request the client copies a whole body into its slot first, as a teacher
///   holding rows in private memory must: that copy's CPU, on the daemon's cores, is counted.
///
/// A request is one sequence of `--rows-per-request` positions. The shm transports reuse their
/// slots, so they can run far longer than the bodies that fit in memory; each request still
/// has its own key, so everything is selected, stored and fsynced.
extension IngestBench {
    /// Keys are "l" and eight digits, so a slot's key is rewritten in place.
    static func logitsKey(_ request: Int) -> String { "l" + String(String(request + 100_000_000).dropFirst()) }
    static let logitsKeyOffset = WireBatchHeader.byteCount + 2

    func runLogits(logitd: String) async throws {
        guard let wireType = ["f32": WireDType.f32, "f16": .f16, "bf16": .bf16][dtype] else {
            throw ValidationError("--dtype must be f32, f16 or bf16, not '\(dtype)'")
        }
        let transports = transport == "all" ? ["http", "shm-copy", "shm"] : [transport]
        guard transports.allSatisfy({ ["http", "shm-copy", "shm"].contains($0) }) else {
            throw ValidationError("--transport must be http, shm, shm-copy or all, not '\(transport)'")
        }
        let vocab = SyntheticTeacher.benchmarkVocab
        let width = wireType.byteWidth
        let rows = rowsPerRequest ?? 256
        let positions = self.positions ?? 51_200
        guard positions >= 1, rows >= 1, positions / rows < 100_000_000 else {
            throw ValidationError("--positions and --rows-per-request must be ≥ 1, and fewer than 10^8 requests")
        }
        let requests = max(1, positions / rows)
        // HTTP bodies are all built before the clock, so that transport sends fewer.
        let httpRequests = max(1, min(httpPositions, positions) / rows)
        let bodyBytes = httpRequests * rows * vocab * width
        guard bodyBytes <= 8 << 30 else {
            throw ValidationError("--http-positions \(httpPositions) would need about \(bodyBytes >> 20) MiB of request bodies; the limit is 8 GiB")
        }
        let clientCount = clients ?? 2

        // Bodies: rows drawn from 32 distinct synthetic rows.
        let distinct = 32
        let (pool, golds) = TopKBench.syntheticPool(rows: distinct)
        defer { pool.deallocate() }
        let seqRows = UnsafeMutableRawBufferPointer.allocate(byteCount: rows * vocab * width, alignment: 64)
        defer { seqRows.deallocate() }
        var built: [ByteBuffer] = []
        for r in 0..<httpRequests {
            let first = (r * 7) % distinct
            let picks = (0..<rows).map { (first + $0) % distinct }
            for (t, p) in picks.enumerated() {
                let src = UnsafeBufferPointer(rebasing: pool[p * vocab..<(p + 1) * vocab])
                let dst = seqRows.baseAddress! + t * vocab * width
                switch wireType {
                case .f32: dst.copyMemory(from: src.baseAddress!, byteCount: vocab * 4)
                case .f16:
                    let out = dst.bindMemory(to: Float16.self, capacity: vocab)
                    for i in 0..<vocab { out[i] = Float16(src[i]) }
                case .bf16:
                    let out = dst.bindMemory(to: UInt16.self, capacity: vocab)
                    for i in 0..<vocab { out[i] = BFloat16(src[i]).bitPattern }
                }
            }
            var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: wireType)
            encoder.appendLogits(key: Self.logitsKey(r), tokens: [0] + picks.map { golds[$0] }, rows: UnsafeRawBufferPointer(seqRows))
            built.append(ByteBuffer(bytes: encoder.finish()))
        }
        let bodies = built
        let bodyLength = bodies[0].readableBytes

        let cache = FileManager.default.temporaryDirectory.path + "/logit-bench-ingest-\(getpid())"
        try? FileManager.default.removeItem(atPath: cache)
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try BenchDaemon(binary: logitd, cache: cache + "/http")
        defer { daemon.stop() }
        try await daemon.waitReady()
        let client = LogitClient(baseURL: daemon.baseURL)

        var results: [(name: String, positions: Int, run: Drive)] = []
        for t in transports {
            // A dataset per transport: the same keys again would be counted duplicates.
            let dataset = "bench-\(t)"
            try await client.createDataset(DatasetSpec(name: dataset, vocabSize: vocab, policy: .default, teacherId: "synthetic"))
            let run: Drive
            let sent: Int
            if t == "http" {
                sent = httpRequests
                run = try await Self.drive(daemon: daemon, requests: sent, clients: clientCount) { own, i, _ in
                    _ = try await own.append(dataset: dataset, body: bodies[i])
                }
            } else {
                sent = requests
                let slots = try await SharedMemorySlots(client: client, name: "bench-\(t)", slotBytes: bodyLength, slotCount: clientCount)
                let inPlace = t == "shm"
                if inPlace {
                    for w in 0..<clientCount { bodies[w % bodies.count].withUnsafeReadableBytes { slots.slot(w).copyMemory(from: $0) } }
                }
                run = try await Self.drive(daemon: daemon, requests: sent, clients: clientCount) { _, i, worker in
                    let slot = slots.slot(worker)
                    if !inPlace { bodies[i % bodies.count].withUnsafeReadableBytes { slot.copyMemory(from: $0) } }
                    let key = Self.logitsKey(i).utf8
                    UnsafeMutableRawBufferPointer(rebasing: slot[Self.logitsKeyOffset..<Self.logitsKeyOffset + key.count]).copyBytes(from: key)
                    _ = try await slots.append(dataset: dataset, slot: worker, length: bodyLength)
                }
                try await slots.close()
            }
            let stats = try await client.stats(dataset: dataset)
            guard stats.sequences == sent else {
                throw ValidationError("transport \(t): the daemon holds \(stats.sequences) sequences, \(sent) were sent")
            }
            results.append((t, sent * rows, run))
        }
        let rssMB = daemon.peakRSSMegabytes()
        daemon.stop()

        // Baseline, same run: all-core selection of f32 rows from a pool larger than the L3.
        let (topkPool, topkGolds) = TopKBench.syntheticPool(rows: 64)
        defer { topkPool.deallocate() }
        let topkPositions = 20_000
        let topkSeconds = try TopKBench.allCoreSeconds(
            selector: try TopKSelector(policy: .default), rows: UnsafeBufferPointer(topkPool), vocab: vocab, golds: topkGolds,
            positions: topkPositions, threads: ProcessInfo.processInfo.activeProcessorCount)
        let topkRate = Double(topkPositions) / topkSeconds
        // The socket alone, same run: what HTTP could reach if nothing but the bytes moved.
        let tcpBytesPerSecond = try measureLoopbackTCPBytesPerSecond()
        let bytesPerPosition = Double(bodyLength) / Double(rows)

        let headline = results.first { $0.name == "shm" } ?? results[0]
        let rate = Double(headline.positions) / headline.run.seconds
        if !json {
            print("mode logits (\(dtype)): requests of \(rows) positions (\(bodyLength) bytes) from \(clientCount) clients, per transport")
        }
        var fields: [(String, Any)] = [
            ("mode", "logits"), ("dtype", dtype), ("vocab", vocab), ("transport", headline.name), ("positions", headline.positions),
            ("positions_per_s", rate), ("topk_all_core_positions_per_s", topkRate), ("fraction_of_topk_all_core", rate / topkRate),
            ("ack_latency_p50_ms", headline.run.latencyMs(0.5)), ("ack_latency_p99_ms", headline.run.latencyMs(0.99)),
        ]
        for (name, sentPositions, run) in results {
            let key = name.replacingOccurrences(of: "-", with: "_")
            fields += [
                ("\(key)_positions", sentPositions),
                ("\(key)_positions_per_s", Double(sentPositions) / run.seconds),
                ("\(key)_daemon_cpu_us_per_position", run.daemonCPU / Double(sentPositions) * 1e6),
                ("\(key)_client_cpu_us_per_position", run.clientCPU / Double(sentPositions) * 1e6),
                ("\(key)_ack_latency_p99_ms", run.latencyMs(0.99)),
            ]
        }
        fields += [("loopback_tcp_bytes_per_s", tcpBytesPerSecond),
                   ("loopback_tcp_ceiling_positions_per_s", tcpBytesPerSecond / bytesPerPosition),
                   ("peak_rss_mb", rssMB), ("clients", clientCount), ("rows_per_request", rows), ("request_bytes", bodyLength)]
        printJSONLine(fields)
    }
}
