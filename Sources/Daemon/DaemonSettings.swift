import Catalog
import Configuration
import Foundation
import NIOCore
import SystemPackage

/// Everything `logitd serve` can be told. Read through swift-configuration with this precedence:
/// command-line flags, then environment variables (`LOGITD_PORT`, …), then the JSON config file
/// (`{"logitd": {"port": 8484}}`), then the defaults below — documented in `config/logitd.json`.
public struct DaemonSettings: Sendable, Equatable {
    public var cacheDirectory: String
    public var host = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported once listening.
    public var port = 8484
    /// Listen on this Unix domain socket instead of TCP.
    public var unixSocket: String?
    /// Bearer token required on every request except /healthz and /readyz. Mandatory for any
    /// non-loopback bind.
    public var token: String?
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 256 << 20
    /// Memory all in-flight request bodies may hold together; beyond it requests get 503.
    public var maxInflightBytes = 1 << 30
    /// How long a client may take (seconds): from a request's first byte to its complete
    /// header; a connection with no request in progress; the longest gap in a body; a whole
    /// request, first byte to last. Past each, the connection is closed (408 if a request was under way).
    public var headerTimeoutSeconds = 10.0
    public var idleTimeoutSeconds = 60.0
    public var bodyTimeoutSeconds = 30.0
    public var requestTimeoutSeconds = 600.0
    /// Open connections beyond this are answered 503 and closed.
    public var maxConnections = 512
    /// Seal a dataset's open shard after this long without appends (0: never).
    public var sealIdleSeconds = 300.0
    /// Rotate shards at this size.
    public var maxShardBytes: UInt64 = 256 << 20
    public var zstdLevel = 3
    public var targetBlockBytes = 1 << 20
    /// Threads selecting candidate sets in logits mode (0: all cores).
    public var selectionThreads = 0
    /// Accept batch bodies from shared-memory regions of teachers on this host
    /// (schema/SHARED_MEMORY.md). Only size-sealed memfds of a process this daemon may open.
    public var sharedMemory = true
    /// Bytes all registered shared-memory regions may map together; the daemon maps (and so
    /// holds) every page of a region when it is registered.
    public var maxSharedBytes = 8 << 30

    public init(cacheDirectory: String) { self.cacheDirectory = cacheDirectory }

    /// Resolves the settings from flags (already parsed into `overrides`), the environment and
    /// an optional JSON file. Unknown or malformed values fail with the key's name.
    public static func resolve(overrides: [String: String], configFile: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> DaemonSettings {
        var providers: [any ConfigProvider] = []
        var flagValues: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in overrides {
            flagValues[AbsoluteConfigKey(["logitd", key])] = ConfigValue(.string(value), isSecret: key == "token")
        }
        providers.append(InMemoryProvider(name: "flags", values: flagValues))
        providers.append(EnvironmentVariablesProvider(environmentVariables: environment))
        if let configFile {
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(configFile)))
        }
        let config = ConfigReader(providers: providers).scoped(to: "logitd")

        guard let cache = config.string(forKey: "cache_dir") else {
            throw DaemonError.settings("cache directory is required (--cache-dir, LOGITD_CACHE_DIR or logitd.cache_dir)")
        }
        var s = DaemonSettings(cacheDirectory: cache)
        func int(_ key: String, _ fallback: Int) throws -> Int {
            guard let text = config.string(forKey: ConfigKey(key)) else { return config.int(forKey: ConfigKey(key), default: fallback) }
            guard let v = Int(text) else { throw DaemonError.settings("\(key) must be an integer, got '\(text)'") }
            return v
        }
        func double(_ key: String, _ fallback: Double) throws -> Double {
            guard let text = config.string(forKey: ConfigKey(key)) else { return config.double(forKey: ConfigKey(key), default: fallback) }
            guard let v = Double(text) else { throw DaemonError.settings("\(key) must be a number, got '\(text)'") }
            return v
        }
        s.host = config.string(forKey: "host", default: s.host)
        s.port = try int("port", s.port)
        s.unixSocket = config.string(forKey: "unix_socket")
        if let token = config.string(forKey: "token", isSecret: true) {
            s.token = token
        } else if let file = config.string(forKey: "token_file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw DaemonError.settings("cannot read token_file \(file)")
            }
            s.token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        s.maxBodyBytes = try int("max_body_bytes", s.maxBodyBytes)
        s.maxInflightBytes = try int("max_inflight_bytes", s.maxInflightBytes)
        s.sealIdleSeconds = try double("seal_idle_seconds", s.sealIdleSeconds)
        s.headerTimeoutSeconds = try double("header_timeout_seconds", s.headerTimeoutSeconds)
        s.idleTimeoutSeconds = try double("idle_timeout_seconds", s.idleTimeoutSeconds)
        s.bodyTimeoutSeconds = try double("body_timeout_seconds", s.bodyTimeoutSeconds)
        s.requestTimeoutSeconds = try double("request_timeout_seconds", s.requestTimeoutSeconds)
        s.maxConnections = try int("max_connections", s.maxConnections)
        s.maxShardBytes = UInt64(try int("max_shard_bytes", Int(s.maxShardBytes)))
        s.zstdLevel = try int("zstd_level", s.zstdLevel)
        s.targetBlockBytes = try int("target_block_bytes", s.targetBlockBytes)
        s.selectionThreads = try int("selection_threads", s.selectionThreads)
        s.maxSharedBytes = try int("max_shared_bytes", s.maxSharedBytes)
        if let text = config.string(forKey: "shared_memory") {
            switch text.lowercased() {
            case "true", "1", "yes", "on": s.sharedMemory = true
            case "false", "0", "no", "off": s.sharedMemory = false
            default: throw DaemonError.settings("shared_memory must be true or false, got '\(text)'")
            }
        } else {
            s.sharedMemory = config.bool(forKey: "shared_memory", default: s.sharedMemory)
        }
        try s.validate()
        return s
    }

    public func validate() throws {
        guard (0...65535).contains(port) else { throw DaemonError.settings("port must be 0…65535, got \(port)") }
        guard maxBodyBytes >= 1024 else { throw DaemonError.settings("max_body_bytes must be ≥ 1024") }
        guard maxInflightBytes >= maxBodyBytes else {
            throw DaemonError.settings("max_inflight_bytes (\(maxInflightBytes)) must be ≥ max_body_bytes (\(maxBodyBytes))")
        }
        guard maxSharedBytes >= 0 else { throw DaemonError.settings("max_shared_bytes must be ≥ 0") }
        guard sealIdleSeconds >= 0 else { throw DaemonError.settings("seal_idle_seconds must be ≥ 0") }
        for (key, value) in [("header_timeout_seconds", headerTimeoutSeconds), ("idle_timeout_seconds", idleTimeoutSeconds),
                             ("body_timeout_seconds", bodyTimeoutSeconds), ("request_timeout_seconds", requestTimeoutSeconds)] {
            guard value.isFinite, value > 0, value <= 86_400 else {
                throw DaemonError.settings("\(key) must be > 0 and ≤ 86400 seconds, got \(value)")
            }
        }
        guard maxConnections >= 1 else { throw DaemonError.settings("max_connections must be ≥ 1, got \(maxConnections)") }
        guard (1...22).contains(zstdLevel) else { throw DaemonError.settings("zstd_level must be 1…22") }
        if let token, token.utf8.count < 16 {
            throw DaemonError.settings("the bearer token must be at least 16 characters")
        }
        if unixSocket == nil && token == nil {
            switch Self.address(host) {
            case .loopback: break
            case .other:
                throw DaemonError.settings("refusing to listen on non-loopback address \(host) without a bearer token (set LOGITD_TOKEN or token_file)")
            case .name:
                throw DaemonError.settings("refusing to listen on host name '\(host)' without a bearer token: without one, host must be "
                    + "a loopback IP address (127.0.0.0/8, ::1) or 'localhost', since a name can resolve anywhere (set LOGITD_TOKEN or token_file)")
            }
        }
    }

    enum HostKind: Equatable { case loopback, other, name }

    /// What `host` is, decided on the parsed address and never by resolving it: an IPv4 literal
    /// (dotted quad) in 127.0.0.0/8, the IPv6 literal ::1 or an IPv4-mapped ::ffff:127.x.y.z, or
    /// `localhost` (RFC 6761: always loopback) are loopback; any other IP literal is not; anything
    /// else is a host name whose addresses are unknown here.
    static func address(_ host: String) -> HostKind {
        if host.lowercased() == "localhost" { return .loopback }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127 ? .loopback : .other
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let b = withUnsafeBytes(of: v6) { Array($0) }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return .loopback }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF && b[12] == 127 { return .loopback }
            return .other
        }
        return .name
    }

    var connectionLimits: ConnectionLimits {
        func amount(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
        return ConnectionLimits(header: amount(headerTimeoutSeconds), idle: amount(idleTimeoutSeconds),
                                bodyProgress: amount(bodyTimeoutSeconds), request: amount(requestTimeoutSeconds),
                                maxConnections: maxConnections)
    }

    var storeOptions: CacheStore.Options {
        var o = CacheStore.Options()
        o.maxShardBytes = maxShardBytes
        o.shardWriter.zstdLevel = zstdLevel
        o.shardWriter.targetBlockBytes = targetBlockBytes
        return o
    }
}

public enum DaemonError: Error, CustomStringConvertible, Sendable {
    case settings(String)
    public var description: String {
        switch self {
        case .settings(let m): return "configuration: \(m)"
        }
    }
}
