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

    /// Writes one line (keys sorted, snake_case).
    public func append(_ line: MetricsLine) throws {
        var data = try Self.encoder.encode(line.withoutNonFiniteValues())
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

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
            let parsed = try? decoder.decode(MetricsLine.self, from: Data(line))
            if step > 0, let lineStep = parsed?.step, lineStep <= step {
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

    /// Reads a metrics file back (for plots and reports); a line that is not a metrics line is an
    /// error naming it.
    public static func read(path: String) throws -> [MetricsLine] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw TrainingError.io("cannot read \(path): \(error)") }
        return try text.split(separator: "\n", omittingEmptySubsequences: true).enumerated().map { n, line in
            do { return try decoder.decode(MetricsLine.self, from: Data(line.utf8)) } catch {
                throw TrainingError.io("\(path) line \(n + 1) is not a metrics line: \(error)")
            }
        }
    }
}

/// One line of metrics.jsonl: a training step or an evaluation. The file a user greps, plots
/// or loads into pandas; `scripts/experiment.py` reads it too.
public struct MetricsLine: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case train, eval }

    public var phase: String?
    public var kind: Kind
    public var step: Int
    // A training step.
    public var loss: Double?
    /// Cross-entropy: the step's (train) or the held-out text's (eval).
    public var ce: Double?
    public var kd: Double?
    public var lr: Double?
    public var gradNorm: Double?
    public var tokens: Int?
    public var stepSeconds: Double?
    public var elapsedSeconds: Double?
    public var clippedFraction: Double?
    // An evaluation.
    public var name: String?
    public var ppl: Double?
    public var top1: Double?
    public var evalTokens: Int?
    public var klToBase: Double?

    public init(kind: Kind, step: Int, phase: String? = nil) {
        self.kind = kind
        self.step = step
        self.phase = phase
    }

    /// JSON has no NaN or infinity: a non-finite value (a diverged loss, an overflowing
    /// perplexity) is left out of the line rather than written as invalid JSON.
    func withoutNonFiniteValues() -> MetricsLine {
        var l = self
        for key in [\MetricsLine.loss, \.ce, \.kd, \.lr, \.gradNorm, \.stepSeconds, \.elapsedSeconds, \.clippedFraction,
                    \.ppl, \.top1, \.klToBase] where l[keyPath: key]?.isFinite == false {
            l[keyPath: key] = nil
        }
        return l
    }
}
