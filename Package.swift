// swift-tools-version:6.0
// logitd — Logits Replay + MoClip post-training. The target graph is drawn in docs/DESIGN.md §9
// (checked against this file by scripts/check_target_graph.py). Layers, each using only earlier
// ones: C shims; LogitCore, SharedMemory, Parameters, GGUF; ShardFormat, WireFormat, Losses, Optim;
// Catalog, TinyLM, LogitClient; Daemon, Replay; Training; executables.
import PackageDescription

let package = Package(
    name: "logitd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "logitd", targets: ["logitd"]),
        .executable(name: "logitctl", targets: ["logitctl"]),
        .executable(name: "logit-bench", targets: ["logit-bench"]),
        .executable(name: "logit-teach", targets: ["logit-teach"]),
        .executable(name: "logit-train", targets: ["logit-train"]),
        .library(name: "LogitCore", targets: ["LogitCore"]),
        .library(name: "ShardFormat", targets: ["ShardFormat"]),
        .library(name: "Catalog", targets: ["Catalog"]),
        .library(name: "WireFormat", targets: ["WireFormat"]),
        .library(name: "Optim", targets: ["Optim"]),
        .library(name: "GGUF", targets: ["GGUF"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // System libraries from Debian's -dev packages (see Makefile `deps`).
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CXXHash", path: "Sources/CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),

        // AVX2+FMA row-scan kernels for Top-K selection, chosen at run time by LogitCore.
        .target(name: "CSelectKernels"),
        // Types, selection, numerics. Everything else builds on it.
        .target(name: "LogitCore", dependencies: ["CSelectKernels"]),
        // Immutable block shards: codecs, checksums, writer, reader. See schema/SHARD_FORMAT.md.
        .target(name: "ShardFormat", dependencies: ["LogitCore", "CZstd", "CLZ4", "CXXHash"]),
        // SQLite VFS shim: a checksum in the reserved bytes of every catalog page (schema/CATALOG_FILE.md).
        .target(name: "CCatalogVFS", linkerSettings: [.linkedLibrary("sqlite3"), .linkedLibrary("xxhash")]),
        // SQLite catalog (GRDB) and the cache-directory store facade with recovery.
        .target(name: "Catalog", dependencies: ["ShardFormat", "LogitCore", "CCatalogVFS",
                                                .product(name: "GRDB", package: "GRDB.swift")]),
        // Interchange formats: the binary batch body of the ingest API (schema/WIRE_FORMAT.md)
        // and the JSONL of logitctl import/export.
        .target(name: "WireFormat", dependencies: ["LogitCore"]),
        // memfd_create and file seals, which Glibc's Swift module does not export.
        .target(name: "CSharedMemory"),
        // Batch bodies in shared memory between a teacher and logitd on one host (schema/SHARED_MEMORY.md).
        .target(name: "SharedMemory", dependencies: ["CSharedMemory"]),
        // The Stage 0 ingest daemon: HTTP API (Hummingbird 2), group-committed durable appends.
        .target(name: "Daemon", dependencies: [
            "LogitCore", "Catalog", "WireFormat", "SharedMemory",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // Swift client of logitd's API (AsyncHTTPClient), with retries on 503 and connection errors.
        .target(name: "LogitClient", dependencies: ["LogitCore", "WireFormat", "SharedMemory",
                                                    .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                    .product(name: "NIOCore", package: "swift-nio"),
                                                    .product(name: "NIOHTTP1", package: "swift-nio")]),
        // Stage 1 data path: memory-mapped, deterministic, resumable replay of a cache into the
        // losses' candidate batches.
        .target(name: "Replay", dependencies: ["LogitCore", "Losses", "ShardFormat", "Catalog"]),
        // The LM-head losses over candidate sets: restricted softmax (CE_S, KD_S), tail-aware
        // (S ∪ {tail}), and the full-vocabulary reference. Learning side: no storage below it.
        .target(name: "Losses", dependencies: ["LogitCore", "COpenBLAS"]),
        // GGUF model files (llama.cpp's format): header, metadata, tensor directory, dequantization
        // of its block types to f32. See schema/GGUF.md.
        .target(name: "GGUF"),
        // A small Llama-style decoder for the CPU and its byte-level BPE tokenizer; imports
        // pretrained Llama models from GGUF files.
        .target(name: "TinyLM", dependencies: ["LogitCore", "Parameters", "GGUF", "COpenBLAS"]),
        // The training loop shared by logit-train, logit-teach and logit-bench: corpora as token
        // windows, one step (model → LM-head loss → backward → optimizer), evaluation, run
        // directories, metrics, progress and plots.
        .target(name: "Training", dependencies: ["LogitCore", "Losses", "Replay", "Parameters", "Optim", "TinyLM"]),
        // Named fp32 weight tensors with their gradients: what a model owns and an optimizer updates.
        .target(name: "Parameters"),
        // MoClip, AdamW, Adam-atan2 over named fp32 tensors.
        .target(name: "Optim", dependencies: ["Parameters"]),

        .executableTarget(name: "logitd", dependencies: [
            "Daemon",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Coverage stats, inspect, verify, import/export of a cache directory.
        .executableTarget(name: "logitctl", dependencies: [
            "LogitCore", "ShardFormat", "Catalog", "WireFormat",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "logit-bench", dependencies: [
            "LogitCore", "ShardFormat", "Catalog", "Parameters", "Optim", "Losses", "Replay", "WireFormat", "LogitClient", "SharedMemory", "TinyLM",
            "Training", "COpenBLAS", "CZstd",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Stage 0 teacher: selects candidate sets and records them.
        .executableTarget(name: "logit-teach", dependencies: [
            "LogitCore", "Catalog", "LogitClient", "SharedMemory", "WireFormat", "TinyLM", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Pretraining, Stage 1 replay training and evaluation of TinyLM models.
        .executableTarget(name: "logit-train", dependencies: [
            "LogitCore", "Catalog", "Losses", "Replay", "Optim", "TinyLM", "Training", "GGUF",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Writes and flushes sequences until killed; the crash tests SIGKILL it.
        .executableTarget(name: "logit-torture", dependencies: [
            "LogitCore", "Catalog",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "LogitCoreTests", dependencies: ["LogitCore"]),
        .testTarget(name: "ShardFormatTests", dependencies: ["ShardFormat", "LogitCore"]),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog", "ShardFormat", "LogitCore",
                                                    .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "OptimTests", dependencies: ["Optim", "Parameters"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF"]),
        .testTarget(name: "TinyLMTests", dependencies: ["TinyLM", "Optim", "Losses"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TinyLM", "Optim", "Losses", "Catalog", "LogitCore"]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "Losses", "Catalog", "LogitCore"]),
        // Replay and Catalog only for the PyTorch parity fixture, which also records a cache's replay order.
        .testTarget(name: "LossesTests", dependencies: ["Losses", "LogitCore", "Replay", "Catalog"]),
        .testTarget(name: "WireFormatTests", dependencies: ["WireFormat", "LogitCore"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "LogitClient", "SharedMemory", "Catalog", "ShardFormat", "WireFormat", "LogitCore",
                                                   .product(name: "Hummingbird", package: "hummingbird"),
                                                   .product(name: "NIOCore", package: "swift-nio")]),
    ]
)
