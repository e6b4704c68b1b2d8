import ArgumentParser

struct ReplayBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "(being written)")
    func run() throws { throw ValidationError("replay benchmark is not written yet") }
}
