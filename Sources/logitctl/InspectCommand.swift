import ArgumentParser
import Catalog
import Foundation
import LogitCore

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "One sequence's tokens and candidate sets.")

    @Argument(help: "Cache directory.") var cacheDir: String
    @Option(help: "Dataset name.") var dataset: String
    @Option(help: "Sequence key.") var key: String
    @Option(help: "Positions A:B (half-open), e.g. 0:10.") var positions: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        // The same key rule as ingest: a key that could never have been stored is a usage
        // mistake (exit 2), not "no such key". Arguments reach us decoded with replacement, so
        // invalid UTF-8 is looked for in the raw argv bytes.
        if let bad = Self.argumentWithInvalidUTF8() {
            FileHandle.standardError.write(Data("logitctl: argument \(bad.index) is not valid UTF-8 (byte \(bad.offset)); arguments must be UTF-8 and a key must be \(SequenceKey.rule)\n".utf8))
            throw ExitStatus.rejected
        }
        do { try SequenceKey.validate(key) } catch {
            FileHandle.standardError.write(Data("logitctl: --key '\(SequenceKey.printable(key))': \(error)\n".utf8))
            throw ExitStatus.rejected
        }
        do {
            let store = try openReadOnly(cacheDir)
            guard let record = try store.read(dataset: dataset, key: key) else {
                FileHandle.standardError.write(Data("logitctl: no key '\(key)' in dataset '\(dataset)'\n".utf8))
                throw ExitStatus.rejected
            }
            let range = try parseRange(positions, count: record.positions)
            if json {
                var sets: [[String: Any]] = []
                for t in range {
                    let set = record.set(at: t)
                    sets.append(["position": t, "gold": record.tokens[t + 1], "gold_forced": set.goldForced,
                                 "ids": set.ids, "probabilities": set.logprobs.map { Double(exp($0)) },
                                 "logprobs": set.logprobs.map(Double.init)])
                }
                let object: [String: Any] = ["key": record.key, "tokens": record.tokens,
                                             "loss_mask": record.lossMask.map { $0 as Any } ?? NSNull(), "sets": sets]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("key \(record.key): \(record.tokens.count) tokens, \(record.positions) positions, \(record.candidates) candidates")
            for t in range {
                let set = record.set(at: t)
                let gold = record.tokens[t + 1]
                let masked = record.lossMask.map { $0[t] == 0 } ?? false
                print("t=\(t) gold=\(gold)\(set.goldForced ? " (forced)" : "")\(masked ? " [masked]" : "") K=\(set.ids.count) covered=\(String(format: "%.4f", set.coveredMass))")
                for (id, lp) in zip(set.ids, set.logprobs) {
                    print("    \(id == gold ? "*" : " ") \(String(id).padding(toLength: 8, withPad: " ", startingAt: 0)) p=\(String(format: "%.5f", exp(Double(lp))))  lp=\(String(format: "%.4f", lp))")
                }
            }
        } catch let code as ExitCode {
            throw code
        } catch {
            throw fail(error)
        }
    }

    /// The first command-line argument whose bytes are not valid UTF-8, and where.
    static func argumentWithInvalidUTF8() -> (index: Int, offset: Int)? {
        for i in 1..<Int(CommandLine.argc) {
            guard let p = CommandLine.unsafeArgv[i] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p))
            if let offset = SequenceKey.firstInvalidUTF8(bytes) { return (i, offset) }
        }
        return nil
    }

    func parseRange(_ text: String?, count: Int) throws -> Range<Int> {
        guard let text else { return 0..<count }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = parts[0].isEmpty ? 0 : Int(parts[0]), let b = parts[1].isEmpty ? count : Int(parts[1]),
              a >= 0, a <= b, b <= count else {
            throw ValidationError("--positions must be A:B with 0 ≤ A ≤ B ≤ \(count), got '\(text)'")
        }
        return a..<b
    }
}
