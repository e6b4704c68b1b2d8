import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// `make quickstart QUICK=1` as a test: the README's first command, end to end at toy size, with
/// the binaries this test run was built with. Needs the Debian text packages (the corpora script
/// installs them; CI runs as root).
final class QuickstartTests: XCTestCase {
    /// The release binaries when they are at least as new as this test run's debug build (`make
    /// test` builds both; toy training in a debug build takes minutes instead of seconds), else
    /// the debug ones.
    static func binaries(root: String) -> String {
        let debug = URL(fileURLWithPath: PipelineTests.binary("logit-train")).deletingLastPathComponent().path
        let release = root + "/.build/release"
        func modified(_ path: String) -> Date? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        }
        for name in ["logit-train", "logit-teach", "logitd", "logitctl"] {
            guard let r = modified(release + "/" + name), let d = modified(debug + "/" + name), r >= d else {
                print("quickstart test: using the debug binaries in \(debug) (release \(name) missing or older)")
                return debug
            }
        }
        return release
    }

    func testQuickQuickstartWritesAnHonestReport() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let bin = Self.binaries(root: root)
        let out = NSTemporaryDirectory() + "quickstart-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root + "/scripts/quickstart.sh", out, "quick"]
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        process.environment = ProcessInfo.processInfo.environment.merging(["BIN": bin]) { $1 }
        let log = Pipe()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(output.suffix(4000)))

        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as? [String: Any])
        let recipes = try XCTUnwrap(report["recipes"] as? [String: [String: Double]])
        XCTAssertEqual(Set(recipes.keys), ["base", "replay_moclip_tail_kd", "full_adamw", "replay_moclip", "full_moclip"])
        for (name, row) in recipes {
            for key in ["domain_ppl", "general_ppl", "forgetting_pct", "train_seconds"] {
                let v = try XCTUnwrap(row[key], "\(name) has no \(key)")
                XCTAssertTrue(v.isFinite, "\(name).\(key) = \(v)")
            }
            XCTAssertGreaterThan(row["domain_ppl"]!, 1)
            // forgetting is defined against the base model's general perplexity
            XCTAssertEqual(row["forgetting_pct"]!, 100 * (row["general_ppl"]! / recipes["base"]!["general_ppl"]! - 1), accuracy: 1e-6)
        }
        let cache = try XCTUnwrap(report["cache"] as? [String: Double])
        XCTAssertGreaterThan(cache["positions"] ?? 0, 1000)
        XCTAssertGreaterThan(cache["bytes"] ?? 0, 0)
        XCTAssertTrue((1...65).contains(cache["k_mean"] ?? 0))
        XCTAssertTrue((0...1).contains(cache["covered_mass_mean"] ?? -1))

        let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| replay_moclip_tail_kd |") && markdown.contains("| replay_moclip |"))
        XCTAssertTrue(markdown.contains("## What the numbers show"))
        XCTAssertTrue(output.contains("| full_adamw |"), "the table is printed at the end")
        for plot in ["heldout_domain.svg", "heldout_general.svg"] {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: out + "/" + plot)))
            XCTAssertTrue(parser.parse(), "\(plot) is not well-formed")
        }
    }
}
