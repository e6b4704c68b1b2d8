import Catalog
import Foundation
import ShardFormat

/// One or more datasets of a cache directory, opened read-only for training: a frozen snapshot
/// of their sealed shards (memory-mapped readers), and loaders that replay it in the
/// deterministic order of schema/REPLAY_ORDER.md, split across data-parallel ranks, packed into
/// token-budget batches, resumable from a `ReplayState`.
public final class ReplayDataset: Sendable {
    public let directory: String
    /// The datasets, sorted by name.
    public let datasets: [DatasetInfo]
    public let snapshot: ReplaySnapshot
    /// Shared by every dataset (checked at open).
    public let vocabSize: Int
    let readers: [ShardReader]

    /// Opens `names` in the cache at `directory` read-only. Refuses unknown or repeated names,
    /// datasets whose vocab size, tokenizer id or tokenizer hash differ from the first (by name),
    /// and an empty snapshot.
    public init(directory: String, datasets names: [String]) throws(ReplayError) {
        guard !names.isEmpty else { throw .invalidOptions("no dataset named") }
        guard Set(names).count == names.count else { throw .invalidOptions("dataset named twice in \(names)") }
        let store: CacheStore
        do { store = try CacheStore(directory: directory, mode: .readOnly) } catch { throw .store(error.description) }
        var infos: [DatasetInfo] = []
        for name in names.sorted() {
            do { infos.append(try store.dataset(named: name)) } catch { throw .store(error.description) }
        }
        let first = infos[0].spec
        for info in infos.dropFirst() {
            let s = info.spec
            var diffs: [String] = []
            if s.vocabSize != first.vocabSize { diffs.append("vocab size \(s.vocabSize) ≠ \(first.vocabSize)") }
            if s.tokenizerId != first.tokenizerId { diffs.append("tokenizer id '\(s.tokenizerId)' ≠ '\(first.tokenizerId)'") }
            if s.tokenizerHash != first.tokenizerHash { diffs.append("tokenizer hash '\(s.tokenizerHash)' ≠ '\(first.tokenizerHash)'") }
            guard diffs.isEmpty else {
                throw .incompatibleDatasets("dataset '\(s.name)' differs from '\(first.name)': " + diffs.joined(separator: ", "))
            }
        }
        var shards: [ReplaySnapshot.Shard] = []
        var readers: [ShardReader] = []
        for info in infos {
            let entries: [ShardEntry]
            do { entries = try store.catalog.shards(datasetId: info.id, states: [.sealed]) } catch { throw .store(error.description) }
            for entry in entries.sorted(by: { $0.generation < $1.generation }) {
                guard let fileHash = entry.fileHash else {
                    throw .store("sealed shard \(entry.path) of '\(info.spec.name)' has no file hash in the catalog")
                }
                let reader: ShardReader
                do { reader = try store.reader(for: entry) } catch { throw .store(error.description) }
                guard reader.shardID == entry.uuid, reader.blockCount == entry.blocks,
                      reader.provenance.vocabSize == info.spec.vocabSize else {
                    throw .corrupt("\(reader.path): shard id \(reader.shardID), \(reader.blockCount) blocks, vocab \(reader.provenance.vocabSize); catalog expects \(entry.uuid), \(entry.blocks) blocks, vocab \(info.spec.vocabSize)")
                }
                var perBlock: [Int] = []
                var positions = 0
                for b in 0..<reader.blockCount {
                    let bi = reader.blockInfo(b)
                    perBlock.append(bi.sequenceCount)
                    positions += bi.positions
                }
                shards.append(.init(dataset: info.spec.name, uuid: entry.uuid, generation: entry.generation,
                                    fileHash: fileHash, sequencesPerBlock: perBlock, positions: positions))
                readers.append(reader)
            }
        }
        let snapshot = ReplaySnapshot(shards: shards)
        guard snapshot.sequences > 0 else {
            throw .store("datasets \(names.sorted()) have no sealed sequences in \(directory) (open shards are not replayed)")
        }
        guard shards.count < Int(Int32.max), shards.allSatisfy({ $0.blocks < Int(Int32.max) }) else {
            throw .store("snapshot too large to index")
        }
        self.directory = store.directory
        self.datasets = infos
        self.snapshot = snapshot
        self.vocabSize = first.vocabSize
        self.readers = readers
    }

    /// The epoch's order (every sequence once; not yet split across ranks).
    public func order(epoch: Int, options: ReplayOptions) -> [SequenceRef] {
        ReplayOrder.epochOrder(snapshot, seed: options.seed, epoch: epoch, window: options.window, shuffle: options.shuffle)
    }

    /// Sequences each rank gets per epoch.
    public func shareSize(options: ReplayOptions) -> Int {
        ReplayOrder.shareSize(total: snapshot.sequences, worldSize: options.worldSize, remainder: options.remainder)
    }

    /// The state at the start of `epoch`.
    public func initialState(epoch: Int, options: ReplayOptions) -> ReplayState {
        ReplayState(snapshotHash: snapshot.hashHex, seed: options.seed, epoch: epoch, sequencesConsumed: 0,
                    rank: options.rank, worldSize: options.worldSize, maxSequenceLength: options.maxSequenceLength)
    }

    /// Replays `epoch` from its start.
    public func makeLoader(epoch: Int, options: ReplayOptions) throws(ReplayError) -> ReplayLoader {
        try makeLoader(resuming: initialState(epoch: epoch, options: options), options: options)
    }

    /// Replays the rest of the epoch recorded in `state`, using the state's seed and epoch.
    /// Refuses a state of another snapshot unless `allowSnapshotChange` (then the position is
    /// applied to the new snapshot's order, which is *not* the rest of the old one), and a state
    /// of another rank layout or chunk length.
    public func makeLoader(resuming state: ReplayState, options: ReplayOptions,
                           allowSnapshotChange: Bool = false) throws(ReplayError) -> ReplayLoader {
        let producer = try makeProducer(resuming: state, options: options, allowSnapshotChange: allowSnapshotChange)
        return ReplayLoader(producer: producer, epoch: state.epoch, depth: options.prefetchDepth)
    }

    func makeProducer(resuming state: ReplayState, options: ReplayOptions,
                      allowSnapshotChange: Bool = false) throws(ReplayError) -> BatchProducer {
        try options.validate()
        guard state.snapshotHash == snapshot.hashHex || allowSnapshotChange else {
            throw .stateMismatch("state was taken on snapshot \(state.snapshotHash), the cache now gives \(snapshot.hashHex) (shards added, removed or rewritten); pass allowSnapshotChange to continue anyway")
        }
        guard state.rank == options.rank, state.worldSize == options.worldSize else {
            throw .stateMismatch("state is rank \(state.rank) of \(state.worldSize), options say rank \(options.rank) of \(options.worldSize)")
        }
        guard state.maxSequenceLength == options.maxSequenceLength else {
            throw .stateMismatch("state was taken with maxSequenceLength \(state.maxSequenceLength), options say \(options.maxSequenceLength)")
        }
        // Batch CSR offsets are u32: the largest possible batch must fit.
        let maxK = datasets.map { $0.spec.policy.kMax + 1 }.max() ?? 1
        guard options.maxTokens.multipliedReportingOverflow(by: maxK).partialValue <= Int(UInt32.max) else {
            throw .invalidOptions("maxTokens \(options.maxTokens) × K ≤ \(maxK) candidates could overflow the u32 set offsets of a batch")
        }
        var effective = options
        effective.seed = state.seed
        let share = shareSize(options: effective)
        guard share > 0 else {
            throw .invalidOptions("\(snapshot.sequences) sequences cannot give each of \(options.worldSize) ranks one when dropping the remainder")
        }
        guard state.sequencesConsumed >= 0, state.sequencesConsumed <= share, state.chunksConsumed >= 0,
              state.sequencesConsumed < share || state.chunksConsumed == 0 else {
            throw .stateMismatch("state has consumed \(state.sequencesConsumed) sequences + \(state.chunksConsumed) chunks of a \(share)-sequence share")
        }
        var start = state
        start.snapshotHash = snapshot.hashHex
        return BatchProducer(readers: readers, order: order(epoch: state.epoch, options: effective), options: effective, state: start)
    }
}
