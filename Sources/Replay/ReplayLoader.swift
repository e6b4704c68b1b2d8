import Dispatch
import Foundation
import Synchronization

/// Hands one consumer the batches of one rank's share of one epoch, produced ahead of time on a
/// background thread (up to `prefetchDepth` ready batches) so decompression and packing overlap
/// the training step.
///
/// A batch returned by `next()` stays valid until the following `next()` call, which recycles
/// its buffers. `state` is the resume point after the last batch returned. Not thread-safe:
/// one consumer. Stopping (or dropping the loader) stops and joins the producer thread.
public final class ReplayLoader {
    public let epoch: Int
    /// Sequences in this rank's share.
    public let shareSize: Int
    public private(set) var state: ReplayState
    private let channel: BatchChannel
    private var handed: ReplayBatch?
    private var finished = false

    init(producer: BatchProducer, epoch: Int, depth: Int) {
        self.epoch = epoch
        self.shareSize = producer.shareSize
        self.state = producer.state
        let channel = BatchChannel(depth: depth)
        self.channel = channel
        let box = ProducerBox(producer)
        let thread = Thread {
            defer { channel.done.signal() }
            let producer = box.producer
            while true {
                channel.slots.wait()
                guard let batch = channel.takeFree() else { return }
                do throws(ReplayError) {
                    if try producer.fill(batch) {
                        channel.push(.success(batch))
                    } else {
                        channel.push(.success(nil))
                        return
                    }
                } catch {
                    channel.push(.failure(error))
                    return
                }
            }
        }
        thread.name = "logitd-replay-prefetch"
        thread.start()
    }

    deinit { stop() }

    /// The next batch, or nil at the end of the share. Throws what the producer hit (a corrupt
    /// block, say); after nil or an error it keeps returning nil.
    public func next() throws(ReplayError) -> ReplayBatch? {
        guard !finished else { return nil }
        if let previous = handed {
            channel.recycle(previous)
            handed = nil
        }
        switch channel.pop() {
        case .success(let batch?):
            handed = batch
            state = batch.stateAfter
            return batch
        case .success(nil):
            finished = true
            return nil
        case .failure(let error):
            finished = true
            throw error
        }
    }

    /// Stops the producer and waits for its thread to exit. Idempotent.
    public func stop() {
        guard channel.stop() else { return }
        channel.done.wait()
        finished = true
    }
}

/// Moves the producer (used by one thread only) into the prefetch thread.
private final class ProducerBox: @unchecked Sendable {
    let producer: BatchProducer
    init(_ producer: BatchProducer) { self.producer = producer }
}

/// Bounded hand-off between the producer thread and the consumer. `slots` counts batches the
/// producer may still queue; `filled` counts queued results; `done` fires when the producer exits.
private final class BatchChannel: Sendable {
    struct State {
        var ready: [Result<ReplayBatch?, ReplayError>] = []
        var free: [ReplayBatch] = []
        var stopped = false
    }
    let slots = DispatchSemaphore(value: 0)
    let filled = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    let state = Mutex(State())

    /// Starts at 0 and is signalled `depth` times: libdispatch traps when a semaphore is freed
    /// with a value below the one it was created with, which a stopped producer would leave.
    init(depth: Int) { for _ in 0..<depth { slots.signal() } }

    /// A batch to fill (recycled or new), or nil once stopped.
    func takeFree() -> ReplayBatch? {
        state.withLock { s in
            if s.stopped { return nil }
            return s.free.popLast() ?? ReplayBatch(state: ReplayState(snapshotHash: "", seed: 0, epoch: 0, sequencesConsumed: 0,
                                                                      rank: 0, worldSize: 1, maxSequenceLength: 1))
        }
    }

    func push(_ result: Result<ReplayBatch?, ReplayError>) {
        state.withLock { $0.ready.append(result) }
        filled.signal()
    }

    func pop() -> Result<ReplayBatch?, ReplayError> {
        filled.wait()
        let r = state.withLock { $0.ready.removeFirst() }
        slots.signal()
        return r
    }

    func recycle(_ batch: ReplayBatch) { state.withLock { $0.free.append(batch) } }

    /// Marks the channel stopped and wakes the producer; false if it was already stopped.
    func stop() -> Bool {
        let first = state.withLock { s in
            if s.stopped { return false }
            s.stopped = true
            return true
        }
        if first { slots.signal() }
        return first
    }
}
