import ArgumentParser

struct OptimBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "optim", abstract: "(being written)")
    func run() throws { throw ValidationError("optim benchmark is not written yet") }
}
