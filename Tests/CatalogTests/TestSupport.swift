import Foundation
import LogitCore
import XCTest
@testable import Catalog
import ShardFormat

/// A fresh temporary cache directory per test, removed afterwards.
func makeTemporaryDirectory(_ name: String = #function) -> String {
    let base = FileManager.default.temporaryDirectory.path + "/logitd-tests"
    try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    let path = base + "/" + name.filter { $0.isLetter || $0.isNumber } + "-" + UUID().uuidString.prefix(8)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

let testSpec = DatasetSpec(name: "web-en", vocabSize: 3000, policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 12),
                           teacherId: "tiny-teacher", tokenizerId: "bpe-3000", tokenizerHash: "abc123")

func randomRecords(_ count: Int, prefix: String = "k", seed: UInt64 = 1, spec: DatasetSpec = testSpec) -> [SequenceRecord] {
    let gen = RandomRecords(vocabSize: spec.vocabSize, policy: spec.policy, maxTokens: 40)
    return (0..<count).map { gen.record(key: "\(prefix)\($0)", seed: seed) }
}

/// The directory holding the test bundle also holds the package's executables.
func productPath(_ name: String) -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let candidate = dir + "/" + name
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.path + "/.build/debug/" + name
}
