import ArgumentParser
import Catalog
import Foundation
import Synchronization
import LogitClient
import LogitCore
import NIOCore
import WireFormat
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `logit-bench ingest`: a real `logitd` (the binary beside this one) on loopback with a
/// temporary cache, driven by concurrent clients with durable acks, and — the baseline in the
/// same run — the storage engine written directly (no HTTP) by as many threads.
///
/// Sets mode: candidate sets of the synthetic rows (a pool of `--pool` selected positions,
/// drawn in a scrambled order so that no two sequences repeat). Logits mode: rows of
/// V = 151,936 for the daemon to select from, per transport (IngestLogitsBench.swift).
struct IngestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingest", abstract: "logitd ingest throughput with durable acks.")

    @Option(help: "sets or logits") var mode: String = "sets"
    @Option(help: "Concurrent clients (default: 8 in sets mode, 2 in logits mode).") var clients: Int?
    @Option(help: "Positions to send in total (default: 400,000 in sets mode, 51,200 per shared-memory transport in logits mode).")
    var positions: Int?
    @Option(help: "Logits mode: positions sent over HTTP, whose bodies are all built before the clock.") var httpPositions: Int = 5_120
    @Option(help: "Tokens per sequence.") var seqLen: Int = 512
    @Option(help: "Sequences per request.") var batch: Int = 4
    @Option(help: "Distinct selected positions to draw from (sets mode).") var pool: Int = 4096
    @Option(help: "Logits mode: positions (rows) per request, one sequence (default 256: 155 MB in f32, under the daemon's 256 MiB body limit).")
    var rowsPerRequest: Int?
    @Option(help: "Logits mode: row dtype sent, f32, f16 or bf16.") var dtype: String = "f32"
    @Option(help: "Logits mode: shm (bodies in a shared-memory region, sent by reference), shm-copy (each body copied into a slot first), http (the body in the request), or all.")
    var transport: String = "all"
    @Flag(help: "Measure only the storage engine written directly (sets mode): for profiling it, e.g. under callgrind.")
    var directOnly = false
    @Flag(help: "Print only the JSON line.") var json = false

    func run() async throws {
        guard mode == "sets" || mode == "logits" else { throw ValidationError("--mode must be sets or logits") }
        let logitd = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("logitd").path
        guard FileManager.default.isExecutableFile(atPath: logitd) else {
            throw ValidationError("logitd not found beside logit-bench at \(logitd); build the package first")
        }
        if mode == "logits" {
            try await runLogits(logitd: logitd)
            return
        }
        let vocab = SyntheticTeacher.benchmarkVocab
        let policy = SelectionPolicy.default
        let teacher = SyntheticTeacher()
        let perSequence = seqLen - 1
        // Every body is built before the clock starts.
        let positions = self.positions ?? 400_000
        guard positions >= 1, positions * 40 <= 8 << 30 else {
            throw ValidationError("--positions \(positions) would need about \(positions * 40 >> 20) MiB of request bodies; the limit is 8 GiB")
        }
        let requests = max(1, positions / (perSequence * batch))
        let spec = DatasetSpec(name: "bench", vocabSize: vocab, policy: policy, teacherId: "synthetic")

        var bodies: [[UInt8]] = []
        var recordsForDirect: [[SequenceRecord]] = []
        let (sets, golds) = try SyntheticSets.select(teacher: teacher, policy: policy, positions: pool)
        var rng = SplitMix64(seed: 11)
        for r in 0..<requests {
            var encoder = WireBatchEncoder(mode: .sets, vocabSize: vocab)
            var records: [SequenceRecord] = []
            for s in 0..<batch {
                let picks = (0..<perSequence).map { _ in Int(rng.next() % UInt64(sets.count)) }
                let record = SequenceRecord(key: "r\(r)-s\(s)", tokens: [0] + picks.map { golds[$0] },
                                            selected: picks.map { sets[$0] })
                encoder.append(record)
                records.append(record)
            }
            bodies.append(encoder.finish())
            recordsForDirect.append(records)
        }
        let totalPositions = requests * batch * perSequence
        let clientCount = clients ?? 8

        let cache = FileManager.default.temporaryDirectory.path + "/logit-bench-ingest-\(getpid())"
        try? FileManager.default.removeItem(atPath: cache)
        defer { try? FileManager.default.removeItem(atPath: cache) }
        if directOnly {
            let rate = try Self.direct(cache: cache + "/direct", spec: spec, batches: recordsForDirect, threads: clientCount,
                                       positions: totalPositions)
            printJSONLine(["mode": mode, "positions": totalPositions, "direct_positions_per_s": rate, "clients": clientCount])
            return
        }

        // 1. Through HTTP.
        let daemon = try BenchDaemon(binary: logitd, cache: cache + "/http")
        defer { daemon.stop() }
        try await daemon.waitReady()
        let client = LogitClient(baseURL: daemon.baseURL)
        try await client.createDataset(spec)
        // The client's cheapest path: bodies already in ByteBuffers, sent without a copy.
        let allBodies = bodies.map { ByteBuffer(bytes: $0) }
        let run = try await Self.drive(daemon: daemon, requests: allBodies.count, clients: clientCount) { own, i, _ in
            _ = try await own.append(dataset: "bench", body: allBodies[i])
        }
        let rssMB = daemon.peakRSSMegabytes()

        // 2. Direct: the storage engine, same batches, as many writer threads, durable acks.
        let directRate = try Self.direct(cache: cache + "/direct", spec: spec, batches: recordsForDirect, threads: clientCount,
                                         positions: totalPositions)

        let rate = Double(totalPositions) / run.seconds
        if !json {
            print("mode \(mode): \(totalPositions) positions in \(bodies.count) requests from \(clientCount) clients")
        }
        printJSONLine(["mode": mode, "positions": totalPositions, "positions_per_s": rate, "direct_positions_per_s": directRate,
                       "daemon_cpu_us_per_position": run.daemonCPU / Double(totalPositions) * 1e6,
                       "client_cpu_us_per_position": run.clientCPU / Double(totalPositions) * 1e6,
                       "http_over_direct": rate / max(directRate, 1e-9), "ack_latency_p50_ms": run.latencyMs(0.5),
                       "ack_latency_p99_ms": run.latencyMs(0.99), "peak_rss_mb": rssMB, "clients": clientCount,
                       "request_bytes_mean": Double(bodies.reduce(0) { $0 + $1.count }) / Double(bodies.count)])
    }
}

extension IngestBench {
    /// One timed phase: wall time, sorted ack latencies, and where the CPU went (clients and
    /// daemon share this machine's cores, so the split says which side bounds the figure).
    struct Drive {
        var seconds: Double
        var latencies: [Double]
        var daemonCPU: Double
        var clientCPU: Double
        func latencyMs(_ q: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(q * Double(latencies.count)))] * 1000
        }
    }

    /// Sends requests 0..<`requests` from `clients` concurrent workers, each with its own
    /// client; `send(client, request, worker)` sends one and returns once it is acked.
    static func drive(daemon: BenchDaemon, requests: Int, clients: Int,
                      _ send: @escaping @Sendable (LogitClient, Int, Int) async throws -> Void) async throws -> Drive {
        let queue = WorkQueue(count: requests)
        let daemonCPU0 = daemon.cpuSeconds(), clientCPU0 = processCPUSeconds()
        let started = now()
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<clients {
                group.addTask {
                    let own = LogitClient(baseURL: daemon.baseURL)
                    var mine: [Double] = []
                    while let i = queue.next() {
                        let t0 = now()
                        try await send(own, i, worker)
                        mine.append(now() - t0)
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }.sorted()
        let seconds = now() - started
        return Drive(seconds: seconds, latencies: latencies, daemonCPU: daemon.cpuSeconds() - daemonCPU0,
                     clientCPU: processCPUSeconds() - clientCPU0)
    }

    /// The storage engine written directly: the same batches from as many writer threads, durable acks.
    static func direct(cache: String, spec: DatasetSpec, batches: [[SequenceRecord]], threads: Int, positions: Int) throws -> Double {
        let store = try CacheStore(directory: cache)
        try store.createDataset(spec)
        let queue = WorkQueue(count: batches.count)
        let failures = Atomic<Int>(0)
        let t0 = now()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while let i = queue.next() {
                do { _ = try store.appendDurably(dataset: "bench", records: batches[i]) } catch { failures.add(1, ordering: .relaxed) }
            }
        }
        let seconds = now() - t0
        let failed = failures.load(ordering: .relaxed)
        guard failed == 0 else { throw ValidationError("\(failed) direct append(s) failed") }
        return Double(positions) / seconds
    }
}

/// Hands out 0..<count once each, to concurrent workers.
final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var nextIndex = 0
    let count: Int
    init(count: Int) { self.count = count }
    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard nextIndex < count else { return nil }
        nextIndex += 1
        return nextIndex - 1
    }
}

/// A `logitd` child process on an ephemeral loopback port.
final class BenchDaemon: Sendable {
    let process: Process
    let baseURL: URL

    init(binary: String, cache: String, extraArguments: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--cache-dir", cache, "--port", "0", "--log-level", "error"] + extraArguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = ""
        while !line.hasSuffix("\n") {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { throw ValidationError("logitd exited before listening") }
            line += String(decoding: byte, as: UTF8.self)
        }
        guard let range = line.range(of: "listening on ") else { throw ValidationError("unexpected logitd output: \(line)") }
        self.process = process
        baseURL = URL(string: line[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    func waitReady() async throws {
        for _ in 0..<400 {
            if let (_, response) = try? await URLSession.shared.data(from: baseURL.appendingPathComponent("readyz")),
               (response as? HTTPURLResponse)?.statusCode == 200 { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw ValidationError("logitd never became ready")
    }

    /// User + system CPU time the daemon has used so far (/proc/PID/stat).
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return .nan }
        // Fields after "comm)": state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// VmHWM of the daemon: its peak resident memory.
    func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
        return kb / 1024
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

/// User + system CPU time of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) * 1e-6
}
