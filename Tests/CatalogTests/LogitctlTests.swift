import Foundation
import GRDB
import LogitCore
import ShardFormat
import XCTest
@testable import Catalog

/// `logitctl` as a user runs it: the real binary on real cache directories.
final class LogitctlTests: XCTestCase {
    struct Run { var status: Int32; var stdout: String; var stderr: String }

    func logitctl(_ args: String...) throws -> Run {
        let path = productPath("logitctl")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: path), "logitctl not built at \(path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A sealed cache with several shards and an open one.
    func makeCache(sequences: Int = 300) throws -> (dir: String, records: [SequenceRecord]) {
        let dir = makeTemporaryDirectory()
        var options = CacheStore.Options()
        options.maxShardBytes = 24 << 10
        options.shardWriter.targetBlockBytes = 4096
        let store = try CacheStore(directory: dir, options: options)
        try store.createDataset(testSpec)
        let records = randomRecords(sequences)
        for chunk in stride(from: 0, to: sequences, by: 30) {
            try store.appendDurably(dataset: "web-en", records: Array(records[chunk..<min(chunk + 30, sequences)]))
        }
        return (dir, records)
    }

    func testStatsEqualsABruteForceRecountFromTheShards() throws {
        let (dir, _) = try makeCache()
        let run = try logitctl("stats", dir, "--json")
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]

        // Brute force: decode every sequence of every shard file, ignoring the catalog aggregates.
        var recount = CoverageStats()
        for name in FileOps.files(in: dir + "/shards/web-en") {
            let path = dir + "/shards/web-en/" + name
            let reader = name.hasSuffix(".lgs") ? try ShardReader(sealedAt: path)
                                                : try ShardReader(openAt: path, committedLength: FileOps.size(path)!)
            for block in 0..<reader.blockCount {
                for ordinal in 0..<reader.blockInfo(block).sequenceCount {
                    recount.add(try reader.sequence(block: block, ordinal: ordinal))
                }
            }
        }
        XCTAssertEqual(json["sequences"] as? Int, recount.sequences)
        XCTAssertEqual(json["positions"] as? Int, recount.positions)
        XCTAssertEqual(json["candidates"] as? Int, recount.candidates)
        XCTAssertEqual(json["k_p50"] as? Int, recount.kQuantile(0.5))
        XCTAssertEqual(json["k_p90"] as? Int, recount.kQuantile(0.9))
        XCTAssertEqual(json["k_p99"] as? Int, recount.kQuantile(0.99))
        XCTAssertEqual(json["k_max"] as? Int, recount.kMax)
        XCTAssertEqual(json["k_mean"] as! Double, recount.kMean, accuracy: 1e-12)
        XCTAssertEqual(json["gold_forced_rate"] as! Double, recount.goldForcedRate, accuracy: 1e-12)
        // Stored log-probs are quantized (≤ 1/128 nat), so the covered mass agrees to ~1%.
        XCTAssertEqual(json["covered_mass_mean"] as! Double, recount.coveredMassMean, accuracy: 0.01)
        XCTAssertEqual(json["outside_mass_mean"] as! Double, 1 - recount.coveredMassMean, accuracy: 0.01)
        let bytes = FileOps.files(in: dir + "/shards/web-en").reduce(UInt64(0)) { $0 + FileOps.size(dir + "/shards/web-en/" + $1)! }
        XCTAssertEqual(json["bytes_per_candidate"] as! Double, Double(bytes) / Double(recount.candidates), accuracy: 1e-9)
        XCTAssertEqual(json["bytes_per_position"] as! Double, Double(bytes) / Double(recount.positions), accuracy: 1e-9)

        let table = try logitctl("stats", dir)
        XCTAssertTrue(table.stdout.contains("sequences                 300"), table.stdout)
        XCTAssertTrue(table.stdout.contains("K histogram:"))
    }

    func testDeepStatsFindsAPlantedCatalogDisagreement() throws {
        let (dir, _) = try makeCache()
        XCTAssertEqual(try logitctl("stats", dir, "--deep").status, 0)
        let db = try DatabaseQueue(path: dir + "/catalog.sqlite")
        try db.write { try $0.execute(sql: "UPDATE shard SET candidates = candidates + 5 WHERE generation = 2") }
        let run = try logitctl("stats", dir, "--deep")
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stdout.contains("000002-") && run.stdout.contains("candidates, shard holds"), run.stdout)
    }

    func testVerifyPassesCleanAndFindsEveryPlantedCorruption() throws {
        let (dir, _) = try makeCache()
        let clean = try logitctl("verify", dir)
        XCTAssertEqual(clean.status, 0, clean.stdout + clean.stderr)
        XCTAssertTrue(clean.stdout.hasPrefix("clean:"), clean.stdout)

        let shards = try CatalogDB(path: dir + "/catalog.sqlite", readOnly: true).shards(states: [.sealed])
        XCTAssertGreaterThanOrEqual(shards.count, 4)
        // 1. A flipped byte inside a block's payload.
        let flipped = dir + "/" + shards[0].path
        let block1 = try ShardReader(sealedAt: flipped).blockInfo(1)
        try flipByte(in: flipped, at: block1.offset + 64 + UInt64(block1.storedBytes / 2))
        // 2. A truncated shard.
        let truncated = dir + "/" + shards[1].path
        XCTAssertEqual(truncate(truncated, off_t(FileOps.size(truncated)! - 100)), 0)
        // 3. A deleted shard.
        try FileManager.default.removeItem(atPath: dir + "/" + shards[2].path)
        // 4. An orphan file.
        try Data("not a shard".utf8).write(to: URL(fileURLWithPath: dir + "/shards/web-en/999999-stray.lgs"))

        let run = try logitctl("verify", dir)
        XCTAssertEqual(run.status, 1)
        let problems = run.stdout.split(separator: "\n").filter { $0.hasPrefix("problem:") }
        XCTAssertTrue(problems.contains { $0.contains(shards[0].path + " block 1") }, run.stdout)
        XCTAssertTrue(problems.contains { $0.contains(shards[1].path) }, run.stdout)
        XCTAssertTrue(problems.contains { $0.contains(shards[2].path) && $0.contains("missing") }, run.stdout)
        XCTAssertTrue(problems.contains { $0.contains("999999-stray.lgs") && $0.contains("orphan") }, run.stdout)
        XCTAssertFalse(problems.contains { $0.contains(shards[3].path) }, "an intact shard was blamed: \(run.stdout)")

        // --quarantine moves the damaged shards aside; reading them then fails clearly.
        let q = try logitctl("verify", dir, "--quarantine")
        XCTAssertEqual(q.status, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/quarantine/" + (shards[0].path as NSString).lastPathComponent))
    }

    func flipByte(in path: String, at offset: UInt64) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: offset)
        let byte = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0x5A])
        try handle.close()
    }

    func testExportImportExportIsIdenticalAndReimportIsANoOp() throws {
        let (dir, _) = try makeCache(sequences: 120)
        let first = dir + "/first.jsonl", second = dir + "/second.jsonl"
        XCTAssertEqual(try logitctl("export", dir, "--dataset", "web-en", "--format", "jsonl", "--out", first).status, 0)
        let other = makeTemporaryDirectory()
        let imported = try logitctl("import", other, "--dataset", "web-en", "--vocab-size", "3000", "--tau", "0.9",
                                    "--kmin", "1", "--kmax", "12", first)
        XCTAssertEqual(imported.status, 0, imported.stderr)
        XCTAssertTrue(imported.stdout.contains("120 new, 0 duplicate"), imported.stdout)
        XCTAssertEqual(try logitctl("export", other, "--dataset", "web-en", "--out", second).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first)), try Data(contentsOf: URL(fileURLWithPath: second)))
        XCTAssertEqual(try String(contentsOfFile: first, encoding: .utf8).split(separator: "\n").count, 120)

        let again = try logitctl("import", other, "--dataset", "web-en", "--vocab-size", "3000", "--tau", "0.9",
                                 "--kmin", "1", "--kmax", "12", first)
        XCTAssertEqual(again.status, 0)
        XCTAssertTrue(again.stdout.contains("0 new, 120 duplicate"), again.stdout)
    }

    /// Sets whose teacher mass is ~1 come back from the store quantized, Σp up to exp(0.5/S)
    /// above 1: export → import must still round-trip, at the coarsest and the default scale, and
    /// `verify` must find both caches clean (its covered-mass tolerance follows the same bound).
    func testExportImportRoundTripsSetsThatCoverAllTheMass() throws {
        for scale in ["1", "64"] {
            let dir = makeTemporaryDirectory()
            var lines: [String] = []
            for k in 0..<40 {
                // Two candidates with p = 0.5 each (±quantization): Σp ≈ 1.
                let lp = -0.6931 + 0.0001 * Double(k % 3)
                lines.append(#"{"key": "k\#(k)", "tokens": [1, 2], "sets": [{"ids": [2, 7], "logprobs": [\#(lp), \#(lp)], "gold_forced": false}]}"#)
            }
            let source = dir + "/full-mass.jsonl", exported = dir + "/exported.jsonl"
            try lines.joined(separator: "\n").write(toFile: source, atomically: true, encoding: .utf8)
            let first = try logitctl("import", dir + "/a", "--dataset", "d", "--vocab-size", "50", "--kmax", "4",
                                     "--logprob-scale", scale, source)
            XCTAssertEqual(first.status, 0, "scale \(scale): " + first.stderr)
            XCTAssertEqual(try logitctl("export", dir + "/a", "--dataset", "d", "--out", exported).status, 0)
            let second = try logitctl("import", dir + "/b", "--dataset", "d", "--vocab-size", "50", "--kmax", "4",
                                      "--logprob-scale", scale, exported)
            XCTAssertEqual(second.status, 0, "scale \(scale): the export must import again: " + second.stderr)
            for cache in [dir + "/a", dir + "/b"] {
                let verify = try logitctl("verify", cache)
                XCTAssertEqual(verify.status, 0, "scale \(scale) \(cache): " + verify.stdout + verify.stderr)
                let deep = try logitctl("stats", cache, "--deep")
                XCTAssertEqual(deep.status, 0, "scale \(scale) \(cache): " + deep.stdout + deep.stderr)
            }
        }
    }

    func testImportRejectsMalformedLinesByNumberAndWritesNothing() throws {
        let dir = makeTemporaryDirectory()
        let good = #"{"key": "a", "tokens": [1, 2], "sets": [{"ids": [2, 5], "logprobs": [-0.1, -3], "gold_forced": false}]}"#
        let lines = [
            good,
            #"{"key": "b", "tokens": [1, 2], "sets": [{"ids": [2], "logprobs": [-0.1], "gold_forced": false}"#,   // bad JSON
            #"{"key": "c", "tokens": [1, 2], "sets": [{"ids": [3], "logprobs": [-0.1], "gold_forced": false}]}"#,  // gold missing
            #"{"key": "d", "tokens": [1, 2], "sets": [{"ids": [2, 100], "logprobs": [-0.1, -2], "gold_forced": false}]}"#,  // id ≥ vocab
            #"{"key": "e", "tokens": [1, 2], "sets": [{"ids": [2], "logprobs": [NaN], "gold_forced": false}]}"#,   // NaN
            #"{"key": "f", "tokens": [1, 2, 3], "sets": [{"ids": [2], "logprobs": [-0.1], "gold_forced": false}]}"#,  // length
            #"{"key": "g", "tokens": [1, 2], "sets": [{"ids": [2], "logprobs": ["x"], "gold_forced": false}]}"#,   // type
            #"{"key": "h", "tokens": [1, 2], "mask": [1], "sets": [{"ids": [2], "logprobs": [-0.1], "gold_forced": false}]}"#,  // misspelt field
            #"{"key": "i", "tokens": [1, 2], "sets": [{"ids": [2], "logprobs": [-0.1], "gold_forced": false, "p": 1}]}"#,  // unknown in a set
        ]
        let file = dir + "/bad.jsonl"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let run = try logitctl("import", dir + "/cache", "--dataset", "d1", "--vocab-size", "50", "--kmax", "4", file)
        XCTAssertEqual(run.status, 2)
        let err = run.stderr
        XCTAssertTrue(err.contains("nothing written"), err)
        XCTAssertTrue(err.contains("line 2:"), err)
        XCTAssertTrue(err.contains("line 3:") && err.contains("gold token 2 is not among"), err)
        XCTAssertTrue(err.contains("line 4:") && err.contains("id 100, expected < vocab size 50"), err)
        XCTAssertTrue(err.contains("line 5:"), err)
        XCTAssertTrue(err.contains("line 6: sets: has 1 entries, expected len(tokens) − 1 = 2"), err)
        XCTAssertTrue(err.contains("line 7: sets[0].logprobs[0]: expected a number"), err)
        XCTAssertTrue(err.contains("line 8: mask: unknown field (expected key, tokens, loss_mask, sets)"), err)
        XCTAssertTrue(err.contains("line 9: sets[0].p: unknown field (expected ids, logprobs, gold_forced)"), err)
        XCTAssertFalse(err.contains("line 1:"), err)
        let stats = try logitctl("stats", dir + "/cache", "--json")
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])?["sequences"] as? Int, 0)
    }

    /// The key rule on the import path: escaped NUL and controls, raw invalid UTF-8 (refused,
    /// never repaired), one byte past the maximum length; all-or-nothing. The maximum imports.
    func testImportAppliesTheKeyRuleAndWritesNothing() throws {
        let dir = makeTemporaryDirectory()
        func line(_ key: String) -> String {
            #"{"key": "\#(key)", "tokens": [1, 2], "sets": [{"ids": [2, 5], "logprobs": [-0.1, -3], "gold_forced": false}]}"#
        }
        let longest = String(repeating: "k", count: 1024)
        var bytes = Array([line("nul-a\\u0000b"), line("esc\\u001b[2J"), line("del\\u007f"), line(longest + "k"), line(longest),
                           line("lone\\ud800")].joined(separator: "\n").utf8) + [0x0A]
        bytes += Array(line("bad-").utf8)
        bytes.insert(0xFF, at: bytes.count - Array(#"", "tokens": [1, 2], "sets": [{"ids": [2, 5], "logprobs": [-0.1, -3], "gold_forced": false}]}"#.utf8).count)
        let file = dir + "/keys.jsonl"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let run = try logitctl("import", dir + "/cache", "--dataset", "d1", "--vocab-size", "50", "--kmax", "4", file)
        XCTAssertEqual(run.status, 2)
        let err = run.stderr
        XCTAssertTrue(err.contains("nothing written"), err)
        XCTAssertTrue(err.contains("line 1: invalid sequence 'nul-a\\u{0}b': key byte 5 is the control character 0x00"), err)
        XCTAssertTrue(err.contains("line 2: invalid sequence 'esc\\u{1b}[2J': key byte 3 is the control character 0x1B"), err)
        XCTAssertTrue(err.contains("line 3:") && err.contains("control character 0x7F"), err)
        XCTAssertTrue(err.contains("line 4:") && err.contains("key is 1025 bytes"), err)
        XCTAssertFalse(err.contains("line 5:"), err)
        XCTAssertTrue(err.contains("line 6:"), err)
        XCTAssertTrue(err.contains("line 7: not valid UTF-8 at byte 13 of the line"), err)
        let stats = try logitctl("stats", dir + "/cache", "--json")
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])?["sequences"] as? Int, 0)

        try (line(longest) + "\n" + line("é-\\u0085") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let ok = try logitctl("import", dir + "/cache", "--dataset", "d1", "--vocab-size", "50", "--kmax", "4", file)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(try logitctl("verify", dir + "/cache").status, 0)
        XCTAssertEqual(try logitctl("inspect", dir + "/cache", "--dataset", "d1", "--key", longest).status, 0)
        XCTAssertEqual(try logitctl("inspect", dir + "/cache", "--dataset", "d1", "--key", "é-\u{85}").status, 0)

        // Keys are bytes: precomposed and decomposed "é" with different content are two keys.
        try (line("caf\u{E9}") + "\n" + line("cafe\u{301}").replacingOccurrences(of: "-3", with: "-4") + "\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let both = try logitctl("import", dir + "/cache", "--dataset", "d1", "--vocab-size", "50", "--kmax", "4", file)
        XCTAssertEqual(both.status, 0, both.stderr)
        XCTAssertTrue(both.stdout.contains("2 new"), both.stdout)
    }

    /// `inspect --key` applies the same rule (exit 2 with the rule), invalid UTF-8 included,
    /// which argv would otherwise hand over repaired.
    func testInspectRefusesKeysOffTheRule() throws {
        let (dir, _) = try makeCache(sequences: 3)
        for (key, fragment) in [("tab\tkey", "key byte 3 is the control character 0x09"),
                                (String(repeating: "k", count: 1025), "key is 1025 bytes")] {
            let run = try logitctl("inspect", dir, "--dataset", "web-en", "--key", key)
            XCTAssertEqual(run.status, 2, run.stderr)
            XCTAssertTrue(run.stderr.contains(fragment), run.stderr)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", #"exec "$0" inspect "$1" --dataset web-en --key "$(printf 'k\377')""#, productPath("logitctl"), dir]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 2, text)
        XCTAssertTrue(text.contains("argument 6 is not valid UTF-8 (byte 1)"), text)
    }

    func testMissingCacheAndUnknownNamesFailClearly() throws {
        let missing = try logitctl("stats", "/nonexistent/cache")
        XCTAssertEqual(missing.status, 3)
        XCTAssertTrue(missing.stderr.contains("is not a logitd cache"), missing.stderr)
        let (dir, _) = try makeCache(sequences: 10)
        let unknown = try logitctl("inspect", dir, "--dataset", "web-en", "--key", "nope")
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("no key 'nope'"), unknown.stderr)
        let inspect = try logitctl("inspect", dir, "--dataset", "web-en", "--key", "k3", "--positions", "0:2", "--json")
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((object["sets"] as! [Any]).count, 2)
    }
}
