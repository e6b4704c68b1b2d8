import Catalog
import Foundation
import LogitCore
import WireFormat
import ShardFormat

/// `logitctl import`: JSONL into a dataset.
///
/// Two passes. The first parses and validates every line against the dataset (vocab, policy,
/// gold in set, finite log-probs, key conflicts with what is stored) and writes nothing if any
/// line is bad — bad input is all-or-nothing. The second appends in durable batches; an
/// interrupted import is resumed by running it again, since keys already stored with the same
/// content count as duplicates. Re-importing the same file is therefore a no-op.
enum JSONLImport {
    struct Report: Sendable, Equatable {
        var lines = 0
        var new = 0
        var duplicates = 0
    }

    struct LineError: Error, Sendable, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    struct Failure: Error, Sendable, CustomStringConvertible {
        var errors: [LineError]
        var totalErrors: Int
        var description: String {
            var lines = errors.map(\.description)
            if totalErrors > errors.count { lines.append("… and \(totalErrors - errors.count) more") }
            return "import rejected, nothing written:\n" + lines.joined(separator: "\n")
        }
    }

    /// At most this many line errors are kept for the report (all are counted).
    static let maxReportedErrors = 20
    static let batchSize = 256

    static func run(store: CacheStore, dataset name: String, file: String) throws -> Report {
        let info = try store.dataset(named: name)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped) } catch {
            throw StoreError.notFound("cannot read \(file): \(error.localizedDescription)")
        }
        var records: [(line: Int, record: SequenceRecord)] = []
        var errors: [LineError] = []
        var total = 0
        // Keyed by bytes, as the catalog compares keys ("é" and "e\u{301}" are equal Strings).
        var seen: [[UInt8]: (line: Int, hash: UInt64)] = [:]
        var lineNumber = 0
        var repeatedInFile = 0
        for bytes in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            func reject(_ message: String) {
                total += 1
                if errors.count < maxReportedErrors { errors.append(LineError(line: lineNumber, message: message)) }
            }
            // Refused, never repaired: decoding with replacement would turn two different keys
            // with invalid bytes into one U+FFFD key.
            if let bad = SequenceKey.firstInvalidUTF8(bytes) {
                reject("not valid UTF-8 at byte \(bad) of the line")
                continue
            }
            let raw = String(decoding: bytes, as: UTF8.self)
            let line = raw.hasSuffix("\r") ? raw.dropLast() : Substring(raw)
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let record: SequenceRecord
            do { record = try JSONLines.decode(line) } catch { reject(error.description); continue }
            do { try record.validate(vocabSize: info.spec.vocabSize, policy: info.spec.policy, logprobScale: info.spec.logprobScale) } catch {
                reject(error.description)
                continue
            }
            let hash = contentHash(record, logprobScale: info.spec.logprobScale)
            let keyBytes = Array(record.key.utf8)
            if let earlier = seen[keyBytes] {
                if earlier.hash != hash {
                    reject("key '\(record.key)' already used on line \(earlier.line) with different content")
                } else {
                    repeatedInFile += 1
                }
                continue
            }
            seen[keyBytes] = (lineNumber, hash)
            records.append((lineNumber, record))
        }
        let stored = try store.catalog.committedHashes(datasetId: info.id, keys: records.map(\.record.key))
        for (entry, hash) in zip(records, stored) {
            guard let hash, let first = seen[Array(entry.record.key.utf8)], first.hash != hash else { continue }
            total += 1
            if errors.count < maxReportedErrors {
                errors.append(LineError(line: first.line, message: "key '\(entry.record.key)' already exists in dataset '\(name)' with different content"))
            }
        }
        guard total == 0 else { throw Failure(errors: errors.sorted { $0.line < $1.line }, totalErrors: total) }

        var report = Report(lines: lineNumber)
        report.duplicates = repeatedInFile
        for start in stride(from: 0, to: records.count, by: batchSize) {
            let batch = records[start..<min(start + batchSize, records.count)].map(\.record)
            let result = try store.appendDurably(dataset: name, records: batch)
            report.new += result.new
            report.duplicates += result.duplicates
        }
        return report
    }
}
