import Dispatch
import Synchronization
import XCTest
import TinyLM

/// Property tests: lossless for any String and any bytes, and the heap-based merge loop agrees
/// with GPT-2's quadratic reference algorithm.
final class BPERoundTripTests: XCTestCase {
    static let trained: ByteLevelBPE = try! ByteLevelBPE.train(
        corpus: smallEnglishCorpus + smallEnglishCorpus.map { $0.uppercased() }, vocabSize: 600,
        specialTokens: ["<|endoftext|>"], minPairCount: 1)

    func testArbitraryUnicodeRoundTrips() throws {
        var rng = TestRNG(state: 42)
        for _ in 0..<2000 {
            let s = randomUnicodeString(&rng)
            let ids = Self.trained.encode(s)
            XCTAssertEqual(try Self.trained.decode(ids), s)
            XCTAssertEqual(ids, referenceEncode(Self.trained, s), "heap BPE differs from reference on \(s.debugDescription)")
        }
    }

    func testArbitraryBytesRoundTrip() throws {
        var rng = TestRNG(state: 99)
        for _ in 0..<2000 {
            let bytes = (0..<rng.below(80)).map { _ in UInt8(truncatingIfNeeded: rng.next() % (rng.below(2) == 0 ? 256 : 128)) }
            XCTAssertEqual(try Self.trained.decodeBytes(Self.trained.encode(bytes: bytes)), bytes)
        }
    }

    func testRepeatedEncodingUsesTheCacheConsistently() throws {
        let text = String(repeating: smallEnglishCorpus.joined(separator: "\n"), count: 3)
        let first = Self.trained.encode(text)
        XCTAssertEqual(Self.trained.encode(text), first)
        XCTAssertEqual(Self.trained.encode(bytes: Array(text.utf8)), first)
    }

    func testConcurrentEncodingIsSafeAndDeterministic() throws {
        var rng = TestRNG(state: 5)
        let texts = (0..<64).map { _ in randomUnicodeString(&rng, maxScalars: 200) }
        let expected = texts.map { referenceEncode(Self.trained, $0) }
        let bpe = Self.trained
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in
            if bpe.encode(texts[i]) != expected[i] { mismatches.withLock { $0 += 1 } }
        }
        XCTAssertEqual(mismatches.withLock { $0 }, 0)
    }

    func testLongPiecesUseTheHeapPath() throws {
        // Long single pieces (no spaces): the heap loop must agree with the quadratic reference,
        // and a 20 kB piece must stay cheap (quadratic rescans would take seconds in debug).
        let medium = String(repeating: "thequickbrownfox", count: 40)
        XCTAssertEqual(Self.trained.encode(medium), referenceEncode(Self.trained, medium))
        let s = String(repeating: "thequickbrownfox", count: 1250)
        let ids = Self.trained.encode(s)
        XCTAssertEqual(try Self.trained.decode(ids), s)
        XCTAssertLessThan(ids.count, s.utf8.count)
    }
}
