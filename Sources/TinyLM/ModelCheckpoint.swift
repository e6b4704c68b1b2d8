import Foundation
import Parameters
#if canImport(Glibc)
import Glibc
#endif

/// A checkpoint directory: `model.safetensors` (every weight, F32, by name) beside
/// `config.json` (the TinyLMConfig and free-form metadata such as the tokenizer hash or the
/// step). Format and invariants: schema/CHECKPOINT_FORMAT.md.
public enum ModelCheckpoint {
    public static let weightsFile = "model.safetensors"
    public static let configFile = "config.json"
    public static let format = "tinylm-checkpoint"
    public static let formatVersion = 1
    /// Keys of the safetensors `__metadata__` that belong to the format, not the caller.
    static let configKey = "tinylm.config"
    static let idKey = "tinylm.checkpoint_id"
    /// config.json is small; anything bigger is not ours.
    static let maxConfigBytes = 1 << 20

    /// What config.json holds.
    struct Manifest: Codable {
        var format: String
        var formatVersion: Int
        /// Random id written into both files by one `save`: a pair from two different saves
        /// (a crash between the two renames) is detected instead of silently mixed.
        var checkpointID: String
        var config: TinyLMConfig
        var metadata: [String: String]
        enum CodingKeys: String, CodingKey {
            case format, formatVersion = "format_version", checkpointID = "checkpoint_id", config, metadata
        }
    }

    /// Writes both files atomically: each goes to a temporary name, is fsynced and renamed into
    /// place, then the directory is fsynced. The weights are renamed first; a crash before the
    /// config's rename leaves a pair whose checkpoint ids differ, which `load` refuses.
    public static func save(_ model: TinyLMModel, to directory: String, metadata: [String: String]) throws {
        for key in metadata.keys where key.hasPrefix("tinylm.") {
            throw ModelError.invalidInput("metadata key '\(key)' uses the reserved prefix 'tinylm.'")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ModelError.io(path: directory, reason: "cannot create checkpoint directory: \(error.localizedDescription)")
        }
        let id = UUID().uuidString.lowercased()
        let configJSON = String(decoding: try encoder().encode(model.config), as: UTF8.self)
        var tensorMetadata = metadata
        tensorMetadata[configKey] = configJSON
        tensorMetadata[idKey] = id
        let manifest = Manifest(format: format, formatVersion: formatVersion, checkpointID: id, config: model.config, metadata: metadata)
        let manifestBytes = [UInt8](try encoder(pretty: true).encode(manifest)) + [0x0A]

        let weightsPath = directory + "/" + weightsFile, configPath = directory + "/" + configFile
        try writeAtomically(path: weightsPath, tag: id) { fd, tmp in
            try Safetensors.write(fd: fd, path: tmp, tensors: model.store.tensors, metadata: tensorMetadata)
        }
        try writeAtomically(path: configPath, tag: id) { fd, tmp in try FileIO.write(fd, manifestBytes, path: tmp) }
        try FileIO.syncDirectory(directory)
    }

    /// Reads config.json, validates the config, validates the safetensors header against the
    /// layout that config implies (before allocating any weight), checks the two files belong
    /// together, then reads the weights and checks they are finite.
    public static func load(from directory: String) throws -> (model: TinyLMModel, metadata: [String: String]) {
        let configPath = directory + "/" + configFile, weightsPath = directory + "/" + weightsFile
        let manifest = try readManifest(configPath)

        let fd = try FileIO.openRead(weightsPath)
        defer { close(fd) }
        let header = try Safetensors.readHeader(fd: fd, path: weightsPath, expected: manifest.config.tensorLayout)
        func fail(_ reason: String) -> ModelError { .invalidCheckpoint(file: weightsPath, reason: reason) }
        guard let id = header.metadata[idKey] else { throw fail("__metadata__ has no '\(idKey)'") }
        guard id == manifest.checkpointID else {
            throw fail("checkpoint id \(id) differs from \(manifest.checkpointID) in \(configFile): the files come from different saves")
        }
        guard let embedded = header.metadata[configKey] else { throw fail("__metadata__ has no '\(configKey)'") }
        let tensorConfig: TinyLMConfig
        do { tensorConfig = try JSONDecoder().decode(TinyLMConfig.self, from: Data(embedded.utf8)) } catch {
            throw fail("'\(configKey)' does not decode as a TinyLMConfig: \(error)")
        }
        guard tensorConfig == manifest.config else {
            throw fail("config mismatch: the weights were saved for \(tensorConfig), \(configFile) says \(manifest.config)")
        }

        let model = try TinyLMModel(config: manifest.config, initialize: false, seed: 0)
        try Safetensors.readTensors(fd: fd, path: weightsPath, header: header, into: model.store.tensors)
        for t in model.store.tensors {
            if let i = t.value.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor '\(t.name)' element \(i) is \(t.value[i]), expected finite")
            }
        }
        return (model, manifest.metadata)
    }

    /// SHA-256 (lowercase hex) of model.safetensors: the model's identity in provenance.
    public static func hash(of directory: String) throws -> String {
        try TokenizerSHA256.hexDigest(ofFile: directory + "/" + weightsFile)
    }

    // MARK: - Helpers

    static func readManifest(_ path: String) throws -> Manifest {
        let bytes = try FileIO.readAll(path, limit: maxConfigBytes)
        func fail(_ reason: String) -> ModelError { .invalidCheckpoint(file: path, reason: reason) }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes)) } catch {
            throw fail("does not decode as a checkpoint manifest: \(error)")
        }
        guard manifest.format == format else { throw fail("format '\(manifest.format)', expected '\(format)'") }
        guard manifest.formatVersion == formatVersion else {
            throw fail("format_version \(manifest.formatVersion), expected \(formatVersion)")
        }
        do { try manifest.config.validate() } catch { throw fail("\(error)") }
        return manifest
    }

    static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// temp file → body → fsync → close → rename over `path`. The temp file is removed on error.
    static func writeAtomically(path: String, tag: String, _ body: (Int32, String) throws -> Void) throws {
        let tmp = path + ".tmp-" + tag
        let fd = try FileIO.create(tmp)
        do {
            try body(fd, tmp)
            try FileIO.fsyncOrThrow(fd, path: tmp)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        do { try FileIO.renameOrThrow(tmp, path) } catch { unlink(tmp); throw error }
    }
}
