import Dispatch
import Foundation
import TinyLM

/// A text file as token ids, with the file's identity (its SHA-256) that teachers put in their
/// sequence keys: the same file and tokenizer always give the same ids and keys.
public struct TokenCorpus: Sendable {
    public let path: String
    /// SHA-256 (hex) of the file's bytes.
    public let fileHash: String
    public let bytes: Int
    public let tokens: [UInt32]

    /// Largest corpus file accepted (the whole file is read into memory).
    public static let maxBytes = 2 << 30

    /// Reads and tokenizes `path`. The text is cut after paragraph breaks into pieces of about
    /// `pieceBytes` that are encoded on all cores; the cut points depend only on the bytes, so the ids
    /// are deterministic (they can differ from a whole-file encode only at those breaks).
    public static func load(path: String, tokenizer: ByteLevelBPE, pieceBytes: Int = 64 << 10) throws -> TokenCorpus {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw TrainingError.io("cannot read the corpus \(path): \(error.localizedDescription)")
        }
        guard data.count <= maxBytes else { throw TrainingError.invalid("corpus \(path) is \(data.count) bytes, the limit is \(maxBytes)") }
        let bytes = [UInt8](data)
        let cuts = paragraphCuts(bytes, target: max(pieceBytes, 1))
        let pieces = cuts.count - 1
        nonisolated(unsafe) var encoded = [[UInt32]](repeating: [], count: pieces)
        bytes.withUnsafeBufferPointer { all in
            nonisolated(unsafe) let all = all
            encoded.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                DispatchQueue.concurrentPerform(iterations: pieces) { i in
                    out[i] = tokenizer.encode(bytes: UnsafeBufferPointer(rebasing: all[cuts[i]..<cuts[i + 1]]))
                }
            }
        }
        return TokenCorpus(path: path, fileHash: TokenizerSHA256.hexDigest(bytes), bytes: bytes.count,
                           tokens: encoded.flatMap { $0 })
    }

    /// Piece boundaries: just after the first blank line ("\n\n") at or past each `target` bytes.
    static func paragraphCuts(_ bytes: [UInt8], target: Int) -> [Int] {
        var cuts = [0]
        var i = target
        while i < bytes.count {
            if bytes[i - 1] == 0x0A && bytes[i] == 0x0A {
                cuts.append(i + 1)
                i += target
            } else {
                i += 1
            }
        }
        if bytes.isEmpty || cuts.last! != bytes.count { cuts.append(bytes.count) }
        return cuts
    }
}
