import ArgumentParser

struct TopKBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topk", abstract: "(being written)")
    func run() throws { throw ValidationError("topk benchmark is not written yet") }
}
