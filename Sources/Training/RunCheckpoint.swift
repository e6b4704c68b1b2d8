import Foundation
import LogitCore
import Optim
import Replay
import Losses
import TinyLM

/// Where a run stands, saved beside the model and optimizer so `--out` of an interrupted run
/// resumes exactly: the step counter drives the LR schedule and the pretraining windows, the
/// replay state drives Stage 1's order.
public struct TrainerState: Codable, Sendable, Equatable {
    public var phase: String
    public var step: Int
    public var totalSteps: Int
    public var tokensSeen: Int
    public var elapsedSeconds: Double
    public var replay: ReplayState?

    public init(phase: String, step: Int, totalSteps: Int, tokensSeen: Int, elapsedSeconds: Double, replay: ReplayState? = nil) {
        self.phase = phase
        self.step = step
        self.totalSteps = totalSteps
        self.tokensSeen = tokensSeen
        self.elapsedSeconds = elapsedSeconds
        self.replay = replay
    }
}

/// A self-contained model directory: `model.safetensors` + `config.json` (ModelCheckpoint),
/// `tokenizer/` (vocab.json, merges.txt), and for training checkpoints `optimizer.state`
/// (schema/OPTIM_STATE.md) and `trainer.json`. Written to a temporary sibling and renamed into
/// place, so a crash leaves the previous checkpoint whole.
public enum RunCheckpoint {
    /// A run directory's current checkpoint.
    public static func path(inRun run: String) -> String { run + "/checkpoint" }

    /// Accepts a checkpoint directory or a run directory (whose `checkpoint/` is meant).
    public static func resolve(_ path: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: path + "/model.safetensors") { return path }
        if fm.fileExists(atPath: path + "/checkpoint/model.safetensors") { return path + "/checkpoint" }
        if fm.fileExists(atPath: path + "/checkpoint.old/model.safetensors") { return path + "/checkpoint.old" }
        throw TrainingError.io("\(path) holds no model (expected model.safetensors there or in \(path)/checkpoint)")
    }

    /// `metadata` is added to the model's (e.g. where an imported model came from).
    public static func save(to directory: String, model: TinyLMModel, tokenizer: ByteLevelBPE,
                            optimizer: (any Optimizer)?, state: TrainerState?, metadata extra: [String: String] = [:]) throws {
        let fm = FileManager.default
        let tmp = directory + ".tmp", old = directory + ".old"
        try? fm.removeItem(atPath: tmp)
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            var metadata = extra.merging(["tokenizer_hash": tokenizer.hash, "tokenizer_vocab": "\(tokenizer.vocabSize)"]) { $1 }
            if let state { metadata["step"] = "\(state.step)"; metadata["phase"] = state.phase }
            try ModelCheckpoint.save(model, to: tmp, metadata: metadata)
            try tokenizer.save(to: URL(fileURLWithPath: tmp + "/tokenizer"))
            if let optimizer {
                try optimizer.saveState(to: tmp + "/optimizer.state")
            }
            if let state {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(state).write(to: URL(fileURLWithPath: tmp + "/trainer.json"))
            }
            try syncTree(tmp)
            try? fm.removeItem(atPath: old)
            if fm.fileExists(atPath: directory) { try fm.moveItem(atPath: directory, toPath: old) }
            try fm.moveItem(atPath: tmp, toPath: directory)
            try sync((directory as NSString).deletingLastPathComponent)
            try? fm.removeItem(atPath: old)
        } catch let e as TrainingError {
            throw e
        } catch {
            throw TrainingError.io("cannot write the checkpoint \(directory): \(error)")
        }
    }

    /// The model, its tokenizer (checked against the hash the model was saved with) and metadata.
    public static func loadModel(_ path: String) throws -> (model: TinyLMModel, tokenizer: ByteLevelBPE, metadata: [String: String]) {
        let dir = try resolve(path)
        let (model, metadata) = try ModelCheckpoint.load(from: dir)
        let tokenizer: ByteLevelBPE
        do { tokenizer = try ByteLevelBPE.load(from: URL(fileURLWithPath: dir + "/tokenizer")) } catch {
            throw TrainingError.io("\(dir)/tokenizer: \(error)")
        }
        if let expected = metadata["tokenizer_hash"], expected != tokenizer.hash {
            throw TrainingError.invalid("\(dir)/tokenizer has hash \(tokenizer.hash) but the model was trained with \(expected)")
        }
        guard tokenizer.vocabSize == model.config.vocabSize else {
            throw TrainingError.invalid("\(dir): tokenizer has \(tokenizer.vocabSize) ids, the model \(model.config.vocabSize)")
        }
        return (model, tokenizer, metadata)
    }

    /// Optimizer state and trainer state of a training checkpoint.
    public static func loadTrainingState(_ directory: String, into optimizer: any Optimizer) throws -> TrainerState {
        do {
            try optimizer.loadState(from: directory + "/optimizer.state")
            return try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/trainer.json")))
        } catch {
            throw TrainingError.io("cannot resume from \(directory): \(error)")
        }
    }

    /// fsyncs every file and directory below `dir` (and `dir`): the tokenizer's subdirectory
    /// entries must be durable too. A failure is an error, never skipped.
    static func syncTree(_ dir: String) throws {
        guard let items = FileManager.default.enumerator(atPath: dir) else { throw TrainingError.io("cannot list \(dir)") }
        for case let item as String in items { try sync(dir + "/" + item) }
        try sync(dir)
    }

    static func sync(_ path: String) throws {
        do { try fsyncPath(path) } catch { throw TrainingError.io(error.description) }
    }
}
