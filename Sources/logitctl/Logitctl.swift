import ArgumentParser
import Catalog
import Foundation

/// Questions about a cache directory: coverage, one sequence, integrity, interchange.
/// Works on a cache while `logitd` writes to it (read-only catalog access, committed data only).
///
/// Exit codes: 0 success; 1 `verify`/`stats --deep` found problems; 2 input rejected (unknown
/// dataset or key, bad import line); 3 cache missing, empty or unreadable; 64 usage error.
@main
struct Logitctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logitctl",
        abstract: "Inspect, verify and move data in and out of a logitd cache directory.",
        subcommands: [StatsCommand.self, DatasetsCommand.self, InspectCommand.self, VerifyCommand.self,
                      ExportCommand.self, ImportCommand.self])
}

enum ExitStatus {
    static let problems = ExitCode(1)
    static let rejected = ExitCode(2)
    static let unavailable = ExitCode(3)
}

/// Prints to stderr and maps store errors to the documented exit codes.
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("logitctl: \(error)\n".utf8))
    switch error {
    case StoreError.notFound, StoreError.corrupt, StoreError.catalog, StoreError.io: return ExitStatus.unavailable
    default: return ExitStatus.rejected
    }
}

/// Opens a cache read-only, refusing a missing or empty one with a clear message.
func openReadOnly(_ directory: String) throws -> CacheStore {
    guard FileManager.default.fileExists(atPath: directory + "/catalog.sqlite") else {
        throw StoreError.notFound("\(directory) is not a logitd cache (no catalog.sqlite)")
    }
    return try CacheStore(directory: directory, mode: .readOnly)
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

var stderrIsTerminal: Bool { isatty(2) == 1 }
