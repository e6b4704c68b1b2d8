import ArgumentParser

struct IngestBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingest", abstract: "(being written)")
    func run() throws { throw ValidationError("ingest benchmark is not written yet") }
}
