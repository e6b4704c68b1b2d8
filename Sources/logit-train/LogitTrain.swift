import ArgumentParser

@main
struct LogitTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-train",
        abstract: "Pretrain, replay-train (Stage 1) and evaluate TinyLM models.")
    func run() throws { throw ValidationError("logit-train: no subcommand yet") }
}
