import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// SmolLM2-135M (`make model`) through `logit-train import-gguf`, checked against an independent
/// implementation that reads the GGUF file itself (scripts/reference: numpy forward with
/// llama.cpp's interleaved RoPE on the stored rows, Hugging Face `tokenizers` built from the
/// file's vocabulary and merges). Runs the release binaries `make test` builds.
final class RealModelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let gguf = root + "/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Plain English present on every Debian system (base-files).
    static let text = "/usr/share/common-licenses/GPL-3"

    var work = ""
    var bin = ""

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: Self.gguf) else {
            XCTFail("\(Self.gguf) is missing: run `make model` (make test does)")
            throw XCTSkip("no model")
        }
        bin = QuickstartTests.binaries(root: Self.root)
        work = NSTemporaryDirectory() + "real-model-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try run(bin + "/logit-train", ["import-gguf", "--gguf", Self.gguf, "--out", work + "/model", "--max-seq-len", "1024"])
    }

    struct ChildFailed: Error, CustomStringConvertible {
        var command: String, status: Int32, stderr: String
        var description: String { "\(command) exited \(status): \(stderr)" }
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: work) }

    @discardableResult
    func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: Self.root)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently: a child blocked on a full stderr pipe never exits.
        nonisolated(unsafe) var errorData = Data()
        let reader = Thread { errorData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while reader.isExecuting || !reader.isFinished { usleep(1000) }
        guard process.terminationStatus == 0 else {
            throw ChildFailed(command: ([executable] + arguments).joined(separator: " "), status: process.terminationStatus,
                              stderr: String(decoding: errorData.suffix(4000), as: UTF8.self))
        }
        return String(decoding: output, as: UTF8.self)
    }

    func python(_ script: String, _ arguments: [String]) throws -> String {
        try run("/usr/bin/env", ["python3", Self.root + "/scripts/reference/" + script] + arguments)
    }

    func readArray<T: BitwiseCopyable>(_ path: String, as: T.Type) throws -> [T] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
    }

    /// Ids equal those of Hugging Face's tokenizer on > 1 MB of code, numbers, whitespace runs
    /// and non-ASCII text.
    func testTokenizerMatchesHuggingFaceOnMixedText() throws {
        let text = work + "/mixed.txt"
        try python("mixed_text.py", ["--out", text])
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: text)[.size] as? Int)
        XCTAssertGreaterThan(size, 1_000_000)
        try run(bin + "/logit-train", ["tokenize", "--model", work + "/model", "--text", text, "--out", work + "/ours.u32"])
        try python("hf_tokenize.py", ["--gguf", Self.gguf, "--text", text, "--out", work + "/hf.u32"])
        let ours = try readArray(work + "/ours.u32", as: UInt32.self)
        let theirs = try readArray(work + "/hf.u32", as: UInt32.self)
        if let i = (0..<min(ours.count, theirs.count)).first(where: { ours[$0] != theirs[$0] }) {
            XCTFail("first difference at id \(i): ours \(ours[i..<min(i + 8, ours.count)]) theirs \(theirs[i..<min(i + 8, theirs.count)])")
        }
        XCTAssertEqual(ours.count, theirs.count)
        XCTAssertGreaterThan(ours.count, 500_000)
    }

    /// Logits of three 256-token windows within 1e-3 of the numpy forward; perplexity within 0.1%;
    /// the same greedy continuation.
    func testForwardMatchesTheNumpyReference() throws {
        try run(bin + "/logit-train", ["tokenize", "--model", work + "/model", "--text", Self.text, "--out", work + "/ids.u32"])
        try run(bin + "/logit-train", ["logits", "--model", work + "/model", "--tokens", work + "/ids.u32", "--window", "256",
                                       "--windows", "3", "--out", work + "/ours.f32"])
        try python("gguf_llama.py", ["logits", "--gguf", Self.gguf, "--tokens", work + "/ids.u32", "--window", "256",
                                     "--windows", "3", "--out", work + "/ref.f32"])
        let ours = try readArray(work + "/ours.f32", as: Float.self)
        let ref = try readArray(work + "/ref.f32", as: Float.self)
        XCTAssertEqual(ours.count, 3 * 256 * 49152)
        XCTAssertEqual(ours.count, ref.count)
        var worst: Float = 0, at = 0
        for i in 0..<min(ours.count, ref.count) {
            let d = abs(ours[i] - ref[i])
            if !(d <= worst) { worst = d; at = i }
        }
        print("real model: logits max |Δ| = \(worst) at position \(at / 49152), id \(at % 49152)")
        XCTAssertLessThanOrEqual(worst, 1e-3, "position \(at / 49152), id \(at % 49152): ours \(ours[at]), reference \(ref[at])")

        // `eval --seq-len L` scores windows of L inputs starting every L tokens: the reference's
        // windows of L + 1 ids with stride L.
        let eval = try run(bin + "/logit-train", ["eval", "--model", work + "/model", "--corpus", Self.text, "--seq-len", "256",
                                                  "--max-tokens", "1024", "--json"])
        let refPPL = try python("gguf_llama.py", ["ppl", "--gguf", Self.gguf, "--tokens", work + "/ids.u32", "--window", "257",
                                                  "--stride", "256", "--windows", "4", "--json"])
        let a = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.utf8)) as? [String: Any])
        let b = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(refPPL.utf8)) as? [String: Any])
        let ppl = try XCTUnwrap(a["perplexity"] as? Double), refValue = try XCTUnwrap(b["ppl"] as? Double)
        XCTAssertEqual(a["tokens"] as? Int, 1024)
        XCTAssertEqual(b["tokens_predicted"] as? Int, 1024)
        print("real model: perplexity \(ppl), reference \(refValue)")
        XCTAssertEqual(ppl, refValue, accuracy: 1e-3 * refValue)
        XCTAssertLessThan(ppl, 60, "a pretrained model reads a licence text far better than chance")

        let prompt = "A router forwards IP packets between networks by looking up the destination address in its"
        let generated = try run(bin + "/logit-train", ["generate", "--model", work + "/model", "--prompt", prompt, "--tokens", "12", "--json"])
        let g = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(generated.utf8)) as? [String: Any])
        let ids = try XCTUnwrap(g["ids"] as? [Int])
        try Data(prompt.utf8).write(to: URL(fileURLWithPath: work + "/prompt.txt"))
        try run(bin + "/logit-train", ["tokenize", "--model", work + "/model", "--text", work + "/prompt.txt", "--out", work + "/prompt.u32"])
        let promptIDs = try readArray(work + "/prompt.u32", as: UInt32.self).map(String.init).joined(separator: ",")
        let refGenerated = try python("gguf_llama.py", ["generate", "--gguf", Self.gguf, "--prompt-ids", promptIDs, "--tokens", "12"])
        let refIDs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(refGenerated.utf8)) as? [Int], refGenerated)
        XCTAssertEqual(ids, refIDs, "greedy continuation of \"\(prompt)\": ours \(g["text"] ?? "")")
    }

    /// `make experiment`'s driver (scripts/experiment.py) end to end at smoke size on the real
    /// model: Stage 0 through logitd with the K_max pilot, two recipes, two seeds, the validation
    /// pick, the peak-RSS probes and every key of report.json the issue names. Debian's licence
    /// texts (base-files) stand in for the corpora, so the test needs nothing else.
    func testExperimentScriptSmokeRunWritesEveryReportKey() throws {
        let corpora = work + "/corpora", out = work + "/experiment"
        try FileManager.default.createDirectory(atPath: corpora, withIntermediateDirectories: true)
        for (name, source) in [("domain.train", "GPL-3"), ("domain.heldout", "LGPL-2.1"), ("general.heldout", "Apache-2.0")] {
            try FileManager.default.copyItem(atPath: "/usr/share/common-licenses/" + source, toPath: corpora + "/\(name).txt")
        }
        try run("/usr/bin/env", ["python3", Self.root + "/scripts/experiment.py", "--profile", "smoke", "--out", out,
                                 "--bin", bin, "--model", work + "/model", "--corpora", corpora])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as? [String: Any])
        XCTAssertTrue(report.keys.contains("default_recipe"))
        let recipes = try XCTUnwrap(report["recipes"] as? [String: [String: Any]])
        XCTAssertEqual(Set(recipes.keys), ["replay_moclip_tail_kd0.5", "full_adamw"])
        let base = try XCTUnwrap((report["base"] as? [String: [String: Double]])?["general"]?["ppl"])
        for (name, row) in recipes {
            for key in ["domain_ppl", "general_ppl", "forgetting_pct", "general_kl_to_base", "general_top1", "train_s", "step_ms", "peak_rss_mb"] {
                let v = try XCTUnwrap(row[key] as? Double, "\(name) has no \(key)")
                XCTAssertTrue(v.isFinite, "\(name).\(key) = \(v)")
            }
            let seeds = try XCTUnwrap(row["seeds"] as? [[String: Any]])
            XCTAssertEqual(seeds.compactMap { $0["seed"] as? Int }, [0, 1])
            let general = try XCTUnwrap(row["general_ppl"] as? Double), forgetting = try XCTUnwrap(row["forgetting_pct"] as? Double)
            XCTAssertEqual(forgetting, 100 * (general / base - 1), accuracy: 1e-6, "forgetting is against the base model's general perplexity")
            XCTAssertGreaterThan(try XCTUnwrap(row["general_kl_to_base"] as? Double), 0, "a trained model moved from the base")
        }
        let stage0 = try XCTUnwrap(report["stage0"] as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(stage0["positions"] as? Int), 100)
        XCTAssertTrue([32, 64, 128, 256, 512, 1024, 2048].contains(try XCTUnwrap(stage0["k_max"] as? Int)))
        let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| replay_moclip_tail_kd0.5 (default) |") && markdown.contains("| full_adamw |"), markdown)
        XCTAssertEqual(report["default_recipe"] as? String, "replay_moclip_tail_kd0.5", "logit-train replay's defaults are tail + KD 0.5 + MoClip")
        for plot in ["general_kl.svg", "general_ppl.svg", "domain_ppl.svg"] {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: out + "/" + plot)))
            XCTAssertTrue(parser.parse(), "\(plot) is not well-formed")
        }
    }
}
