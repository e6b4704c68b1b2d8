import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LogitCore
import TinyLM
import XCTest
@testable import Training

/// The parts of the training loop that do not need a model: batches, corpora, metrics, plots.
final class TrainingPartsTests: XCTestCase {
    /// Real text from a Debian package (base-files).
    static let text = "/usr/share/common-licenses/GPL-3"

    func testWindowStartsArePureFunctionsOfSeedAndStepAndStayInRange() throws {
        let a = try WindowSampler(tokenCount: 1000, length: 64, batchSize: 8, seed: 7)
        let b = try WindowSampler(tokenCount: 1000, length: 64, batchSize: 8, seed: 7)
        XCTAssertEqual(a.starts(step: 5), b.starts(step: 5), "same seed and step, different windows: resume would diverge")
        XCTAssertNotEqual(a.starts(step: 5), a.starts(step: 6))
        XCTAssertNotEqual(a.starts(step: 5), try WindowSampler(tokenCount: 1000, length: 64, batchSize: 8, seed: 8).starts(step: 5))
        for step in 1...200 { for s in a.starts(step: step) { XCTAssert(s >= 0 && s + 64 + 1 <= 1000, "window \(s) leaves the stream") } }
        XCTAssertThrowsError(try WindowSampler(tokenCount: 60, length: 64, batchSize: 1, seed: 0)) { error in
            XCTAssertTrue("\(error)".contains("fewer than one window"), "\(error)")
        }
    }

    func testTokenBatchPacksRowsAndShiftsTargets() {
        let tokens: [UInt32] = Array(0..<100)
        let batch = TokenBatch()
        batch.fill(tokens: tokens, starts: [0, 50, 90], length: 10)
        XCTAssertEqual(batch.rowOffsets, [0, 10, 20, 29], "the last window is cut at the end of the stream")
        XCTAssertEqual(Array(batch.inputs[10..<20]), Array(50..<60))
        XCTAssertEqual(Array(batch.targets[10..<20]), Array(51..<61))
        XCTAssertEqual(batch.targets.last, 99)
        batch.withCandidateBatch { b in
            XCTAssertEqual(b.count, 29)
            XCTAssertEqual(b.mask.count, 29)
            XCTAssertEqual(b.setOffsets.count, 30)
        }
    }

    func testParallelTokenizationIsLosslessAndDeterministic() throws {
        let raw = try String(contentsOfFile: Self.text, encoding: .utf8)
        let tokenizer = try ByteLevelBPE.train(corpus: [String(raw.prefix(20_000))], vocabSize: 400, specialTokens: ["<|endoftext|>"])
        let a = try TokenCorpus.load(path: Self.text, tokenizer: tokenizer, pieceBytes: 2048)
        let b = try TokenCorpus.load(path: Self.text, tokenizer: tokenizer, pieceBytes: 2048)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(a.fileHash, b.fileHash)
        XCTAssertEqual(a.fileHash.count, 64)
        XCTAssertGreaterThan(TokenCorpus.paragraphCuts(Array(raw.utf8), target: 2048).count, 10, "the file should be cut into many pieces")
        XCTAssertEqual(TokenCorpus.paragraphCuts([], target: 2048), [0, 0])
        XCTAssertEqual(try tokenizer.decode(a.tokens), raw, "cutting at paragraph breaks must not lose or reorder bytes")
        XCTAssertThrowsError(try TokenCorpus.load(path: "/nonexistent/corpus.txt", tokenizer: tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/corpus.txt"), "\(error)")
        }
    }

    func testMetricsLinesAppendAcrossReopensAndBadLinesAreNamed() throws {
        let dir = NSTemporaryDirectory() + "metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/metrics.jsonl"
        func train(_ step: Int, loss: Double) -> MetricsLine {
            var line = MetricsLine(kind: .train, step: step)
            line.loss = loss
            return line
        }
        try MetricsLog(path: path, keepingStepsThrough: 0).append(train(1, loss: 2.5))
        try MetricsLog(path: path, keepingStepsThrough: 1).append(train(2, loss: .nan))
        let rows = try MetricsLog.read(path: path)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0].loss, 2.5)
        XCTAssertNil(rows[1].loss, "NaN must be left out, not written as invalid JSON")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").first, #"{"kind":"train","loss":2.5,"step":1}"#, "keys sorted, snake_case")
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"step\": 3, trunc\n".utf8))
        try handle.close()
        XCTAssertThrowsError(try MetricsLog.read(path: path)) { XCTAssertTrue("\($0)".contains("line 3"), "\($0)") }
    }

    /// A run killed after its step-2 checkpoint had logged steps 3 and 4 and half a line: resuming
    /// at 2 drops them, so the resumed run's lines are not duplicates; resuming at 0 starts empty.
    func testResumingDropsLinesLoggedAfterTheCheckpoint() throws {
        let dir = NSTemporaryDirectory() + "metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/metrics.jsonl"
        let log = try MetricsLog(path: path, keepingStepsThrough: 0)
        var eval = MetricsLine(kind: .eval, step: 0)
        eval.ppl = 30
        try log.append(eval)
        func train(_ step: Int, loss: Double) -> MetricsLine {
            var line = MetricsLine(kind: .train, step: step)
            line.loss = loss
            return line
        }
        for s in 1...4 { try log.append(train(s, loss: 2)) }
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"kind\": \"train\", \"st".utf8))
        try handle.close()
        try MetricsLog(path: path, keepingStepsThrough: 2).append(train(3, loss: 1.5))
        let rows = try MetricsLog.read(path: path)
        XCTAssertEqual(rows.map(\.step), [0, 1, 2, 3])
        XCTAssertEqual(rows.last?.loss, 1.5, "the resumed run's step 3, not the killed run's")
        _ = try MetricsLog(path: path, keepingStepsThrough: 0)
        XCTAssertEqual(try MetricsLog.read(path: path).count, 0)
    }

    func testLossPlotIsWellFormedSVGWithOneLinePerSeries() throws {
        let plot = LossPlot(title: "a < b & c", xLabel: "step", yLabel: "loss", series: [
            .init(name: "train", points: [(1, 3.0), (2, 2.5), (3, .nan), (4, 2.0)]),
            .init(name: "held-out", points: [(2, 2.8)]),
            .init(name: "empty", points: []),
        ])
        let svg = plot.svg()
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2, "one line per non-empty series")
        XCTAssertEqual(plot.series[0].points.count, 3, "non-finite points are dropped, not drawn at infinity")
        XCTAssertTrue(svg.contains("a &lt; b &amp; c"))
        XCTAssertFalse(svg.contains("nan"))
    }
}
