import Catalog
import Dispatch
import Foundation
import LogitCore
import TinyLM
import Training
import WireFormat

/// A TinyLM checkpoint as the teacher: it reads the corpus in windows of `seqLen` tokens (each
/// window starts on the previous one's last token, so every token after the first is predicted
/// exactly once), runs the model over `batch` windows at a time, and sends each window as one
/// sequence keyed by the corpus file's hash and the window's token offset.
struct ModelTeacher {
    let checkpoint: String
    let corpus: String
    let seqLen: Int
    let batch: Int

    struct Window { let key: String; let start: Int; let tokens: [UInt32] }

    func run(sink: RecordSink, dataset: String, policy: SelectionPolicy, mode: String) async throws {
        let clock = Date()
        let (model, tokenizer, _) = try RunCheckpoint.loadModel(checkpoint)
        let modelHash = try ModelCheckpoint.hash(of: RunCheckpoint.resolve(checkpoint))
        let text = try TokenCorpus.load(path: corpus, tokenizer: tokenizer)
        let vocab = model.config.vocabSize
        let length = min(seqLen, model.config.maxSequenceLength)
        var windows: [Window] = []
        var start = 0
        while start < text.tokens.count - 1 {
            let end = min(start + length, text.tokens.count)
            windows.append(Window(key: "\(text.fileHash.prefix(16)):\(start)", start: start, tokens: Array(text.tokens[start..<end])))
            start = end - 1
        }
        try await sink.createDataset(DatasetSpec(
            name: dataset, vocabSize: vocab, policy: policy, teacherId: "tinylm sha256:\(modelHash)",
            tokenizerId: "byte-level-bpe-\(tokenizer.vocabSize)", tokenizerHash: tokenizer.hash))
        let present = try await sink.present(dataset: dataset, keys: windows.map(\.key))
        let pending = windows.filter { !present.contains($0.key) }
        print("teacher: \(windows.count) windows of ≤ \(length) tokens from \(corpus) (\(text.tokens.count) tokens); \(present.count) already stored, \(pending.count) to record")
        let selector = try TopKSelector(policy: policy)
        var progress = ProgressDisplay(total: max(pending.count, 1), label: "teach", logEvery: 20)
        var done = 0, positions = 0
        let recordClock = Date()
        for first in stride(from: 0, to: pending.count, by: batch) {
            let group = Array(pending[first..<min(first + batch, pending.count)])
            var inputs: [UInt32] = [], golds: [UInt32] = [], offsets: [Int32] = [0]
            for w in group {
                inputs += w.tokens.dropLast()
                golds += w.tokens.dropFirst()
                offsets.append(Int32(inputs.count))
            }
            let hidden = try inputs.withUnsafeBufferPointer { t in
                try offsets.withUnsafeBufferPointer { o in try model.forward(tokens: t, rowOffsets: o, keepActivations: false) }
            }
            let logits = model.logits(hidden: hidden, count: inputs.count)
            if mode == "sets" {
                let sets = try logits.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: vocab, golds: golds) }
                let records = group.enumerated().map { i, w in
                    SequenceRecord(key: w.key, tokens: w.tokens, selected: Array(sets[Int(offsets[i])..<Int(offsets[i + 1])]))
                }
                try await sink.append(dataset: dataset, vocabSize: vocab, records: records)
            } else {
                var encoder = WireBatchEncoder(mode: .logits, vocabSize: vocab, dtype: .f32)
                logits.withUnsafeBytes { raw in
                    for (i, w) in group.enumerated() {
                        let rows = UnsafeRawBufferPointer(rebasing: raw[(Int(offsets[i]) * vocab * 4)..<(Int(offsets[i + 1]) * vocab * 4)])
                        encoder.appendLogits(key: w.key, tokens: w.tokens, rows: rows)
                    }
                }
                try await sink.appendLogits(dataset: dataset, body: encoder.finish())
            }
            done += group.count
            positions += inputs.count
            progress.update(done: done, fields: "\(positions) positions",
                            rate: Double(positions) / max(Date().timeIntervalSince(recordClock), 1e-9), unit: "positions/s")
        }
        progress.finish()
        try await sink.seal(dataset: dataset)
        print(String(format: "recorded %d sequence(s) (%d positions), skipped %d already stored, in %.1fs",
                     done, positions, present.count, Date().timeIntervalSince(clock)))
    }
}
