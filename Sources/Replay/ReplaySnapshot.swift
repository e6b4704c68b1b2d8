import Catalog
import Foundation
import ShardFormat

/// The frozen list of shards a replay reads: the *sealed* shards of the chosen datasets at open
/// time, datasets sorted by name, each dataset's shards by generation. Open shards are left out
/// (their content is still growing). The order of an epoch is a function of this list, so its
/// hash is what a resume state is checked against. See schema/REPLAY_ORDER.md.
public struct ReplaySnapshot: Sendable, Equatable {
    public struct Shard: Sendable, Equatable {
        public var dataset: String
        public var uuid: UUID
        public var generation: Int
        public var fileHash: UInt64
        /// Sequences in each block, in block order.
        public var sequencesPerBlock: [Int]
        public var positions: Int
        public var blocks: Int { sequencesPerBlock.count }
        public var sequences: Int { sequencesPerBlock.reduce(0, +) }
    }

    public var shards: [Shard]
    /// FNV-1a 64 over the canonical shard list (see `computeHash`).
    public var hash: UInt64

    public var sequences: Int { shards.reduce(0) { $0 + $1.sequences } }
    public var positions: Int { shards.reduce(0) { $0 + $1.positions } }
    /// `hash` as 16 lower-case hex digits: what the resume state stores (JSON-safe).
    public var hashHex: String { hexString(hash) }

    public init(shards: [Shard]) {
        self.shards = shards
        self.hash = Self.computeHash(shards)
    }

    /// FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over the ASCII tag
    /// "logitd-replay-snapshot-v1", then per shard in snapshot order: the dataset name's UTF-8
    /// bytes and a 0 byte, the 16 UUID bytes (RFC 4122 order), the file's XXH3-64 as u64 LE, and
    /// the block count as u64 LE. Portable by construction (no `Hasher`).
    public static func computeHash(_ shards: [Shard]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func eat(_ b: UInt8) { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        func eat64(_ v: UInt64) { for i in 0..<8 { eat(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        for b in "logitd-replay-snapshot-v1".utf8 { eat(b) }
        for s in shards {
            for b in s.dataset.utf8 { eat(b) }
            eat(0)
            let u = s.uuid.uuid
            for b in [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15] { eat(b) }
            eat64(s.fileHash)
            eat64(UInt64(s.blocks))
        }
        return h
    }
}

func hexString(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
