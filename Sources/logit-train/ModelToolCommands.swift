import ArgumentParser
import Foundation
import TinyLM
import Training

/// Raw little-endian arrays in and out: the interchange with another implementation (numpy's
/// `fromfile`/`tofile`) for checking a model token by token.
enum RawArrays {
    static func readUInt32(_ path: String) throws -> [UInt32] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError.io("cannot read \(path)") }
        guard data.count % 4 == 0 else { throw TrainingError.invalid("\(path) is \(data.count) bytes, expected a multiple of 4 (u32 ids)") }
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) } }
    }

    static func write<T: BitwiseCopyable>(_ values: [T], to path: String) throws {
        let data = values.withUnsafeBytes { Data($0) }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TrainingError.io("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// A text file as the model's token ids.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a text file's token ids (u32, little-endian) under a model's tokenizer.")

    @Option(help: "Checkpoint or run directory.") var model: String
    @Option(help: "Text file.") var text: String
    @Option(help: "Output file of u32 ids.") var out: String

    func run() throws {
        try reported {
            let dir = try RunCheckpoint.resolve(model)
            let tokenizer = try ByteLevelBPE.load(from: URL(fileURLWithPath: dir + "/tokenizer"))
            guard let data = FileManager.default.contents(atPath: text) else { throw TrainingError.io("cannot read \(text)") }
            let ids = tokenizer.encode(bytes: data)
            try RawArrays.write(ids.map(\.littleEndian), to: out)
            print("\(text): \(data.count) bytes -> \(ids.count) tokens -> \(out)")
        }
    }
}

/// Full-vocabulary logits of consecutive windows, positions restarting at 0 in each.
struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a model's logits (f32, little-endian, [positions × vocab]) for windows of a token file.")

    @Option(help: "Checkpoint or run directory.") var model: String
    @Option(help: "Token ids (u32, little-endian).") var tokens: String
    @Option(help: "Tokens per window.") var window: Int = 256
    @Option(help: "Number of consecutive windows from the start.") var windows: Int = 1
    @Option(help: "Output file.") var out: String

    func run() throws {
        try reported {
            let (m, _, _) = try RunCheckpoint.loadModel(model)
            let ids = try RawArrays.readUInt32(tokens)
            guard window >= 1, windows >= 1, window * windows <= ids.count else {
                throw TrainingError.invalid("\(windows) windows of \(window) tokens need \(window * windows) ids; \(tokens) has \(ids.count)")
            }
            let input = Array(ids[0..<(window * windows)])
            let offsets = (0...windows).map { Int32($0 * window) }
            let hidden = try input.withUnsafeBufferPointer { t in try offsets.withUnsafeBufferPointer { try m.forward(tokens: t, rowOffsets: $0, keepActivations: false) } }
            let logits = m.logits(hidden: hidden, count: input.count)
            try RawArrays.write(logits.map(\.bitPattern.littleEndian), to: out)
        }
    }
}

/// Greedy continuation of a prompt: the quickest check that an imported model is the model.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Greedy continuation of a prompt.")

    @Option(help: "Checkpoint or run directory.") var model: String
    @Option(help: "Prompt text.") var prompt: String
    @Option(help: "Tokens to generate.") var tokens: Int = 32
    @Flag(help: "Print one JSON object (prompt, ids, text).") var json = false

    struct Output: Codable { var prompt: String; var ids: [UInt32]; var text: String }

    func run() throws {
        try reported {
            let (m, tokenizer, _) = try RunCheckpoint.loadModel(model)
            var ids = tokenizer.encode(prompt)
            guard !ids.isEmpty else { throw TrainingError.invalid("the prompt encodes to no tokens") }
            let promptCount = ids.count
            for _ in 0..<max(0, tokens) where ids.count < m.config.maxSequenceLength {
                let offsets: [Int32] = [0, Int32(ids.count)]
                let hidden = try ids.withUnsafeBufferPointer { t in try offsets.withUnsafeBufferPointer { try m.forward(tokens: t, rowOffsets: $0, keepActivations: false) } }
                let d = m.config.dModel
                let last = UnsafeBufferPointer(rebasing: hidden[((ids.count - 1) * d)...])
                let z = m.logits(hidden: last, count: 1)
                ids.append(UInt32(z.indices.max { z[$0] < z[$1] }!))
            }
            let generated = Array(ids[promptCount...])
            let text = String(decoding: try tokenizer.decodeBytes(generated), as: UTF8.self)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(Output(prompt: prompt, ids: generated, text: text)), as: UTF8.self))
            } else {
                print(prompt + text)
            }
        }
    }
}
