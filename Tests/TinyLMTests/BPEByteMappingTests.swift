import XCTest
import TinyLM

final class BPEByteMappingTests: XCTestCase {
    func testMappingIsABijectionOntoVisibleCharacters() {
        let scalars = BPEByteMapping.byteToScalar
        XCTAssertEqual(Set(scalars).count, 256)
        XCTAssertEqual(scalars[0x20], 0x120, "space maps to Ġ")
        XCTAssertEqual(scalars[0x0A], 0x10A, "newline maps to Ċ")
        XCTAssertEqual(scalars[0x41], 0x41, "printable ASCII maps to itself")
        XCTAssertEqual(scalars[0xAD], 0x143, "soft hyphen is the last remapped byte")
        for s in scalars {
            let scalar = Unicode.Scalar(s)!
            XCTAssertFalse(scalar.properties.isWhitespace, "U+\(String(s, radix: 16)) is whitespace")
        }
        let all = (0...255).map { UInt8($0) }
        XCTAssertEqual(BPEByteMapping.bytes(fromString: BPEByteMapping.string(fromBytes: all)), all)
        XCTAssertEqual(BPEByteMapping.byteOrder.count, 256)
        XCTAssertEqual(Set(BPEByteMapping.byteOrder).count, 256)
        XCTAssertEqual(BPEByteMapping.byteOrder.first, 0x21)
    }

    func testCharactersOutsideTheMapAreRejected() {
        XCTAssertNil(BPEByteMapping.bytes(fromString: "a b"), "a raw space is not a mapped character")
        XCTAssertNil(BPEByteMapping.bytes(fromString: "中"))
        XCTAssertNil(BPEByteMapping.bytes(fromString: "\u{144}"))
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(TokenizerSHA256.hexDigest([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(TokenizerSHA256.hexDigest(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(TokenizerSHA256.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
