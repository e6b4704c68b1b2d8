import Catalog
import Foundation
import LogitCore
import XCTest
@testable import Replay
import Losses

/// Writes the shared inputs and the Swift outputs that the PyTorch port (clients/python/logitd/torch)
/// is checked against (clients/python/tests/test_torch_parity.py):
///
/// - small LM-head problems (N = 6, d = 8, V = 40, sets leaving real mass outside) through
///   `RestrictedSoftmaxLoss` (α = 0 and α > 0 with T ≠ 1), `SampledTailLoss` (α = 0 and 0.5) and
///   `FullSoftmaxLoss`: loss, CE, KD, dH, dW;
/// - `SampledTailLoss.drawNegatives` for a few (count, vocab, seed, draw);
/// - a small cache (two datasets, several sealed shards of small blocks, an open shard) built with
///   `CacheStore`, and every batch of several `ReplayDataset` loaders on it (rows, packed arrays,
///   the state after each batch), plus epoch orders.
///
/// The JSON goes to `$LOGITD_PARITY_FIXTURE` when set (the cache to `<that path>.cache`), else to a
/// temporary file that is removed again. Floats are written as the exact Double of the Float, u64
/// seeds and draws as decimal strings, replay states as the JSON text `JSONEncoder` gives.
final class TorchParityFixtureTests: LossTestCase {
    func floats(_ a: [Float]) -> [Double] { a.map(Double.init) }

    func problemJSON(_ p: Problem) -> [String: Any] {
        ["n": p.n, "d": p.d, "vocab": p.vocab, "hidden": floats(p.hidden), "weight": floats(p.weight),
         "setOffsets": p.setOffsets.map(Int.init), "ids": p.ids.map(Int.init), "logprobs": floats(p.logprobs),
         "gold": p.gold.map(Int.init), "mask": p.mask.map(Int.init)]
    }

    func lossCases() throws -> (problems: [[String: Any]], cases: [[String: Any]]) {
        let problems = [
            makeProblem(seed: 101, n: 6, d: 8, vocab: 40, mask: [1, 1, 0, 1, 1, 1]),
            makeProblem(seed: 102, n: 5, d: 8, vocab: 40),
            makeProblem(seed: 103, n: 3, d: 8, vocab: 40, wholeVocab: true, mask: [1, 0, 1]),
            makeProblem(seed: 104, n: 4, d: 8, vocab: 40, mask: [0, 0, 0, 0]),
        ]
        for p in problems.prefix(2) {
            // The teacher leaves real mass outside the sets.
            for i in 0..<p.n {
                let covered = p.logprobs[Int(p.setOffsets[i])..<Int(p.setOffsets[i + 1])].reduce(Float(0)) { $0 + expf($1) }
                XCTAssertLessThan(covered, 0.95)
            }
        }
        enum Kind { case restricted(Float, Float), tail(Int, Float, UInt64, UInt64), full }
        let specs: [(String, Int, Kind)] = [
            ("restricted a0", 0, .restricted(0, 1)),
            ("restricted a0 p1", 1, .restricted(0, 1)),
            ("restricted a0.6 T2", 0, .restricted(0.6, 2)),
            ("restricted a0.3 T0.7", 1, .restricted(0.3, 0.7)),
            ("restricted a1 T1.5", 0, .restricted(1, 1.5)),
            ("restricted whole vocab a0.5 T2", 2, .restricted(0.5, 2)),
            ("restricted unsupervised", 3, .restricted(0.5, 2)),
            ("tail a0", 0, .tail(8, 0, 5, 3)),
            ("tail a0.5", 0, .tail(8, 0.5, 5, 7)),
            ("tail a0.5 p1 n16", 1, .tail(16, 0.5, 11, 0)),
            ("tail a1 n3", 1, .tail(3, 1, 2, 9)),
            ("tail a0.5 n=V", 0, .tail(40, 0.5, 1, 1)),
            ("tail a0.5 n>V", 1, .tail(100, 0.5, 4, 2)),
            ("tail whole-vocab sets", 2, .tail(8, 0.5, 3, 4)),
            ("tail unsupervised", 3, .tail(8, 0.5, 3, 4)),
            ("full", 0, .full),
            ("full p1", 1, .full),
            ("full unsupervised", 3, .full),
        ]
        var cases: [[String: Any]] = []
        for (name, index, kind) in specs {
            let p = problems[index]
            var entry: [String: Any] = ["name": name, "problem": index]
            let result: (LossResult, dH: [Float], dW: [Float])
            switch kind {
            case .restricted(let alpha, let temperature):
                entry["loss"] = "restricted"; entry["kdAlpha"] = Double(alpha); entry["temperature"] = Double(temperature)
                result = try run(RestrictedSoftmaxLoss(kdAlpha: alpha, temperature: temperature), p)
            case .tail(let negatives, let alpha, let seed, let draw):
                entry["loss"] = "tail"; entry["negatives"] = negatives; entry["kdAlpha"] = Double(alpha)
                entry["seed"] = String(seed); entry["draw"] = String(draw)
                entry["drawn"] = SampledTailLoss.drawNegatives(count: min(negatives, p.vocab), vocab: p.vocab, seed: seed,
                                                               draw: draw).map(Int.init)
                result = try run(SampledTailLoss(negatives: negatives, kdAlpha: alpha, seed: seed), p, negativeDraw: draw)
            case .full:
                entry["loss"] = "full"
                result = try run(FullSoftmaxLoss(chunkRows: 2), p)
            }
            let (r, dH, dW) = result
            XCTAssertTrue(r.loss.isFinite, name)
            XCTAssertTrue(dH.allSatisfy(\.isFinite) && dW.allSatisfy(\.isFinite), name)
            entry["result"] = ["loss": r.loss, "crossEntropy": r.crossEntropy, "distillation": r.distillation,
                               "supervised": r.supervised] as [String: Any]
            entry["dH"] = floats(dH)
            entry["dW"] = floats(dW)
            cases.append(entry)
        }
        return (problems.map(problemJSON), cases)
    }

    func draws() -> [[String: Any]] {
        let specs: [(Int, Int, UInt64, UInt64)] = [
            (8, 40, 5, 3), (40, 40, 1, 1), (1, 1, 0, 0), (7, 1000, .max, .max), (256, 49_152, 0, 0),
            (256, 49_152, 12_345, 17), (1000, 151_936, 0x0123_4567_89AB_CDEF, 123_456_789),
        ]
        return specs.map { count, vocab, seed, draw in
            ["count": count, "vocab": vocab, "seed": String(seed), "draw": String(draw),
             "ids": SampledTailLoss.drawNegatives(count: count, vocab: vocab, seed: seed, draw: draw).map(Int.init)] as [String: Any]
        }
    }

    /// Two compatible datasets ("beta" also has an open shard, which replay leaves out).
    func writeCache(_ dir: String) throws {
        try? FileManager.default.removeItem(atPath: dir)
        var options = CacheStore.Options()
        options.shardWriter.targetBlockBytes = 1024
        let store = try CacheStore(directory: dir, options: options)
        let policy = SelectionPolicy(tau: 0.9, kMin: 1, kMax: 8)
        for (name, shards, perShard, leaveOpen) in [("beta", 2, 15, true), ("alpha", 3, 25, false)] {
            try store.createDataset(DatasetSpec(name: name, vocabSize: 300, policy: policy, tokenizerId: "tok"))
            let gen = RandomRecords(vocabSize: 300, policy: policy, maxTokens: 40)
            for s in 0..<(shards + (leaveOpen ? 1 : 0)) {
                let records = (0..<perShard).map { gen.record(key: "\(name)-\(s)-\($0)", seed: 17) }
                try store.appendDurably(dataset: name, records: records)
                if s < shards { try store.seal(dataset: name) }
            }
        }
    }

    func replayRuns(_ dir: String) throws -> [[String: Any]] {
        let runs: [(String, [String], Int, ReplayOptions)] = [
            ("shuffled", ["beta", "alpha"], 3, ReplayOptions(seed: 42, window: 16, maxTokens: 64, maxSequenceLength: 16)),
            ("rank 1 of 3 pad", ["alpha", "beta"], 0,
             ReplayOptions(seed: 9, window: 8, rank: 1, worldSize: 3, remainder: .pad, maxTokens: 100, maxSequenceLength: 30)),
            ("rank 2 of 3 pad", ["alpha", "beta"], 0,
             ReplayOptions(seed: 9, window: 8, rank: 2, worldSize: 3, remainder: .pad, maxTokens: 100, maxSequenceLength: 30)),
            ("rank 2 of 4 drop", ["alpha", "beta"], 5,
             ReplayOptions(seed: 9, window: 8, rank: 2, worldSize: 4, remainder: .drop, maxTokens: 40, maxSequenceLength: 9)),
            ("file order", ["alpha", "beta"], 0, ReplayOptions(seed: 3, shuffle: false, maxTokens: 50, maxSequenceLength: 7)),
            ("alpha only", ["alpha"], 1, ReplayOptions(seed: .max, window: 512, maxTokens: 8192, maxSequenceLength: 2048)),
        ]
        var out: [[String: Any]] = []
        for (name, datasets, epoch, options) in runs {
            let ds = try ReplayDataset(directory: dir, datasets: datasets)
            let order = ds.order(epoch: epoch, options: options).map { [Int($0.shard), Int($0.block), Int($0.ordinal)] }
            let loader = try ds.makeLoader(epoch: epoch, options: options)
            var batches: [[String: Any]] = []
            while let b = try loader.next() {
                // As the Swift encoder writes it (a string, so u64 seeds pass through untouched).
                let state = try XCTUnwrap(String(data: JSONEncoder().encode(b.stateAfter), encoding: .utf8))
                batches.append([
                    "rows": b.rowSources.map { [Int($0.sequence.shard), Int($0.sequence.block), Int($0.sequence.ordinal), $0.start] },
                    "rowOffsets": b.rowOffsets.map(Int.init), "inputs": b.inputs.map(Int.init),
                    "targets": b.targets.map(Int.init), "mask": b.mask.map(Int.init),
                    "setOffsets": b.setOffsets.map(Int.init), "ids": b.ids.map(Int.init),
                    "logprobs": floats(b.logprobs), "state": state,
                ])
            }
            XCTAssertFalse(batches.isEmpty, name)
            out.append(["name": name, "datasets": datasets, "epoch": epoch, "seed": String(options.seed),
                        "shuffle": options.shuffle, "window": options.window, "rank": options.rank,
                        "worldSize": options.worldSize, "remainder": options.remainder.rawValue,
                        "maxTokens": options.maxTokens, "maxSequenceLength": options.maxSequenceLength,
                        "snapshotHash": ds.snapshot.hashHex, "sequences": ds.snapshot.sequences,
                        "order": order, "batches": batches])
        }
        return out
    }

    func testWriteFixture() throws {
        let env = ProcessInfo.processInfo.environment["LOGITD_PARITY_FIXTURE"]
        let path = env ?? NSTemporaryDirectory() + "logitd-parity-\(UUID().uuidString).json"
        let cacheDir = path + ".cache"
        defer {
            if env == nil {
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: cacheDir)
            }
        }
        let (problems, cases) = try lossCases()
        try writeCache(cacheDir)
        let runs = try replayRuns(cacheDir)
        let fixture: [String: Any] = [
            "version": 1, "problems": problems, "cases": cases, "draws": draws(),
            "replay": ["cache": cacheDir, "runs": runs] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: fixture, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
        // Read back: the file is valid JSON and the floats survive exactly.
        struct Back: Decodable { struct P: Decodable { var hidden: [Double] }; var problems: [P] }
        let back = try JSONDecoder().decode(Back.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(back.problems[0].hidden.map { Float($0) }, makeProblem(seed: 101, n: 6, d: 8, vocab: 40).hidden)
    }
}
