// swift-tools-version:6.0
// libFuzzer targets for every parser of untrusted bytes. Build and run with `make fuzz`
// (short, in CI) or `make fuzz FUZZ_SECONDS=3600` (long); see README.md here.
import PackageDescription

let package = Package(
    name: "logitd-fuzz",
    dependencies: [.package(name: "logitd", path: "..")],
    targets: [
        .executableTarget(name: "FuzzWire", dependencies: [
            .product(name: "WireFormat", package: "logitd"), .product(name: "LogitCore", package: "logitd")]),
        .executableTarget(name: "FuzzShard", dependencies: [
            .product(name: "ShardFormat", package: "logitd"), .product(name: "LogitCore", package: "logitd")]),
        .executableTarget(name: "FuzzGGUF", dependencies: [.product(name: "GGUF", package: "logitd")]),
        .executableTarget(name: "FuzzJSONL", dependencies: [
            .product(name: "WireFormat", package: "logitd"), .product(name: "LogitCore", package: "logitd")]),
    ]
)
