import Foundation

/// Progress of a long loop: a redrawn bar on a terminal (step, loss, tokens/s, ETA), plain log
/// lines otherwise (CI logs and `tee` stay readable).
public struct ProgressDisplay {
    public let total: Int
    public let label: String
    public let interactive: Bool
    /// Without a terminal, one line every this many steps (and at the last).
    public let logEvery: Int
    private let start = Date()
    private var lastDraw = Date.distantPast

    public init(total: Int, label: String, logEvery: Int = 50, interactive: Bool = isatty(1) == 1) {
        self.total = max(total, 1)
        self.label = label
        self.logEvery = max(logEvery, 1)
        self.interactive = interactive
    }

    /// `done` of `total` finished; `fields` are printed after the bar, e.g. "loss 3.21".
    public mutating func update(done: Int, fields: String, rate: Double?, unit: String = "tok/s") {
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        let rateText = rate.map { String(format: "%.0f %@", $0, unit) } ?? ""
        if interactive {
            guard Date().timeIntervalSince(lastDraw) > 0.2 || done == total else { return }
            lastDraw = Date()
            let width = 24
            let filled = min(width, width * done / total)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "\(label) [\(bar)] \(done)/\(total)  \(fields)  \(rateText)  ETA \(Self.duration(eta))"
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8))
        } else if done % logEvery == 0 || done == total || done == 1 {
            print("\(label) \(done)/\(total)  \(fields)  \(rateText)  elapsed \(Self.duration(elapsed))  ETA \(Self.duration(eta))")
        }
    }

    /// Ends the bar's line on a terminal.
    public func finish() { if interactive { print("") } }

    /// Prints a message without breaking the bar.
    public func log(_ message: String) {
        if interactive { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
        print(message)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }
}
