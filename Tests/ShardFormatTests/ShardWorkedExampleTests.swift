import Foundation
import XCTest
import LogitCore
@testable import ShardFormat

/// The worked example of SHARD_FORMAT.md, byte for byte: if this test fails, the spec and the
/// code disagree and one of them must change.
final class ShardWorkedExampleTests: XCTestCase {
    static let record = SequenceRecord(key: "doc-1", tokens: [5, 7, 9], sets: [
        CandidateSet(ids: [7, 2], logprobs: [-0.1, -2.5], goldForced: false),
        CandidateSet(ids: [1, 3, 4, 9], logprobs: [-0.5, -1.5, -2.0, -9.0], goldForced: true),
    ])
    static let provenance = ShardProvenance(datasetName: "demo", vocabSize: 10,
                                            policy: SelectionPolicy(tau: 0.9, kMin: 1, kMax: 3),
                                            teacherId: "t", tokenizerId: "tok", tokenizerHash: "h", logprobScale: 64)
    static let shardID = UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF")!

    func sealedExample() throws -> [UInt8] {
        let dir = temporaryDirectory(self)
        let w = try ShardWriter(creating: dir + "/x.tmp", provenance: Self.provenance, shardID: Self.shardID,
                                options: ShardWriterOptions(codec: .none))
        try w.append(Self.record)
        let sealed = try w.seal(to: dir + "/x.shard")
        return Array(try Data(contentsOf: URL(fileURLWithPath: sealed.path)))
    }

    /// The 512-byte file printed in SHARD_FORMAT.md ("Worked example"), 16 bytes per string.
    static let expectedHex: [String] = [
        "4c475453484152440100000000000000",
        "80000000290000000011223344556677",
        "8899aabbccddeeffdc1c0dcfa319541f",
        "0a000000000000000000804201000000",
        "cdccccccccccec3f0100000003000000",
        "0400000064656d6f0100000074030000",
        "00746f6b010000006800000000000000",
        "00000000000000000000000000000000",
        "47424c4b000000003200000000000000",
        "320000000000000080f6474954e0c73f",
        "00000000000000000100000000000000",
        "02000000000000000600000000000000",
        "03000000060000000100000005000064",
        "6f632d31050204000001010003000002",
        "070201030409062000009a4020ffc001",
        "00000000000000000000000000000000",
        "464f5452000000000100000000000000",
        "01000000000000000200000000000000",
        "06000000000000002900000000000000",
        "80000000000000003200000000000000",
        "320000000000000080f6474954e0c73f",
        "00000000000000000200000000000000",
        "06000000000000000100000000000000",
        "cdccccccccccec3f0100000003000000",
        "0400000064656d6f0100000074030000",
        "00746f6b010000006800000000000000",
        "00000000000000000000000000000000",
        "00000000000000000000000000000000",
        "00010000000000009900000000000000",
        "548d52d81081f8380100000000000000",
        "01000000000000000100000000000000",
        "079531a809abc7904c475453454e4421",
    ]

    func testSealedExampleIsByteIdenticalToTheSpec() throws {
        let bytes = try sealedExample()
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(hex, Self.expectedHex.joined())
    }

    func testExampleDecodesAsTheSpecSays() throws {
        let dir = temporaryDirectory(self)
        let path = dir + "/y.shard"
        _ = FileManager.default.createFile(atPath: path, contents: Data(try sealedExample()))
        let r = try ShardReader(sealedAt: path).sequence(block: 0, ordinal: 0)
        XCTAssertEqual(r.key, "doc-1")
        XCTAssertEqual(r.tokens, [5, 7, 9])
        XCTAssertEqual(r.setOffsets, [0, 2, 6])
        XCTAssertEqual(r.ids, [7, 2, 1, 3, 4, 9])
        let codes: [Float] = [6, 160, 32, 96, 128, 576]
        XCTAssertEqual(r.logprobs, codes.map { -$0 / 64 })
        XCTAssertEqual(r.goldForced, [false, true])
        XCTAssertNil(r.lossMask)
    }
}
