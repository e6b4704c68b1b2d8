import Foundation
import XCTest

/// `logitd serve`'s command line: a flag for every documented setting (but the token), and
/// mistyped values refused with a usage error instead of a silent default.
final class DaemonCommandLineTests: XCTestCase {
    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testEveryDocumentedSettingButTheTokenHasAFlag() throws {
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/logitd.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any]
        let keys = try XCTUnwrap(object?["logitd"] as? [String: Any]).keys
        XCTAssertGreaterThan(keys.count, 10)
        let help = try run(["serve", "--help"]).output
        for key in keys where key != "token" {
            XCTAssertTrue(help.contains("--" + key.replacingOccurrences(of: "_", with: "-")), "no flag for \(key)")
        }
        XCTAssertFalse(help.contains("--token "), "the token itself must stay off the command line")
    }

    func testMistypedLogLevelIsAUsageError() throws {
        let (status, output) = try run(["serve", "--cache-dir", temporaryDirectory(), "--port", "0", "--log-level", "loud"])
        XCTAssertEqual(status, 64, output)
        XCTAssertTrue(output.contains("loud"), output)
    }

    func testNewFlagsReachTheSettingsValidation() throws {
        let (status, output) = try run(["serve", "--cache-dir", temporaryDirectory(), "--port", "0", "--zstd-level", "30"])
        XCTAssertEqual(status, 64, output)
        XCTAssertTrue(output.contains("zstd_level must be 1…22"), output)
        let daemon = try DaemonProcess(cacheDir: temporaryDirectory(),
                                       arguments: ["--zstd-level", "19", "--target-block-bytes", "65536", "--selection-threads", "1"])
        XCTAssertEqual(daemon.stop(), 0)
    }
}
