import Catalog
import Foundation
import LogitCore
import XCTest
@testable import Replay
import Losses

final class ReplayDatasetTests: XCTestCase {
    static let policy = SelectionPolicy(tau: 0.9, kMin: 1, kMax: 8)
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "replay-tests-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes `shards` sealed shards of `perShard` random sequences each (small blocks, so several
    /// blocks per shard); returns the records by key.
    @discardableResult
    func writeDataset(_ name: String, vocab: Int = 300, shards: Int = 3, perShard: Int = 40, tokenizer: String = "tok",
                      seed: UInt64 = 1, sealLast: Bool = true) throws -> [String: SequenceRecord] {
        var options = CacheStore.Options()
        options.shardWriter.targetBlockBytes = 1024
        let store = try CacheStore(directory: dir, options: options)
        try store.createDataset(DatasetSpec(name: name, vocabSize: vocab, policy: Self.policy, tokenizerId: tokenizer))
        let gen = RandomRecords(vocabSize: vocab, policy: Self.policy, maxTokens: 40)
        var all: [String: SequenceRecord] = [:]
        for s in 0..<shards {
            let records = (0..<perShard).map { gen.record(key: "\(name)-\(seed)-\(s)-\($0)", seed: seed) }
            for r in records { all[r.key] = r }
            try store.appendDurably(dataset: name, records: records)
            if s < shards - 1 || sealLast { try store.seal(dataset: name) }
        }
        return all
    }

    /// Every row of the loader's batches as (sequence, chunk start), plus the batches' states.
    func drain(_ loader: ReplayLoader, limit: Int = .max) throws -> (rows: [SequenceRef], starts: [Int], batches: Int) {
        var rows: [SequenceRef] = [], starts: [Int] = [], n = 0
        while n < limit, let b = try loader.next() {
            for (ref, start) in b.rowSources { rows.append(ref); starts.append(start) }
            n += 1
        }
        return (rows, starts, n)
    }

    func testShuffleIsDeterministicAcrossRunsAndCoversEverything() throws {
        try writeDataset("a")
        let ds1 = try ReplayDataset(directory: dir, datasets: ["a"])
        let ds2 = try ReplayDataset(directory: dir, datasets: ["a"])
        XCTAssertEqual(ds1.snapshot, ds2.snapshot)
        XCTAssertEqual(ds1.snapshot.sequences, 120)
        XCTAssertGreaterThan(ds1.snapshot.shards.map(\.blocks).reduce(0, +), 6)
        let opts = ReplayOptions(seed: 42, window: 16)
        let o1 = ds1.order(epoch: 3, options: opts), o2 = ds2.order(epoch: 3, options: opts)
        XCTAssertEqual(o1, o2)
        XCTAssertEqual(Set(o1).count, 120)
        XCTAssertNotEqual(o1, ds1.order(epoch: 4, options: opts), "epochs must differ")
        XCTAssertNotEqual(o1, ds1.order(epoch: 3, options: ReplayOptions(seed: 43, window: 16)), "seeds must differ")
        let fileOrder = ds1.order(epoch: 3, options: ReplayOptions(seed: 42, shuffle: false))
        XCTAssertEqual(fileOrder, fileOrder.sorted { ($0.shard, $0.block, $0.ordinal) < ($1.shard, $1.block, $1.ordinal) })
        XCTAssertNotEqual(o1, fileOrder)
        // Delivered rows follow the order exactly.
        let (rows, starts, _) = try drain(ds1.makeLoader(epoch: 3, options: ReplayOptions(seed: 42, window: 16, maxTokens: 64, maxSequenceLength: 64)))
        XCTAssertEqual(rows, o1)
        XCTAssertTrue(starts.allSatisfy { $0 == 0 })
    }

    /// The order depends only on SplitMix64 and integer arithmetic: pinned on a synthetic snapshot
    /// so a platform or library change that altered it would fail here.
    func testOrderIsPinnedAcrossMachines() {
        let shards = (0..<3).map { s in
            ReplaySnapshot.Shard(dataset: "d", uuid: UUID(uuid: (UInt8(s), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                                 generation: s + 1, fileHash: UInt64(s) * 77, sequencesPerBlock: [3, 2, 4], positions: 90)
        }
        let snapshot = ReplaySnapshot(shards: shards)
        let order = ReplayOrder.epochOrder(snapshot, seed: 7, epoch: 1, window: 5)
        let flat = order.map { "\($0.shard).\($0.block).\($0.ordinal)" }.joined(separator: " ")
        XCTAssertEqual(snapshot.hashHex, Self.pinnedHash)
        XCTAssertEqual(flat, Self.pinnedOrder)
    }
    static let pinnedHash = "df306317213402b0"
    static let pinnedOrder = "2.1.0 2.2.0 2.2.2 2.2.1 2.1.1 0.1.0 2.0.0 2.2.3 2.0.2 2.0.1 0.2.0 0.0.1 0.0.0 0.1.1 0.0.2 0.2.2 1.1.1 0.2.1 1.1.0 0.2.3 1.2.0 1.2.2 1.2.3 1.0.0 1.2.1 1.0.2 1.0.1"

    func testRankSharesAreDisjointEqualAndCovering() throws {
        try writeDataset("a", shards: 2, perShard: 31)  // 62 sequences: not a multiple of 4
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        let world = 4
        for remainder in [ReplayOptions.Remainder.drop, .pad] {
            var shares: [[SequenceRef]] = []
            for rank in 0..<world {
                let opts = ReplayOptions(seed: 9, window: 8, rank: rank, worldSize: world, remainder: remainder,
                                         maxTokens: 4096, maxSequenceLength: 4096)
                shares.append(try drain(ds.makeLoader(epoch: 0, options: opts)).rows)
            }
            let expected = remainder == .drop ? 62 / world : (62 + world - 1) / world
            XCTAssertEqual(shares.map(\.count), [Int](repeating: expected, count: world), "\(remainder)")
            let union = shares.flatMap { $0 }
            if remainder == .drop {
                XCTAssertEqual(Set(union).count, union.count, "drop: shares must be disjoint")
                XCTAssertEqual(union.count, 60)
            } else {
                XCTAssertEqual(Set(union).count, 62, "pad: shares must cover every sequence")
                // Only the padding repeats, and it repeats the start of the order.
                XCTAssertEqual(union.count - Set(union).count, 2)
                XCTAssertEqual(Array(union.suffix(2)), Array(ds.order(epoch: 0, options: ReplayOptions(seed: 9, window: 8)).prefix(2)))
            }
        }
        XCTAssertThrowsError(try ds.makeLoader(epoch: 0, options: ReplayOptions(rank: 4, worldSize: 4)))
    }

    /// Chunks and batches rebuild every sequence exactly: tokens, targets, mask and sets.
    func testBatchesCutSequencesKeepingTargetsMaskAndSets() throws {
        let records = try writeDataset("a", shards: 2, perShard: 30)
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        let opts = ReplayOptions(seed: 5, window: 7, maxTokens: 20, maxSequenceLength: 7, prefetchDepth: 2)
        let loader = try ds.makeLoader(epoch: 0, options: opts)
        let store = try CacheStore(directory: dir, mode: .readOnly)
        var rebuilt: [SequenceRef: (inputs: [UInt32], targets: [UInt32], mask: [UInt8], sets: [[UInt32]], lps: [[Float]])] = [:]
        var sawCut = false
        while let b = try loader.next() {
            XCTAssertLessThanOrEqual(b.positions, 20)
            XCTAssertEqual(b.targets.count, b.positions)
            XCTAssertEqual(b.mask.count, b.positions)
            XCTAssertEqual(b.setOffsets.count, b.positions + 1)
            XCTAssertEqual(Int(b.setOffsets.last!), b.ids.count)
            for r in 0..<b.rows {
                let lo = Int(b.rowOffsets[r]), hi = Int(b.rowOffsets[r + 1])
                XCTAssertLessThanOrEqual(hi - lo, 7)
                let (ref, start) = b.rowSources[r]
                if start > 0 { sawCut = true }
                var acc = rebuilt[ref] ?? ([], [], [], [], [])
                XCTAssertEqual(acc.inputs.count, start, "chunks of a sequence arrive in order")
                acc.inputs += b.inputs[lo..<hi]
                acc.targets += b.targets[lo..<hi]
                acc.mask += b.mask[lo..<hi]
                for p in lo..<hi {
                    acc.sets.append(Array(b.ids[Int(b.setOffsets[p])..<Int(b.setOffsets[p + 1])]))
                    acc.lps.append(Array(b.logprobs[Int(b.setOffsets[p])..<Int(b.setOffsets[p + 1])]))
                }
                rebuilt[ref] = acc
            }
        }
        XCTAssertTrue(sawCut, "some sequences are longer than 7 positions and must be cut")
        XCTAssertEqual(rebuilt.count, 60)
        let shards = try store.catalog.shards(states: [.sealed])
        for (ref, got) in rebuilt {
            let shard = shards[Int(ref.shard)]
            let key = try store.reader(for: shard).sequence(block: Int(ref.block), ordinal: Int(ref.ordinal)).key
            let stored = try XCTUnwrap(store.read(dataset: "a", key: key))
            let original = try XCTUnwrap(records[key])
            XCTAssertEqual(got.inputs, Array(original.tokens.dropLast()), key)
            XCTAssertEqual(got.targets, Array(original.tokens.dropFirst()), key)
            XCTAssertEqual(got.mask, original.lossMask ?? [UInt8](repeating: 1, count: original.positions), key)
            XCTAssertEqual(got.sets, (0..<stored.positions).map { stored.set(at: $0).ids }, key)
            XCTAssertEqual(got.lps, (0..<stored.positions).map { stored.set(at: $0).logprobs }, key)
        }
    }

    func testResumeYieldsExactlyTheRemainingOrder() throws {
        try writeDataset("a", shards: 2, perShard: 25)
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        let opts = ReplayOptions(seed: 11, window: 6, rank: 1, worldSize: 2, maxTokens: 16, maxSequenceLength: 9)
        let full = try drain(ds.makeLoader(epoch: 2, options: opts))
        XCTAssertGreaterThan(full.batches, 10)
        var sawMidSequence = false
        for k in [0, 1, 5, full.batches - 1, full.batches] {
            let loader = try ds.makeLoader(epoch: 2, options: opts)
            let head = try drain(loader, limit: k)
            let state = loader.state
            loader.stop()
            if state.chunksConsumed > 0 { sawMidSequence = true }
            // Through JSON, as a trainer would store it.
            let restored = try JSONDecoder().decode(ReplayState.self, from: JSONEncoder().encode(state))
            XCTAssertEqual(restored, state)
            let tail = try drain(ds.makeLoader(resuming: restored, options: opts))
            XCTAssertEqual(head.rows + tail.rows, full.rows, "resume after \(k) batches")
            XCTAssertEqual(head.starts + tail.starts, full.starts, "resume after \(k) batches")
        }
        XCTAssertTrue(sawMidSequence, "a resume point inside a cut sequence should have been exercised")
        // A state of another rank layout is refused.
        var wrong = ds.initialState(epoch: 2, options: opts)
        wrong.rank = 0
        XCTAssertThrowsError(try ds.makeLoader(resuming: wrong, options: opts))
    }

    func testMismatchedSnapshotIsRefusedUnlessOverridden() throws {
        try writeDataset("a", shards: 2, perShard: 10)
        let opts = ReplayOptions(seed: 1, maxTokens: 64, maxSequenceLength: 64)
        let before = try ReplayDataset(directory: dir, datasets: ["a"])
        let loader = try before.makeLoader(epoch: 0, options: opts)
        _ = try loader.next()
        let state = loader.state
        loader.stop()
        // Another sealed shard changes the snapshot.
        try writeDataset("a", shards: 1, perShard: 5, seed: 2)
        let after = try ReplayDataset(directory: dir, datasets: ["a"])
        XCTAssertNotEqual(before.snapshot.hash, after.snapshot.hash)
        XCTAssertThrowsError(try after.makeLoader(resuming: state, options: opts)) { error in
            guard case ReplayError.stateMismatch(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains(state.snapshotHash), text)
        }
        let overridden = try after.makeLoader(resuming: state, options: opts, allowSnapshotChange: true)
        XCTAssertEqual(overridden.state.snapshotHash, after.snapshot.hashHex)
        XCTAssertNotNil(try overridden.next())
    }

    func testOpenShardsAreNotInTheSnapshot() throws {
        try writeDataset("a", shards: 2, perShard: 10, sealLast: false)
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        XCTAssertEqual(ds.snapshot.sequences, 10)
        XCTAssertEqual(ds.snapshot.shards.count, 1)
    }

    func testDatasetsWithDifferentVocabOrTokenizerAreRefused() throws {
        try writeDataset("a", vocab: 300, shards: 1, perShard: 5)
        try writeDataset("b", vocab: 301, shards: 1, perShard: 5)
        try writeDataset("c", vocab: 300, shards: 1, perShard: 5, tokenizer: "other")
        try writeDataset("d", vocab: 300, shards: 1, perShard: 5)
        XCTAssertThrowsError(try ReplayDataset(directory: dir, datasets: ["a", "b"])) { error in
            guard case ReplayError.incompatibleDatasets(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("vocab size 301"), text)
        }
        XCTAssertThrowsError(try ReplayDataset(directory: dir, datasets: ["c", "a"])) { error in
            guard case ReplayError.incompatibleDatasets = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ReplayDataset(directory: dir, datasets: ["a", "nope"]))
        XCTAssertThrowsError(try ReplayDataset(directory: dir, datasets: ["a", "a"]))
        // Compatible datasets mix: concatenated by name.
        let mixed = try ReplayDataset(directory: dir, datasets: ["d", "a"])
        XCTAssertEqual(mixed.snapshot.shards.map(\.dataset), ["a", "d"])
        XCTAssertEqual(mixed.snapshot.sequences, 10)
    }

    /// A damaged block surfaces as an error from `next()` (the producer thread reports it), not
    /// as bad data; a loader dropped mid-epoch stops its producer without hanging.
    func testCorruptBlockIsReportedAndDroppedLoaderStops() throws {
        try writeDataset("a", shards: 1, perShard: 30)
        do {
            let ds = try ReplayDataset(directory: dir, datasets: ["a"])
            var loader: ReplayLoader? = try ds.makeLoader(epoch: 0, options: ReplayOptions(maxTokens: 32, maxSequenceLength: 32, prefetchDepth: 2))
            XCTAssertNotNil(try loader?.next())
            loader = nil  // deinit stops and joins the producer
        }
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        let reader = ds.readers[0]
        let info = reader.blockInfo(reader.blockCount / 2)
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: reader.path))
        try handle.seek(toOffset: info.offset + 64 + UInt64(info.storedBytes / 2))
        let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: info.offset + 64 + UInt64(info.storedBytes / 2))
        handle.write(Data([byte ^ 0x5A]))
        try handle.close()
        // A fresh dataset: its readers have not verified the block yet.
        let fresh = try ReplayDataset(directory: dir, datasets: ["a"])
        let loader = try fresh.makeLoader(epoch: 0, options: ReplayOptions(shuffle: false, maxTokens: 64, maxSequenceLength: 64))
        XCTAssertThrowsError(try drain(loader)) { error in
            guard case ReplayError.corrupt(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("checksum"), text)
        }
        XCTAssertNil(try loader.next(), "after an error the loader is finished")
    }

    /// A replay batch feeds the restricted loss directly.
    func testBatchFeedsTheRestrictedLoss() throws {
        try writeDataset("a", shards: 1, perShard: 8)
        let ds = try ReplayDataset(directory: dir, datasets: ["a"])
        let loader = try ds.makeLoader(epoch: 0, options: ReplayOptions(maxTokens: 128, maxSequenceLength: 32))
        let batch = try XCTUnwrap(loader.next())
        let d = 8, n = batch.positions, vocab = ds.vocabSize
        var rng = SplitMix64(seed: 3)
        let hidden = (0..<(n * d)).map { _ in Float(rng.nextUnit() - 0.5) }
        let weight = (0..<(vocab * d)).map { _ in Float(rng.nextUnit() - 0.5) }
        var dH = [Float](repeating: 0, count: n * d), dW = [Float](repeating: 0, count: vocab * d)
        let result = try batch.withCandidateBatch { cb in
            try hidden.withUnsafeBufferPointer { h in
                try weight.withUnsafeBufferPointer { w in
                    try dH.withUnsafeMutableBufferPointer { dh in
                        try dW.withUnsafeMutableBufferPointer { dw in
                            try RestrictedSoftmaxLoss(kdAlpha: 0.5, temperature: 2).forwardBackward(
                                hidden: h, n: n, d: d, weight: w, vocab: vocab, batch: cb, dHidden: dh, dWeight: dw)
                        }
                    }
                }
            }
        }
        XCTAssertEqual(result.supervised, batch.mask.reduce(0) { $0 + Int($1) })
        XCTAssertTrue(result.loss.isFinite && result.loss > 0)
    }
}
