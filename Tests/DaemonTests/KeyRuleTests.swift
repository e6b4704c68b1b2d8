import Catalog
import Foundation
import LogitClient
import LogitCore
import SharedMemory
import WireFormat
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue #16 item 1: one key rule (SequenceKey) on every path a key enters the daemon, through
/// the real daemon on loopback, with raw key bytes the client library would not send.
extension DaemonTests {
    /// A one-sequence sets body whose key is exactly `key` (any bytes), and the body offset of
    /// the key's first byte.
    func body(key: [UInt8]) -> [UInt8] {
        var record = records(1, "z")[0]
        record.key = String(repeating: "k", count: max(key.count, 1))
        var encoder = WireBatchEncoder(mode: .sets, vocabSize: 2000)
        encoder.append(record)
        let b = encoder.finish()
        let n = UInt16(truncatingIfNeeded: key.count)
        return Array(b[0..<24]) + [UInt8(n & 0xFF), UInt8(n >> 8)] + key + Array(b[(26 + max(key.count, 1))...])
    }

    static let badKeys: [(name: String, bytes: [UInt8], offset: Int, fragment: String)] = [
        ("NUL", Array("nul-a\0b".utf8), 5, "key byte 5 is the control character 0x00"),
        ("ESC", Array("esc-\u{1B}[2J".utf8), 4, "key byte 4 is the control character 0x1B"),
        ("newline", Array("line\nbreak".utf8), 4, "control character 0x0A"),
        ("DEL", Array("del\u{7F}".utf8), 3, "control character 0x7F"),
        ("invalid UTF-8", [0x61, 0x62, 0xFF, 0x63], 2, "key byte 2 (0xFF) is not valid UTF-8"),
        ("surrogate", [0x61, 0xED, 0xA0, 0x80], 2, "is not valid UTF-8"),
    ]

    func testKeysOffTheRuleAreRefusedOnTheWireAndNothingIsStored() async throws {
        let (daemon, client) = try await started()
        for bad in Self.badKeys {
            do {
                _ = try await client.append(dataset: "domain", body: body(key: bad.bytes))
                XCTFail("\(bad.name) key accepted")
            } catch let e as LogitClientError {
                XCTAssertEqual(e.status, 400, "\(bad.name): \(e)")
                XCTAssertTrue(e.message.contains(bad.fragment), "\(bad.name): '\(e.message)' lacks '\(bad.fragment)'")
                XCTAssertEqual(e.offset, 26 + bad.offset, "\(bad.name): \(e)")
                XCTAssertEqual(e.sequence, 0, "\(bad.name)")
            }
        }
        do {
            _ = try await client.append(dataset: "domain", body: body(key: [UInt8](repeating: 0x6B, count: 1025)))
            XCTFail("a 1025-byte key was accepted")
        } catch let e as LogitClientError {
            XCTAssertEqual(e.status, 400)
            XCTAssertTrue(e.message.contains("key_length 1025, expected 1…1024"), e.message)
        }
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 0, "a refused key was stored")

        // The longest key, and keys near the rule, are stored and found byte for byte.
        let longest = String(repeating: "k", count: 1024)
        let edge = "c1-\u{85}-tilde~-space -é"
        let answer = try await client.append(dataset: "domain", body: body(key: Array(longest.utf8)) )
        XCTAssertEqual(answer.new, 1)
        var record = records(1, "z")[0]
        record.key = edge
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: [record])
        let present = try await client.presentKeys(dataset: "domain", keys: [longest, edge, "k"])
        XCTAssertEqual(present, [longest, edge])
        XCTAssertNotNil(try stored(daemon, longest))
        XCTAssertEqual(try stored(daemon, edge)?.key, edge)
        XCTAssertEqual(daemon.stop(), 0)
        // logitctl verify and export see a clean cache.
        XCTAssertTrue(try CacheStore(directory: daemon.cacheDir, mode: .readOnly).read(dataset: "domain", key: longest) != nil)
    }

    func testKeysOffTheRuleAreRefusedThroughSharedMemory() async throws {
        let (daemon, client) = try await started()
        for bad in Self.badKeys.prefix(5) {
            let b = body(key: bad.bytes)
            let slots = try await SharedMemorySlots(client: client, name: "t-\(bad.name.filter(\.isLetter))", slotBytes: b.count, slotCount: 1)
            do {
                _ = try await slots.append(dataset: "domain", body: b, slot: 0)
                XCTFail("\(bad.name) key accepted through shared memory")
            } catch let e as LogitClientError {
                XCTAssertEqual(e.status, 400, "\(bad.name): \(e)")
                XCTAssertTrue(e.message.contains(bad.fragment), "\(bad.name): '\(e.message)'")
            }
        }
        let stats = try await client.stats(dataset: "domain")
        XCTAssertEqual(stats.sequences, 0)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// POSTs `body` to `path` and returns (status, body text).
    func post(_ daemon: DaemonProcess, _ path: String, _ body: Data) async throws -> (Int, String) {
        var request = URLRequest(url: daemon.baseURL.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    func testKeyLookupAppliesTheKeyRule() async throws {
        let (daemon, client) = try await started()
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: records(1, "nul-a"))
        // "nul-a\0b" must not be reported as present because "nul-a" is.
        for (key, fragment) in [("nul-a\0b", "keys[1]: key byte 5 is the control character 0x00"),
                                ("tab\there", "keys[1]: key byte 3 is the control character 0x09"),
                                (String(repeating: "k", count: 1025), "keys[1]: key is 1025 bytes"),
                                ("", "keys[1]: key is 0 bytes")] {
            let json = try JSONSerialization.data(withJSONObject: ["keys": ["nul-a0", key]])
            let (status, text) = try await post(daemon, "v1/datasets/domain/keys", json)
            XCTAssertEqual(status, 400, text)
            XCTAssertTrue(text.contains(fragment), "'\(text)' lacks '\(fragment)'")
        }
        // Invalid UTF-8 inside a JSON string, and an escaped lone surrogate: refused, not repaired.
        for raw in [Array(#"{"keys": ["a"#.utf8) + [0xFF] + Array(#""]}"#.utf8), Array(#"{"keys": ["a\ud800"]}"#.utf8)] {
            let (status, text) = try await post(daemon, "v1/datasets/domain/keys", Data(raw))
            XCTAssertEqual(status, 400, text)
        }
        let longest = String(repeating: "k", count: 1024)
        let present = try await client.presentKeys(dataset: "domain", keys: ["nul-a0", longest])
        XCTAssertEqual(present, ["nul-a0"])

        // Keys are compared as bytes: "é" precomposed is stored, its decomposed spelling (equal
        // as Swift Strings, different bytes) was never sent and must not be reported present.
        var record = records(1, "x")[0]
        record.key = "caf\u{E9}"
        _ = try await client.append(dataset: "domain", vocabSize: 2000, records: [record])
        let json = try JSONSerialization.data(withJSONObject: ["keys": ["cafe\u{301}", "caf\u{E9}"]])
        let (status, text) = try await post(daemon, "v1/datasets/domain/keys", json)
        XCTAssertEqual(status, 200, text)
        let answer = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: [String]]
        XCTAssertEqual(answer["present"]?.map { Array($0.utf8) }, [Array("caf\u{E9}".utf8)], text)
        XCTAssertEqual(daemon.stop(), 0)
    }

}
