import Synchronization

/// The exact bytes of a piece as a dictionary key. Not `String`: Swift compares strings by
/// canonical equivalence, so "e\u{301}" and "é" (different bytes, different tokens) would share
/// an entry. Pieces up to 16 bytes, nearly all of them, live inline without allocating.
struct BPEPieceKey: Hashable {
    var a: UInt64 = 0
    var b: UInt64 = 0
    var count: Int
    var long: [UInt8] = []

    init(_ piece: UnsafeBufferPointer<UInt8>) {
        count = piece.count
        if count <= 16 {
            for k in 0..<count {
                if k < 8 { a |= UInt64(piece[k]) << UInt64(8 * k) } else { b |= UInt64(piece[k]) << UInt64(8 * (k - 8)) }
            }
        } else {
            long = Array(piece)
        }
    }
}

/// Piece → token ids, shared by every copy of a tokenizer. Natural text repeats a small set of
/// words, so most pieces skip BPE entirely. Bounded: when `capacity` entries are reached the
/// table is cleared (cheap, and the frequent words come back within a few lines).
final class BPEWordCache: Sendable {
    let capacity: Int
    private let table = Mutex<[BPEPieceKey: [UInt32]]>([:])

    init(capacity: Int) { self.capacity = capacity }

    func lookup(_ key: BPEPieceKey) -> [UInt32]? { table.withLock { $0[key] } }

    func insert(_ key: BPEPieceKey, _ ids: [UInt32]) {
        table.withLock { t in
            if t.count >= capacity { t.removeAll(keepingCapacity: true) }
            t[key] = ids
        }
    }
}
