import ArgumentParser

struct LossBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "loss", abstract: "(being written)")
    func run() throws { throw ValidationError("loss benchmark is not written yet") }
}
