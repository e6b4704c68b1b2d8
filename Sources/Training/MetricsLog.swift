import Foundation

/// Appends one JSON object per line to `metrics.jsonl` in a run directory: the record a user
/// greps, plots or loads into pandas. Keys are sorted so lines diff cleanly between runs.
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle

    /// Opens (creating when missing) for appending: a resumed run continues the same file.
    /// `keepingStepsThrough`: the step the run resumes from. Lines written after that step's
    /// checkpoint (by a process that was then killed) are dropped, a torn last line with them,
    /// so the resumed run does not log its steps twice. At 0 the file starts empty.
    public init(path: String, keepingStepsThrough step: Int) throws {
        self.path = path
        if FileManager.default.fileExists(atPath: path) { try Self.truncate(path: path, throughStep: step) }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError.io("cannot create the metrics file \(path)")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainingError.io("cannot open the metrics file \(path) for appending")
        }
        self.handle = handle
        handle.seekToEndOfFile()
    }

    deinit { try? handle.close() }

    /// Writes one line. Non-finite numbers are written as null (JSON has no NaN).
    public func append(_ fields: [String: MetricValue]) throws {
        var object: [String: Any] = [:]
        for (k, v) in fields { object[k] = v.jsonObject }
        var line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        line.append(0x0A)
        try handle.write(contentsOf: line)
    }

    /// Makes every line so far durable (called at checkpoints, so metrics and checkpoint agree).
    public func sync() throws { try handle.synchronize() }

    /// Rewrites the file (atomically) with only the whole lines of steps 1…`step`, when others exist.
    static func truncate(path: String, throughStep step: Int) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError.io("cannot read the metrics file \(path): \(error)")
        }
        var kept = Data()
        var dropped = false
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) where !line.isEmpty {
            let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
            if step > 0, let lineStep = object?["step"] as? Int, lineStep <= step {
                kept.append(line)
                kept.append(0x0A)
            } else {
                dropped = true
            }
        }
        guard dropped || kept.count != data.count else { return }
        do { try kept.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TrainingError.io("cannot rewrite the metrics file \(path): \(error)")
        }
    }

    /// Reads a metrics file back (for plots and reports); lines that are not objects are errors.
    public static func read(path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var rows: [[String: Any]] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TrainingError.io("\(path) line \(n + 1) is not a JSON object")
            }
            rows.append(object)
        }
        return rows
    }
}

/// A value in a metrics line.
public enum MetricValue: Sendable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral {
    case int(Int)
    case double(Double)
    case string(String)

    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }

    var jsonObject: Any {
        switch self {
        case .int(let v): return v
        case .double(let v): return v.isFinite ? v : NSNull()
        case .string(let v): return v
        }
    }
}
