import ArgumentParser
import Catalog
import Foundation
import LogitCore

/// Stage 0: run a teacher over token windows, select each position's candidate set with the
/// dataset's policy, and store the sequences. Each window is one sequence with a stable key,
/// so a re-run resumes: keys already stored are skipped before any teacher work is done.
///
/// Teachers: `synthetic` — the deterministic synthetic rows of `logit-bench` (Zipf-like logits
/// over a 151,936-token vocabulary, gold drawn from the row), for trying the pipeline and
/// measuring it without a model.
@main
struct LogitTeach: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-teach",
        abstract: "Record teacher candidate sets (Stage 0) into a cache directory.")

    @Option(help: "Teacher: 'synthetic'.") var teacher: String = "synthetic"
    @Option(help: "Cache directory to write (created when missing).") var cache: String
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Coverage threshold τ.") var tau: Double = SelectionPolicy.default.tau
    @Option(help: "Smallest K.") var kmin: Int = SelectionPolicy.default.kMin
    @Option(help: "Largest K before the gold token is forced in.") var kmax: Int = SelectionPolicy.default.kMax
    @Option(help: "Tokens per sequence (window).") var seqLen: Int = 512
    @Option(help: "Positions to record (synthetic teacher).") var positions: Int = 20_000
    @Option(help: "Vocabulary size (synthetic teacher).") var vocab: Int = SyntheticTeacher.benchmarkVocab
    @Option(help: "Seed (synthetic teacher).") var seed: UInt64 = SyntheticTeacher.benchmarkSeed

    func validate() throws {
        guard teacher == "synthetic" else {
            throw ValidationError("--teacher '\(teacher)' is not supported; the available teacher is 'synthetic'")
        }
        guard seqLen >= 2, seqLen <= SequenceRecord.maxTokens else { throw ValidationError("--seq-len must be 2…\(SequenceRecord.maxTokens)") }
        guard positions >= 1 else { throw ValidationError("--positions must be ≥ 1") }
        guard vocab >= 2, vocab <= DatasetSpec.maxVocabSize else { throw ValidationError("--vocab must be 2…\(DatasetSpec.maxVocabSize)") }
    }

    func run() throws {
        let policy = SelectionPolicy(tau: tau, kMin: kmin, kMax: kmax)
        let selector = try TopKSelector(policy: policy)
        let store = try CacheStore(directory: cache)
        if !store.recovery.isClean { print(store.recovery) }
        let source = SyntheticTeacher(vocabSize: vocab, seed: seed)
        try store.createDataset(DatasetSpec(
            name: dataset, vocabSize: vocab, policy: policy, teacherId: "synthetic-zipf-v1 seed=\(seed)",
            tokenizerId: "synthetic-\(vocab)", tokenizerHash: "none"))

        let perSequence = seqLen - 1
        let sequences = (positions + perSequence - 1) / perSequence
        let info = try store.dataset(named: dataset)
        let start = Date()
        var done = 0, skipped = 0
        let rowsPerChunk = 64
        let rows = UnsafeMutableBufferPointer<Float>.allocate(capacity: rowsPerChunk * vocab)
        defer { rows.deallocate() }
        for s in 0..<sequences {
            let key = "synthetic-\(seed)-\(vocab)-\(seqLen)-\(s)"
            if try !store.catalog.contentHashes(datasetId: info.id, keys: [key]).isEmpty {
                skipped += 1
                continue
            }
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
            try store.appendDurably(dataset: dataset, records: [SequenceRecord(key: key, tokens: tokens, selected: sets)])
            done += 1
            let elapsed = Date().timeIntervalSince(start)
            let rate = Double(done * perSequence) / max(elapsed, 1e-9)
            let eta = Double(sequences - s - 1) * Double(perSequence) / max(rate, 1e-9)
            let line = String(format: "sequence %d/%d  %.0f positions/s  ETA %.0fs", s + 1, sequences, rate, eta)
            if isatty(1) == 1 { print("\r" + line, terminator: "") } else if (s + 1) % 10 == 0 || s + 1 == sequences { print(line) }
        }
        if isatty(1) == 1 { print("") }
        try store.seal(dataset: dataset)
        print("recorded \(done) sequence(s) (\(done * perSequence) positions), skipped \(skipped) already stored, in \(String(format: "%.1f", Date().timeIntervalSince(start)))s")
    }
}
