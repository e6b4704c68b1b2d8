import Catalog
import Foundation
import LogitCore
import XCTest

/// The whole method through the real binaries, at toy size: pretrain → logitd + teacher (both
/// modes) → verify → replay training → evaluation, plus resume and refusal paths.
final class PipelineTests: XCTestCase {
    struct Run { var status: Int32; var stdout: String; var stderr: String }

    static let general = "/usr/share/common-licenses/GPL-3"
    static let domain = "/usr/share/common-licenses/Apache-2.0"

    static func binary(_ name: String) -> String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        if FileManager.default.isExecutableFile(atPath: dir + "/" + name) { return dir + "/" + name }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.path + "/.build/debug/" + name
    }

    @discardableResult
    func run(_ name: String, _ args: [String], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary(name))
        process.arguments = args
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so neither can fill up and block the child.
        nonisolated(unsafe) var stderrData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { stderrData = err.fileHandleForReading.readDataToEndOfFile() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderrData, as: UTF8.self))
    }

    /// `logitd` on an ephemeral port; returns the process and its URL.
    func startDaemon(cache: String) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary("logitd"))
        process.arguments = ["serve", "--cache-dir", cache, "--port", "0", "--log-level", "warning"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = ""
        while !line.hasSuffix("\n") {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { throw XCTSkip("logitd exited before listening") }
            line += String(decoding: byte, as: UTF8.self)
        }
        let url = try XCTUnwrap(line.range(of: "listening on ").map { String(line[$0.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines) })
        return (process, url)
    }

    func testPretrainTeachReplayEvaluateThroughTheBinaries() throws {
        let root = NSTemporaryDirectory() + "pipeline-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = root + "/base", cache = root + "/cache", ft = root + "/ft"
        let pretrain = ["pretrain", "--corpus", Self.general, "--vocab-size", "320", "--size", "toy", "--out", base,
                        "--steps", "12", "--batch", "2", "--seq-len", "32", "--eval-every", "6", "--eval-tokens", "256",
                        "--checkpoint-every", "6", "--warmup", "2"]
        var r = try run("logit-train", pretrain)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        for file in ["checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/tokenizer/vocab.json",
                     "checkpoint/optimizer.state", "checkpoint/trainer.json", "metrics.jsonl", "loss.svg", "run.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/" + file), "pretrain did not write \(file)")
        }
        r = try run("logit-train", pretrain)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("already finished"), r.stdout)
        r = try run("logit-train", pretrain.map { $0 == "12" ? "13" : $0 })
        XCTAssertEqual(r.status, 1, "a resumed run with other settings must be refused")
        XCTAssertTrue(r.stderr.contains("steps"), r.stderr)

        // Stage 0 through the daemon, in both modes (logits also through shared memory): the daemon selects from the rows with the
        // same policy the teacher uses, so both datasets must hold the same sets.
        let (daemon, url) = try startDaemon(cache: cache)
        defer { if daemon.isRunning { daemon.terminate() } }
        let teach = ["--model", base, "--corpus", Self.domain, "--daemon", url, "--seq-len", "48", "--batch", "4",
                     "--tau", "0.9", "--kmin", "1", "--kmax", "16"]
        r = try run("logit-teach", teach + ["--dataset", "domain"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        r = try run("logit-teach", teach + ["--dataset", "domain"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("0 to record"), "a re-run must skip every stored window: \(r.stdout)")
        r = try run("logit-teach", teach + ["--dataset", "domain-logits", "--mode", "logits"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        r = try run("logit-teach", teach + ["--dataset", "domain-shm", "--mode", "logits", "--shared-memory"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        r = try run("logit-teach", teach + ["--dataset", "domain-shm", "--shared-memory"])
        XCTAssertEqual(r.status, 64, "--shared-memory without --mode logits must be refused")
        daemon.terminate()
        daemon.waitUntilExit()
        XCTAssertEqual(daemon.terminationStatus, 0)

        let store = try CacheStore(directory: cache, mode: .readOnly)
        let sets = try XCTUnwrap(try store.catalog.dataset(named: "domain"))
        XCTAssertEqual(sets.spec.vocabSize, 320)
        XCTAssertTrue(sets.spec.teacherId.hasPrefix("tinylm sha256:"), sets.spec.teacherId)
        let keys = try store.catalog.shards(datasetId: sets.id).flatMap { try store.catalog.sequences(shardId: $0.id).map(\.key) }
        XCTAssertGreaterThan(keys.count, 5)
        for key in keys {
            let a = try XCTUnwrap(try store.read(dataset: "domain", key: key))
            let b = try XCTUnwrap(try store.read(dataset: "domain-logits", key: key), "logits mode lost \(key)")
            XCTAssertEqual(a, b, "sets and logits mode disagree on \(key)")
            let c = try XCTUnwrap(try store.read(dataset: "domain-shm", key: key), "shared memory lost \(key)")
            XCTAssertEqual(a, c, "sets mode and logits through shared memory disagree on \(key)")
        }
        r = try run("logitctl", ["verify", cache])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)

        // Stage 1 from the cache alone, then evaluation.
        let replay = ["replay", "--cache", cache, "--dataset", "domain", "--init", base, "--out", ft, "--steps", "6",
                      "--batch-tokens", "96", "--seq-len", "48", "--warmup", "1", "--eval", "domain=\(Self.domain)",
                      "--eval-every", "3", "--eval-tokens", "256", "--kd-alpha", "0.5"]
        r = try run("logit-train", replay)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        let evalLines = try String(contentsOfFile: ft + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("\"eval\"") }
        XCTAssertEqual(evalLines.count, 3, "evaluations at steps 0, 3 and 6")
        r = try run("logit-train", ["eval", "--model", ft, "--corpus", Self.domain, "--seq-len", "48", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let ppl = try XCTUnwrap(result["perplexity"] as? Double)
        XCTAssertTrue(ppl > 1 && ppl < 320, "perplexity \(ppl) outside (1, vocab)")

        // Refusals: a model whose tokenizer is not the dataset's, and a missing model.
        let other = root + "/other"
        r = try run("logit-train", ["pretrain", "--corpus", Self.domain, "--vocab-size", "320", "--size", "toy", "--out", other,
                                    "--steps", "1", "--batch", "1", "--seq-len", "16", "--warmup", "0", "--eval-tokens", "64"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try run("logit-train", ["replay", "--cache", cache, "--dataset", "domain", "--init", other, "--out", root + "/ft2", "--steps", "1",
                                    "--warmup", "0"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("tokenizer"), r.stderr)
        r = try run("logit-train", ["eval", "--model", root + "/nothing", "--corpus", Self.domain])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("holds no model"), r.stderr)
    }
}
