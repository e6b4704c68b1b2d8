import Foundation
import LogitClient
import XCTest

/// A real `logitd` child process on an ephemeral loopback port.
final class DaemonProcess {
    let process = Process()
    let cacheDir: String
    private(set) var baseURL: URL!
    private let output = Pipe()
    let errors = Pipe()

    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        if FileManager.default.isExecutableFile(atPath: dir + "/logitd") { return dir + "/logitd" }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.path + "/.build/debug/logitd"
    }

    init(cacheDir: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        self.cacheDir = cacheDir
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--cache-dir", cacheDir, "--port", "0", "--log-level", "warning"] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // The first stdout line is "listening on http://127.0.0.1:PORT".
        let line = firstLine(of: output.fileHandleForReading)
        guard let range = line.range(of: "listening on ") else {
            process.waitUntilExit()
            let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw NSError(domain: "logitd", code: Int(process.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "logitd did not start: \(line) \(err)"])
        }
        baseURL = URL(string: String(line[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    /// Waits until /readyz answers 200 (recovery done).
    func waitReady(token: String? = nil) async throws {
        let client = LogitClient(baseURL: baseURL, token: token, maxAttempts: 1)
        for _ in 0..<200 {
            if await client.ready() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("logitd never became ready")
    }

    func stop(_ signal: Int32 = SIGTERM) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
}

/// The first line a child process writes (byte by byte: nothing past it is consumed), with its
/// newline; what there is if the pipe closes first.
func firstLine(of handle: FileHandle) -> String {
    var line = ""
    while !line.hasSuffix("\n") {
        let byte = handle.readData(ofLength: 1)
        guard !byte.isEmpty else { break }
        line += String(decoding: byte, as: UTF8.self)
    }
    return line
}

func temporaryDirectory(_ name: String = #function) -> String {
    let path = FileManager.default.temporaryDirectory.path + "/logitd-daemon-tests/" + name.filter { $0.isLetter || $0.isNumber } + "-" + UUID().uuidString.prefix(8)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
