import ArgumentParser
import Catalog
import Foundation
import LogitClient
import LogitCore

/// Stage 0: run a teacher over token windows, select each position's candidate set with the
/// dataset's policy, and store the sequences — into a cache directory directly (`--cache`) or
/// through `logitd` (`--daemon URL`). Each window is one sequence with a stable key, so a re-run
/// resumes: keys already stored are skipped before any teacher work is done.
///
/// Teachers: `--model CKPT` — a TinyLM checkpoint run over `--corpus FILE`; or
/// `--teacher synthetic` — the deterministic synthetic rows of `logit-bench` (Zipf-like logits
/// over a 151,936-token vocabulary, gold drawn from the row), for trying the pipeline and
/// measuring it without a model.
@main
struct LogitTeach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-teach",
        abstract: "Record teacher candidate sets (Stage 0) into a cache directory or through logitd.")

    @Option(help: "Teacher checkpoint (a TinyLM checkpoint or run directory).") var model: String?
    @Option(help: "Text file the model teacher reads.") var corpus: String?
    @Option(help: "Teacher without a model: 'synthetic'.") var teacher: String?
    @Option(help: "Cache directory to write directly (created when missing).") var cache: String?
    @Option(help: "logitd base URL, e.g. http://127.0.0.1:8484 or unix:/run/logitd.sock (bearer token from LOGITD_TOKEN).")
    var daemon: String?
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Coverage threshold τ.") var tau: Double = SelectionPolicy.default.tau
    @Option(help: "Smallest K.") var kmin: Int = SelectionPolicy.default.kMin
    @Option(help: "Largest K before the gold token is forced in.") var kmax: Int = SelectionPolicy.default.kMax
    @Option(help: "sets: select here and send the sets; logits: send full rows, logitd selects (needs --daemon).")
    var mode: String = "sets"
    @Flag(help: "Logits mode with logitd on this host: hand the rows over in shared memory instead of the socket (schema/SHARED_MEMORY.md).")
    var sharedMemory = false
    @Option(help: "Tokens per sequence (window).") var seqLen: Int = 256
    @Option(help: "Windows per model forward (model teacher).") var batch: Int = 8
    @Option(help: "Positions to record (synthetic teacher).") var positions: Int = 20_000
    @Option(help: "Vocabulary size (synthetic teacher).") var vocab: Int = SyntheticTeacher.benchmarkVocab
    @Option(help: "Seed (synthetic teacher).") var seed: UInt64 = SyntheticTeacher.benchmarkSeed

    func validate() throws {
        guard (model == nil) != (teacher == nil) else { throw ValidationError("give exactly one of --model CKPT and --teacher synthetic") }
        if let teacher, teacher != "synthetic" {
            throw ValidationError("--teacher '\(teacher)' is not supported; the teacher without a model is 'synthetic'")
        }
        if model != nil, corpus == nil { throw ValidationError("--model needs --corpus FILE") }
        guard (cache == nil) != (daemon == nil) else { throw ValidationError("give exactly one of --cache DIR and --daemon URL") }
        guard mode == "sets" || mode == "logits" else { throw ValidationError("--mode must be sets or logits, not '\(mode)'") }
        if mode == "logits", daemon == nil { throw ValidationError("--mode logits sends full rows to logitd; it needs --daemon") }
        if sharedMemory, mode != "logits" || daemon == nil {
            throw ValidationError("--shared-memory hands logits rows to a logitd on this host; it needs --mode logits and --daemon")
        }
        guard seqLen >= 2, seqLen <= SequenceRecord.maxTokens else { throw ValidationError("--seq-len must be 2…\(SequenceRecord.maxTokens)") }
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1") }
        guard positions >= 1 else { throw ValidationError("--positions must be ≥ 1") }
        guard vocab >= 2, vocab <= DatasetSpec.maxVocabSize else { throw ValidationError("--vocab must be 2…\(DatasetSpec.maxVocabSize)") }
        do { try SelectionPolicy(tau: tau, kMin: kmin, kMax: kmax).validate() } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        let sink: RecordSink
        if let cache {
            let store = try CacheStore(directory: cache)
            if !store.recovery.isClean { print(store.recovery) }
            sink = .cache(store)
        } else {
            guard let url = URL(string: daemon!), ["http", "https", "unix", "http+unix"].contains(url.scheme ?? "") else {
                throw ValidationError("--daemon '\(daemon!)' is not an http(s) URL or a unix:/PATH socket as logitd prints it")
            }
            let client = LogitClient(baseURL: url, token: ProcessInfo.processInfo.environment["LOGITD_TOKEN"])
            // A daemon that just started is recovering its cache: wait for it, up to a minute.
            var ready = await client.ready()
            for _ in 0..<600 where !ready {
                try await Task.sleep(for: .milliseconds(100))
                ready = await client.ready()
            }
            guard ready else { throw ValidationError("logitd at \(url) did not become ready within 60 s (GET /readyz)") }
            sink = .daemon(client, shared: sharedMemory ? SharedLogitsSender(client: client) : nil)
        }
        let policy = SelectionPolicy(tau: tau, kMin: kmin, kMax: kmax)
        do {
            if let model {
                try await ModelTeacher(checkpoint: model, corpus: corpus!, seqLen: seqLen, batch: batch)
                    .run(sink: sink, dataset: dataset, policy: policy, mode: mode)
            } else {
                try await recordSynthetic(sink: sink, policy: policy)
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            FileHandle.standardError.write(Data("logit-teach: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func recordSynthetic(sink: RecordSink, policy: SelectionPolicy) async throws {
        let selector = try TopKSelector(policy: policy)
        let source = SyntheticTeacher(vocabSize: vocab, seed: seed)
        try await sink.createDataset(DatasetSpec(
            name: dataset, vocabSize: vocab, policy: policy, teacherId: "synthetic-zipf-v1 seed=\(seed)",
            tokenizerId: "synthetic-\(vocab)", tokenizerHash: "none"))
        let perSequence = seqLen - 1
        let sequences = (positions + perSequence - 1) / perSequence
        let keys = (0..<sequences).map { "synthetic-\(seed)-\(vocab)-\(seqLen)-\($0)" }
        let present = try await sink.present(dataset: dataset, keys: keys)
        let start = Date()
        var done = 0
        let rowsPerChunk = 64
        let rows = UnsafeMutableBufferPointer<Float>.allocate(capacity: rowsPerChunk * vocab)
        defer { rows.deallocate() }
        for s in 0..<sequences where !present.contains(keys[s]) {
            // Position p of the stream predicts token p+1; the gold of row p is token p+1.
            let first = s * perSequence
            var tokens: [UInt32] = [UInt32(truncatingIfNeeded: SplitMix64.mix(seed &+ UInt64(first)) % UInt64(vocab))]
            var sets: [SelectedSet] = []
            for chunkStart in stride(from: 0, to: perSequence, by: rowsPerChunk) {
                let count = min(rowsPerChunk, perSequence - chunkStart)
                var golds = [UInt32](repeating: 0, count: count)
                nonisolated(unsafe) let base = UnsafeMutableBufferPointer(rebasing: rows[0..<count * vocab])
                golds.withUnsafeMutableBufferPointer { g in
                    nonisolated(unsafe) let g = g
                    DispatchQueue.concurrentPerform(iterations: count) { r in
                        let row = UnsafeMutableBufferPointer(rebasing: base[r * vocab..<(r + 1) * vocab])
                        g[r] = source.fillRow(position: first + chunkStart + r, into: row)
                    }
                }
                sets += try selector.selectBatch(rows: UnsafeBufferPointer(base), vocab: vocab, golds: golds)
                tokens += golds
            }
            try await sink.append(dataset: dataset, vocabSize: vocab, records: [SequenceRecord(key: keys[s], tokens: tokens, selected: sets)])
            done += 1
            let elapsed = Date().timeIntervalSince(start)
            let rate = Double(done * perSequence) / max(elapsed, 1e-9)
            let eta = Double(sequences - present.count - done) * Double(perSequence) / max(rate, 1e-9)
            let line = String(format: "sequence %d/%d  %.0f positions/s  ETA %.0fs", done + present.count, sequences, rate, eta)
            if isatty(1) == 1 { print("\r" + line, terminator: "") } else if done % 10 == 0 || done + present.count == sequences { print(line) }
        }
        if isatty(1) == 1 { print("") }
        try await sink.seal(dataset: dataset)
        print("recorded \(done) sequence(s) (\(done * perSequence) positions), skipped \(present.count) already stored, in \(String(format: "%.1f", Date().timeIntervalSince(start)))s")
    }
}
