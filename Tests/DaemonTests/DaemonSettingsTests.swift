import Foundation
import XCTest
@testable import Daemon

final class DaemonSettingsTests: XCTestCase {
    let documented = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/config/logitd.json"

    /// config/logitd.json must state exactly the built-in defaults.
    func testDocumentedConfigEqualsTheDefaults() async throws {
        let fromFile = try await DaemonSettings.resolve(overrides: [:], configFile: documented, environment: [:])
        var expected = DaemonSettings(cacheDirectory: "/var/lib/logitd/cache")
        expected.token = nil
        XCTAssertEqual(fromFile, expected)
    }

    func testFlagsBeatEnvironmentBeatFile() async throws {
        let env = ["LOGITD_PORT": "9001", "LOGITD_ZSTD_LEVEL": "7"]
        let s = try await DaemonSettings.resolve(overrides: ["port": "9002"], configFile: documented, environment: env)
        XCTAssertEqual(s.port, 9002)
        XCTAssertEqual(s.zstdLevel, 7)
        XCTAssertEqual(s.maxShardBytes, 256 << 20)
    }

    func testBadValuesAreNamed() async {
        await assertFails(["cache_dir": "/tmp/x", "port": "eighty"], "port must be an integer")
        await assertFails(["cache_dir": "/tmp/x", "port": "70000"], "port must be 0…65535")
        await assertFails(["port": "1"], "cache directory is required")
        await assertFails(["cache_dir": "/tmp/x", "host": "0.0.0.0"], "without a bearer token")
        await assertFails(["cache_dir": "/tmp/x", "max_inflight_bytes": "2048", "max_body_bytes": "4096"], "must be ≥ max_body_bytes")
        await assertFails(["cache_dir": "/tmp/x", "header_timeout_seconds": "0"], "header_timeout_seconds must be > 0")
        await assertFails(["cache_dir": "/tmp/x", "body_timeout_seconds": "nan"], "body_timeout_seconds must be > 0")
        await assertFails(["cache_dir": "/tmp/x", "idle_timeout_seconds": "soon"], "idle_timeout_seconds must be a number")
        await assertFails(["cache_dir": "/tmp/x", "max_connections": "0"], "max_connections must be ≥ 1")
        do {
            _ = try await DaemonSettings.resolve(overrides: ["cache_dir": "/tmp/x"], configFile: "/nonexistent.json", environment: [:])
            XCTFail("a missing config file was ignored")
        } catch {}
    }

    /// The loopback rule is decided on the parsed address, never by a text prefix or DNS.
    func testLoopbackIsDecidedOnTheParsedAddress() async throws {
        for host in ["127.0.0.1", "127.255.0.9", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "LOCALHOST"] {
            XCTAssertEqual(DaemonSettings.address(host), .loopback, host)
            let s = try await DaemonSettings.resolve(overrides: ["cache_dir": "/tmp/x", "host": host], configFile: nil, environment: [:])
            XCTAssertEqual(s.host, host)
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "::ffff:10.0.0.1", "128.0.0.1"] {
            XCTAssertEqual(DaemonSettings.address(host), .other, host)
            await assertFails(["cache_dir": "/tmp/x", "host": host], "refusing to listen on non-loopback address \(host) without a bearer token")
        }
        for host in ["127.evil.example", "127.0.0.1.evil.example", "127.1", "localhost.evil.example", "::1.example", ""] {
            XCTAssertEqual(DaemonSettings.address(host), .name, host)
            await assertFails(["cache_dir": "/tmp/x", "host": host], "refusing to listen on host name '\(host)' without a bearer token")
        }
        // With a token any host may be bound (it is resolved when listening).
        let named = try await DaemonSettings.resolve(
            overrides: ["cache_dir": "/tmp/x", "host": "127.evil.example", "token": "0123456789abcdef0123"], configFile: nil, environment: [:])
        XCTAssertEqual(named.host, "127.evil.example")
    }

    func assertFails(_ overrides: [String: String], _ fragment: String, line: UInt = #line) async {
        do {
            _ = try await DaemonSettings.resolve(overrides: overrides, configFile: nil, environment: [:])
            XCTFail("accepted \(overrides)", line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", line: line)
        }
    }

    /// Equal bytes only, whatever the lengths. Whether the time is constant is not asserted: a unit
    /// test cannot measure that reliably (the comparison never exits early, by reading the code).
    func testTokenComparisonAcceptsOnlyEqualBytes() {
        typealias M = BearerAuthMiddleware<Hummingbird.BasicRequestContext>
        XCTAssertTrue(M.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        XCTAssertFalse(M.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        XCTAssertFalse(M.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        XCTAssertFalse(M.constantTimeEqual([], Array("a".utf8)))
    }
}

import Hummingbird
