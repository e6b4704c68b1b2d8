import ArgumentParser

/// Benchmarks print one JSON object as their last line and always measure a baseline in the
/// same run (naive encoding, full sort, AdamW, memcpy): ratios are what to trust on a noisy
/// machine. Build with `swift build -c release`.
@main
struct LogitBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logit-bench",
        abstract: "Measure logitd's hot paths against in-run baselines; prints JSON.",
        subcommands: [TopKBench.self, FormatBench.self, OptimBench.self, IngestBench.self,
                      LossBench.self, ReplayBench.self, ChaosBench.self, TrainBench.self, ModelBench.self, TokenizerBench.self, DecodeBench.self])
}
