import ArgumentParser

struct FormatBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "format", abstract: "(being written)")
    func run() throws { throw ValidationError("format benchmark is not written yet") }
}
