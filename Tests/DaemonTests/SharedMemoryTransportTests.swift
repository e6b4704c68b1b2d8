import Catalog
import Foundation
@testable import LogitClient
import LogitCore
import ShardFormat
import SharedMemory
import WireFormat
import XCTest

/// Logits bodies handed to the real daemon through shared memory (schema/SHARED_MEMORY.md).
/// Other processes are real ones: a Python child owns the memfds a teacher on this host would.
final class SharedMemoryTransportTests: XCTestCase {
    static let spec = DaemonTests.spec
    static let vocab = 2000

    func started(_ args: [String] = []) async throws -> (DaemonProcess, LogitClient) {
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(), arguments: args)
        try await daemon.waitReady()
        let client = LogitClient(baseURL: daemon.baseURL, maxAttempts: 2)
        try await client.createDataset(Self.spec)
        return (daemon, client)
    }

    /// A logits body of `sequences` × 12 rows and the records the daemon must store for it.
    func logitsBody(prefix: String, sequences: Int = 3) throws -> ([UInt8], [SequenceRecord]) {
        let teacher = SyntheticTeacher(vocabSize: Self.vocab, seed: 5)
        let selector = try TopKSelector(policy: Self.spec.policy)
        var encoder = WireBatchEncoder(mode: .logits, vocabSize: Self.vocab, dtype: .f32)
        var expected: [SequenceRecord] = []
        for s in 0..<sequences {
            var rows = [Float](repeating: 0, count: 12 * Self.vocab)
            var tokens: [UInt32] = [3]
            for t in 0..<12 {
                tokens.append(rows.withUnsafeMutableBufferPointer {
                    teacher.fillRow(position: 50 * s + t, into: UnsafeMutableBufferPointer(rebasing: $0[t * Self.vocab..<(t + 1) * Self.vocab]))
                })
            }
            rows.withUnsafeBytes { encoder.appendLogits(key: "\(prefix)\(s)", tokens: tokens, rows: $0) }
            let sets = try rows.withUnsafeBufferPointer { try selector.selectBatch(rows: $0, vocab: Self.vocab, golds: Array(tokens.dropFirst())) }
            expected.append(SequenceRecord(key: "\(prefix)\(s)", tokens: tokens, selected: sets))
        }
        return (encoder.finish(), expected)
    }

    func stored(_ daemon: DaemonProcess, _ key: String) throws -> SequenceRecord? {
        try CacheStore(directory: daemon.cacheDir, mode: .readOnly).read(dataset: "domain", key: key)
    }

    func assertStatus<T>(_ status: Int, _ fragment: String, line: UInt = #line, _ body: () async throws -> T) async {
        do {
            _ = try await body()
            XCTFail("expected \(status) containing '\(fragment)'", line: line)
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, status, "\(e)", line: line)
            XCTAssertTrue(fragment.isEmpty || e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", line: line)
        } catch {
            XCTFail("\(error)", line: line)
        }
    }

    func testABodyInSharedMemoryIsStoredAsIfSentAndCountsDuplicates() async throws {
        let (daemon, client) = try await started()
        let (body, expected) = try logitsBody(prefix: "shm-")
        let slots = try await SharedMemorySlots(client: client, name: "teacher-0", slotBytes: body.count, slotCount: 2)
        XCTAssertEqual(slots.slotBytes % 64, 0, "slots start at multiples of 64, so rows are aligned")
        let first = try await slots.append(dataset: "domain", body: body, slot: 1)
        XCTAssertEqual(first.new, 3)
        XCTAssertEqual(first.positions, 36)
        for r in expected { XCTAssertEqual(try stored(daemon, r.key), canonicalized(r, logprobScale: 64)) }
        let again = try await slots.append(dataset: "domain", slot: 1, length: body.count)
        XCTAssertEqual(again.duplicates, 3)

        // Registering the same region again is a no-op; another path under the name is a 409.
        try await client.registerRegion(name: "teacher-0", region: slots.region)
        let other = try SharedMemoryRegion(byteCount: 4096)
        await assertStatus(409, "is registered for") { try await client.registerRegion(name: "teacher-0", region: other) }
        let listed = try await client.regions()
        XCTAssertEqual(listed.map(\.name), ["teacher-0"])
        XCTAssertEqual(listed.first?.owner_pid, getpid())
        XCTAssertEqual(listed.first?.bytes, slots.region.bytes.count)

        var metrics = String(decoding: try await client.send(.GET, "metrics").1, as: UTF8.self)
        XCTAssertTrue(metrics.contains("logitd_shared_memory_regions 1"), metrics)
        XCTAssertTrue(metrics.contains("logitd_shared_memory_mapped_bytes \(slots.region.bytes.count)"), metrics)
        XCTAssertTrue(metrics.contains("logitd_shared_memory_bytes_total \(2 * body.count)"), metrics)

        try await slots.close()
        let afterClose = try await client.regions()
        XCTAssertEqual(afterClose, [])
        metrics = String(decoding: try await client.send(.GET, "metrics").1, as: UTF8.self)
        XCTAssertTrue(metrics.contains("logitd_shared_memory_regions 0"), metrics)
        await assertStatus(404, "unknown shared-memory region") { try await slots.append(dataset: "domain", slot: 1, length: body.count) }
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testBadReferencesAndBadBodiesAre4xxAndWriteNothing() async throws {
        let (daemon, client) = try await started()
        let (body, _) = try logitsBody(prefix: "bad-", sequences: 1)
        let slots = try await SharedMemorySlots(client: client, name: "r", slotBytes: body.count)
        let size = slots.region.bytes.count
        await assertStatus(400, "lie outside the region") { try await client.appendShared(dataset: "domain", region: "r", offset: size - 10, length: 11) }
        await assertStatus(400, "lie outside the region") { try await client.appendShared(dataset: "domain", region: "r", offset: -1, length: 5) }
        await assertStatus(404, "unknown shared-memory region") { try await client.appendShared(dataset: "domain", region: "nope", offset: 0, length: 5) }
        await assertStatus(404, "dataset") { try await slots.append(dataset: "missing", slot: 0, length: body.count) }

        // A token ≥ vocab inside the body: refused with its byte offset, as over HTTP.
        var broken = body
        let tokenOffset = WireBatchHeader.byteCount + 2 + "bad-0".utf8.count + 4 + 1 + 4
        withUnsafeBytes(of: UInt32(Self.vocab).littleEndian) { broken.replaceSubrange(tokenOffset..<tokenOffset + 4, with: $0) }
        do {
            _ = try await slots.append(dataset: "domain", body: broken, slot: 0)
            XCTFail("a bad body was accepted")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 400)
            XCTAssertEqual(e.offset, tokenOffset, "\(e)")
            XCTAssertEqual(e.sequence, 0)
        }
        // A body shorter than it says (the reference cuts it): the decoder says where it ends.
        body.withUnsafeBytes { slots.slot(0).copyMemory(from: $0) }
        await assertStatus(400, "body ends inside logits rows") { try await slots.append(dataset: "domain", slot: 0, length: body.count - 1) }
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 0, "nothing of a refused request may be written")

        // Paths that are not size-sealed memfds are refused, none of them hangs.
        let dir = temporaryDirectory()
        let file = dir + "/plain"
        FileManager.default.createFile(atPath: file, contents: Data(count: 4096))
        // "not a memfd" on most file systems; on tmpfs the file has seals but can still shrink.
        await assertStatus(400, file) { try await self.register(client, "plain", file) }
        XCTAssertEqual(mkfifo(dir + "/fifo", 0o600), 0)
        await assertStatus(400, "must be /proc/PID/fd/N") { try await self.register(client, "fifo", dir + "/fifo") }
        await assertStatus(400, "must be /proc/PID/fd/N") { try await self.register(client, "gone", dir + "/missing") }
        // A /proc path of this (live) process whose fd is no memfd, and one that does not exist.
        let plain = open(file, O_RDONLY)
        defer { close(plain) }
        await assertStatus(400, "not a memfd") { try await self.register(client, "plainfd", "/proc/\(getpid())/fd/\(plain)") }
        await assertStatus(400, "No such file") { try await self.register(client, "gonefd", "/proc/\(getpid())/fd/99999") }
        await assertStatus(400, "region name") { try await self.register(client, "../x", file) }
        let names = try await client.regions().map(\.name)
        XCTAssertEqual(names, ["r"])
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// Regions that would have no owner (#16): through a symlink, /proc/self, "..", a NUL suffix, or
    /// the daemon's own pid. Each is refused, and none is left registered.
    func testRegionsWithoutAnOwnerAreRefused() async throws {
        let (daemon, client) = try await started()
        let region = try SharedMemoryRegion(byteCount: 4096)
        let canonical = region.path
        XCTAssertNotNil(SharedMemoryMapping.owner(of: canonical))
        let fd = canonical.split(separator: "/").last!
        let link = temporaryDirectory() + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: canonical)
        for path in [link, "/proc/self/fd/\(fd)", "/proc/\(getpid())/../\(getpid())/fd/\(fd)", canonical + "\u{0}x",
                     "/proc//\(getpid())/fd/\(fd)", "proc/\(getpid())/fd/\(fd)", "/proc/\(daemon.process.processIdentifier)/fd/0"] {
            await assertStatus(400, "/proc/") { try await self.register(client, "r", path) }
        }
        let listed = try await client.regions()
        XCTAssertTrue(listed.isEmpty, "\(listed)")
        try await client.registerRegion(name: "r", region: region)
        let owners = try await client.regions().map(\.owner_pid)
        XCTAssertEqual(owners, [getpid()])
        XCTAssertEqual(daemon.stop(), 0)
    }

    func register(_ client: LogitClient, _ name: String, _ path: String) async throws {
        _ = try await client.send(.POST, "v1/regions", body: LogitClient.json(["name": name, "path": path]), contentType: "application/json")
    }

    /// A Python child holding a memfd; `sealed` adds F_SEAL_SHRINK. Prints "PID FD".
    func memfdOwner(sealed: Bool, uid: UInt32? = nil) throws -> (Process, String) {
        let script = """
        import fcntl, os, sys, time
        fd = os.memfd_create("teacher", os.MFD_ALLOW_SEALING)
        os.ftruncate(fd, 1 << 20)
        if \(sealed ? "True" : "False"):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        print(os.getpid(), fd, flush=True)
        time.sleep(120)
        """
        let process = Process()
        if let uid {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "/usr/bin/python3", "-c", script]
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script]
        }
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let line = firstLine(of: out.fileHandleForReading)
        let parts = line.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        XCTAssertEqual(parts.count, 2, "python child said '\(line)'")
        return (process, "/proc/\(parts[0])/fd/\(parts[1])")
    }

    func testUnsealedOrForeignMemfdsAreRefusedAndRegionsOfExitedTeachersAreDropped() async throws {
        let (daemon, client) = try await started()
        // A region its owner could shrink: every later read of a lost page would be a SIGBUS.
        let (loose, loosePath) = try memfdOwner(sealed: false)
        defer { loose.terminate() }
        await assertStatus(400, "can still shrink") { try await self.register(client, "loose", loosePath) }

        // A root daemon must not read another user's memory on a client's say-so.
        if geteuid() == 0 {
            let (stranger, strangerPath) = try memfdOwner(sealed: true, uid: 65534)
            defer { stranger.terminate() }
            await assertStatus(400, "belongs to uid 65534") { try await self.register(client, "stranger", strangerPath) }
        }

        let (owner, path) = try memfdOwner(sealed: true)
        try await register(client, "teacher", path)
        let owners = try await client.regions().map(\.owner_pid)
        XCTAssertEqual(owners, [owner.processIdentifier])
        kill(owner.processIdentifier, SIGKILL)
        owner.waitUntilExit()
        // The daemon's once-a-second sweep unregisters it.
        var remaining = try await client.regions()
        for _ in 0..<40 where !remaining.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            remaining = try await client.regions()
        }
        XCTAssertEqual(remaining, [], "the region of an exited process is still registered")
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testRegionsAreBoundedByMaxSharedBytesBeforeAnythingIsMapped() async throws {
        let (daemon, client) = try await started(["--max-shared-bytes", "100000"])
        // 64 GiB, sparse: mapped (and so populated) it would be 64 GiB of daemon memory.
        let huge = try SharedMemoryRegion(byteCount: 64 << 30)
        await assertStatus(413, "exceeds max_shared_bytes 100000") { try await client.registerRegion(name: "huge", region: huge) }
        let a = try SharedMemoryRegion(byteCount: 60_000), b = try SharedMemoryRegion(byteCount: 60_000)
        try await client.registerRegion(name: "a", region: a)
        await assertStatus(503, "max_shared_bytes") { try await client.registerRegion(name: "b", region: b) }
        try await client.unregisterRegion(name: "a")
        try await client.registerRegion(name: "b", region: b)
        let names = try await client.regions().map(\.name)
        XCTAssertEqual(names, ["b"])
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testSharedMemoryCanBeTurnedOff() async throws {
        let (daemon, client) = try await started(["--shared-memory", "false"])
        let region = try SharedMemoryRegion(byteCount: 4096)
        await assertStatus(404, "") { try await client.registerRegion(name: "r", region: region) }
        await assertStatus(404, "") { try await client.appendShared(dataset: "domain", region: "r", offset: 0, length: 10) }
        XCTAssertEqual(daemon.stop(), 0)
    }
}
