// swift-tools-version:6.0
// logitd — Logits Replay + MoClip post-training. Layers, bottom up:
// LogitCore → ShardFormat → Catalog ; Optim ; executables on top.
import PackageDescription

let package = Package(
    name: "logitd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "logitctl", targets: ["logitctl"]),
        .executable(name: "logit-bench", targets: ["logit-bench"]),
        .executable(name: "logit-teach", targets: ["logit-teach"]),
        .library(name: "LogitCore", targets: ["LogitCore"]),
        .library(name: "ShardFormat", targets: ["ShardFormat"]),
        .library(name: "Catalog", targets: ["Catalog"]),
        .library(name: "Optim", targets: ["Optim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries from Debian's -dev packages (see Makefile `deps`).
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CXXHash", path: "Sources/CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),

        // Types, selection, numerics. No dependencies: everything else builds on it.
        .target(name: "LogitCore"),
        // Immutable block shards: codecs, checksums, writer, reader. See schema/SHARD_FORMAT.md.
        .target(name: "ShardFormat", dependencies: ["LogitCore", "CZstd", "CLZ4", "CXXHash"]),
        // SQLite catalog (GRDB) and the cache-directory store facade with recovery.
        .target(name: "Catalog", dependencies: ["ShardFormat", "LogitCore",
                                                .product(name: "GRDB", package: "GRDB.swift")]),
        // The binary batch body of the ingest API. See schema/WIRE_FORMAT.md.
        .target(name: "WireFormat", dependencies: ["LogitCore"]),
        // MoClip, AdamW, Adam-atan2 over named fp32 tensors.
        .target(name: "Optim"),

        // Coverage stats, inspect, verify, import/export of a cache directory.
        .executableTarget(name: "logitctl", dependencies: [
            "LogitCore", "ShardFormat", "Catalog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "logit-bench", dependencies: [
            "LogitCore", "ShardFormat", "Catalog", "Optim",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Stage 0 teacher: selects candidate sets and records them.
        .executableTarget(name: "logit-teach", dependencies: [
            "LogitCore", "Catalog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Writes and flushes sequences until killed; the crash tests SIGKILL it.
        .executableTarget(name: "logit-torture", dependencies: [
            "LogitCore", "Catalog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "LogitCoreTests", dependencies: ["LogitCore"]),
        .testTarget(name: "ShardFormatTests", dependencies: ["ShardFormat", "LogitCore"]),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog", "ShardFormat", "LogitCore"]),
        .testTarget(name: "OptimTests", dependencies: ["Optim"]),
        .testTarget(name: "WireFormatTests", dependencies: ["WireFormat", "LogitCore"]),
    ]
)
