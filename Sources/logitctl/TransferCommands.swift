import ArgumentParser
import Catalog
import Foundation
import LogitCore
import WireFormat

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a dataset as JSONL (one sequence per line, storage order).")

    @Argument(help: "Cache directory.") var cacheDir: String
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Output format (jsonl).") var format: String = "jsonl"
    @Option(help: "Output file (default: standard output).") var out: String?

    func run() throws {
        guard format == "jsonl" else { throw ValidationError("--format: only 'jsonl' is supported, got '\(format)'") }
        do {
            let store = try openReadOnly(cacheDir)
            let info = try store.dataset(named: dataset)
            let handle: FileHandle
            if let out {
                guard FileManager.default.createFile(atPath: out + ".partial", contents: nil) else {
                    throw StoreError.io("cannot create \(out).partial")
                }
                handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out + ".partial"))
            } else {
                handle = FileHandle.standardOutput
            }
            var buffer = ""
            for shard in try store.catalog.shards(datasetId: info.id) where shard.state != .quarantined {
                for entry in try store.catalog.sequences(shardId: shard.id) {
                    buffer += JSONLines.encode(try store.read(entry: entry, shard: shard)) + "\n"
                    if buffer.utf8.count > 1 << 20 { handle.write(Data(buffer.utf8)); buffer = "" }
                }
            }
            handle.write(Data(buffer.utf8))
            if let out {
                try handle.synchronize()
                try handle.close()
                // Written whole or not at all: a reader never sees a half export.
                _ = try? FileManager.default.removeItem(atPath: out)
                try FileManager.default.moveItem(atPath: out + ".partial", toPath: out)
            }
        } catch {
            throw fail(error)
        }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Load JSONL into a dataset (created when missing).",
        discussion: """
            Every line is validated first; if any is bad, nothing is written and each error names its line \
            and field. Writing then goes in durable batches: an interrupted import resumes by running the same \
            command again, and re-importing a file already imported is a no-op (its keys count as duplicates).
            """)

    @Argument(help: "Cache directory (created when missing).") var cacheDir: String
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Vocabulary size of the dataset.") var vocabSize: Int
    @Option(help: "Coverage threshold τ the sets were chosen with.") var tau: Double = SelectionPolicy.default.tau
    @Option(help: "K_min of the selection policy.") var kmin: Int = SelectionPolicy.default.kMin
    @Option(help: "K_max of the selection policy.") var kmax: Int = SelectionPolicy.default.kMax
    @Option(help: "Teacher id recorded in the provenance.") var teacher: String = ""
    @Option(help: "Tokenizer id recorded in the provenance.") var tokenizer: String = ""
    @Option(help: "Tokenizer hash recorded in the provenance.") var tokenizerHash: String = ""
    @Option(help: "Log-prob quantization, codes per nat (stored error ≤ 0.5/scale).") var logprobScale: Float = 64
    @Argument(help: "JSONL file.") var file: String

    func run() throws {
        do {
            let store = try CacheStore(directory: cacheDir)
            try store.createDataset(DatasetSpec(name: dataset, vocabSize: vocabSize,
                                                policy: SelectionPolicy(tau: tau, kMin: kmin, kMax: kmax),
                                                teacherId: teacher, tokenizerId: tokenizer, tokenizerHash: tokenizerHash,
                                                logprobScale: logprobScale))
            let report = try JSONLImport.run(store: store, dataset: dataset, file: file)
            try store.seal(dataset: dataset)
            print("imported \(file): \(report.lines) lines, \(report.new) new, \(report.duplicates) duplicate(s)")
        } catch let failure as JSONLImport.Failure {
            FileHandle.standardError.write(Data("logitctl: \(failure)\n".utf8))
            throw ExitStatus.rejected
        } catch {
            throw fail(error)
        }
    }
}
