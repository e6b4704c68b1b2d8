import ArgumentParser
import Foundation
import TinyLM
import Training

/// Pretraining, Stage 1 replay training and evaluation of TinyLM models. Each training command
/// writes a run directory (metrics.jsonl, checkpoint/, loss.svg) and resumes when pointed at an
/// existing one.
@main
struct LogitTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-train",
        abstract: "Pretrain, replay-train (Stage 1) and evaluate TinyLM models.",
        subcommands: [Pretrain.self, ReplayTrain.self, Eval.self, Report.self, ImportGGUF.self, Tokenize.self, Logits.self, Generate.self])
}

/// Turns library errors into the one-line message and exit code 1 users see.
func reported(_ body: () throws -> Void) throws {
    do { try body() } catch let e as TrainingError {
        FileHandle.standardError.write(Data("logit-train: \(e)\n".utf8))
        throw ExitCode(1)
    } catch let e as ModelError {
        FileHandle.standardError.write(Data("logit-train: \(e)\n".utf8))
        throw ExitCode(1)
    } catch let e as TokenizerError {
        FileHandle.standardError.write(Data("logit-train: \(e)\n".utf8))
        throw ExitCode(1)
    }
}

/// Writes `run.json` on a fresh run; on a resumed run checks that the settings that shape the
/// model and the data are the same ones (the rest, e.g. eval frequency, may change).
func checkRunSettings(run: String, settings: [String: String], mustMatch: [String]) throws {
    let path = run + "/run.json"
    if let data = FileManager.default.contents(atPath: path) {
        let saved = (try? JSONSerialization.jsonObject(with: data)) as? [String: String] ?? [:]
        for key in mustMatch where saved[key] != settings[key] {
            throw TrainingError.invalid("\(run) was started with \(key) = \(saved[key] ?? "nothing"), now \(settings[key] ?? "nothing"); use a new --out or the same settings")
        }
        return
    }
    let data = try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted, .sortedKeys])
    guard FileManager.default.createFile(atPath: path, contents: data) else { throw TrainingError.io("cannot write \(path)") }
}
