import ArgumentParser
import Daemon
import Foundation
import Logging

/// The Stage 0 ingest daemon. Settings: flags > LOGITD_* environment variables > --config JSON
/// file > defaults (config/logitd.json documents every key).
@main
struct Logitd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logitd",
        abstract: "Store teacher candidate sets streamed over HTTP, durably.",
        subcommands: [Serve.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the ingest API on a cache directory.")

    @Option(name: .customLong("cache-dir"), help: "Cache directory (created when missing).") var cacheDir: String?
    @Option(help: "JSON config file ({\"logitd\": {…}}).") var config: String?
    @Option(help: "Bind address (default 127.0.0.1; non-loopback needs a token).") var host: String?
    @Option(help: "TCP port (default 8484; 0 picks a free one).") var port: Int?
    @Option(name: .customLong("unix-socket"), help: "Listen on a Unix domain socket instead of TCP.") var unixSocket: String?
    @Option(name: .customLong("token-file"), help: "File holding the bearer token.") var tokenFile: String?
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body.") var maxBodyBytes: Int?
    @Option(name: .customLong("max-inflight-bytes"), help: "Memory bound for bodies in flight.") var maxInflightBytes: Int?
    @Option(name: .customLong("seal-idle-seconds"), help: "Seal open shards idle this long (0: never).") var sealIdleSeconds: Double?
    @Option(name: .customLong("header-timeout-seconds"), help: "Longest a request's header may take (default 10).") var headerTimeoutSeconds: Double?
    @Option(name: .customLong("idle-timeout-seconds"), help: "Close connections idle this long (default 60).") var idleTimeoutSeconds: Double?
    @Option(name: .customLong("body-timeout-seconds"), help: "Longest gap between a body's bytes (default 30).") var bodyTimeoutSeconds: Double?
    @Option(name: .customLong("request-timeout-seconds"), help: "Longest a whole request may take to arrive (default 600).")
    var requestTimeoutSeconds: Double?
    @Option(name: .customLong("max-connections"), help: "Open connections beyond this get 503 (default 512).") var maxConnections: Int?
    @Option(name: .customLong("max-shard-bytes"), help: "Rotate shards at this size.") var maxShardBytes: Int?
    @Option(name: .customLong("shared-memory"), help: "Accept bodies from teachers' shared-memory regions: true or false (default true).")
    var sharedMemory: String?
    @Option(name: .customLong("max-shared-bytes"), help: "Bytes all shared-memory regions may map together.") var maxSharedBytes: Int?
    @Option(name: .customLong("zstd-level"), help: "zstd level of shard blocks (1…22, default 3).") var zstdLevel: Int?
    @Option(name: .customLong("target-block-bytes"), help: "Raw size at which a shard block is cut (default 1 MiB).") var targetBlockBytes: Int?
    @Option(name: .customLong("selection-threads"), help: "Threads selecting candidate sets in logits mode (0: all cores).") var selectionThreads: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

    func run() async throws {
        var overrides: [String: String] = [:]
        overrides["cache_dir"] = cacheDir
        overrides["host"] = host
        overrides["port"] = port.map(String.init)
        overrides["unix_socket"] = unixSocket
        overrides["token_file"] = tokenFile
        overrides["max_body_bytes"] = maxBodyBytes.map(String.init)
        overrides["max_inflight_bytes"] = maxInflightBytes.map(String.init)
        overrides["seal_idle_seconds"] = sealIdleSeconds.map { "\($0)" }
        overrides["max_shard_bytes"] = maxShardBytes.map(String.init)
        overrides["header_timeout_seconds"] = headerTimeoutSeconds.map { "\($0)" }
        overrides["idle_timeout_seconds"] = idleTimeoutSeconds.map { "\($0)" }
        overrides["body_timeout_seconds"] = bodyTimeoutSeconds.map { "\($0)" }
        overrides["request_timeout_seconds"] = requestTimeoutSeconds.map { "\($0)" }
        overrides["max_connections"] = maxConnections.map(String.init)
        overrides["shared_memory"] = sharedMemory
        overrides["max_shared_bytes"] = maxSharedBytes.map(String.init)
        overrides["zstd_level"] = zstdLevel.map(String.init)
        overrides["target_block_bytes"] = targetBlockBytes.map(String.init)
        overrides["selection_threads"] = selectionThreads.map(String.init)
        let settings: DaemonSettings
        do {
            settings = try await DaemonSettings.resolve(overrides: overrides, configFile: config)
        } catch {
            FileHandle.standardError.write(Data("logitd: \(error)\n".utf8))
            throw ExitCode(64)
        }
        var logger = Logger(label: "logitd")
        logger.logLevel = logLevel
        try await LogitDaemon.run(settings: settings, logger: logger) { address in
            FileHandle.standardOutput.write(Data("listening on \(address)\n".utf8))
        }
    }
}

/// A mistyped level is a usage error naming the valid ones, not a silent `info`.
extension Logger.Level: @retroactive ExpressibleByArgument {}
