/// A byte-level BPE tokenizer (GPT-2 scheme): GPT-2 pre-tokenization, then per piece the
/// lowest-ranked merge is applied repeatedly to the piece's bytes. Lossless for any byte
/// sequence when every byte is a token (see `missingBytes`). Immutable and `Sendable`; the word cache inside is
/// shared and locked.
///
/// Special tokens (e.g. `<|endoftext|>`) are vocabulary entries that are neither a single byte
/// nor the result of a merge. `encode` never produces them from text (text that spells
/// `<|endoftext|>` encodes as ordinary bytes); callers append them by id (`specialTokenID`).
public struct ByteLevelBPE: Sendable {
    /// Bytes of every token, concatenated; token `i` is `tokenBytes[tokenOffsets[i]..<tokenOffsets[i+1]]`.
    let tokenBytes: [UInt8]
    let tokenOffsets: [Int]
    /// Token id of each single byte; `UInt32.max` for a byte the vocabulary lacks.
    let byteToID: [UInt32]
    /// Merges in rank order: (left, right, result).
    let merges: [(left: UInt32, right: UInt32, result: UInt32)]
    /// (left << 32 | right) → (rank << 32 | result).
    let mergeTable: [UInt64: UInt64]
    /// Special token text → id.
    public let specialTokens: [String: UInt32]
    /// How text is cut into pieces before merging.
    public let preTokenizer: PreTokenizerRule
    /// Lowercase hex SHA-256 of the canonical `vocab.json` followed by the canonical
    /// `merges.txt` (exactly the bytes `save(to:)` writes), then, for a rule other than GPT-2's,
    /// the `pre_tokenizer.txt` line: identifies the tokenizer in dataset provenance
    /// independently of how the loaded files were formatted.
    public let hash: String
    private(set) var cache: BPEWordCache

    /// Bytes every vocabulary must have. Real ones may lack others: SmolLM2's has no token for
    /// 21 bytes (six control characters and the bytes UTF-8 never uses).
    static let requiredBytes: [UInt8] = [0x09, 0x0A, 0x0D] + Array(0x20...0x7E)

    /// Bytes without a token, which `encode` skips as Hugging Face's BPE (no unknown token) and
    /// llama.cpp do. Empty for a lossless vocabulary.
    public var missingBytes: [UInt8] { (0...255).filter { byteToID[$0] == .max }.map(UInt8.init) }

    /// Number of token ids (`0..<vocabSize`), special tokens included.
    public var vocabSize: Int { tokenOffsets.count - 1 }
    /// Number of merges (the rank of the last merge + 1).
    public var mergeCount: Int { merges.count }

    /// Builds the tables from tokens by id and merges by rank; validates that the 256 single
    /// bytes are present once each and that every merge's result is the concatenation.
    init(tokens: [[UInt8]], merges: [(UInt32, UInt32)], preTokenizer: PreTokenizerRule = .gpt2,
         cacheCapacity: Int = 1 << 16, source: String) throws {
        var offsets = [0]
        offsets.reserveCapacity(tokens.count + 1)
        var bytes: [UInt8] = []
        for t in tokens { bytes.append(contentsOf: t); offsets.append(bytes.count) }
        var byteToID = [UInt32](repeating: .max, count: 256)
        for (id, t) in tokens.enumerated() where t.count == 1 {
            guard byteToID[Int(t[0])] == .max else {
                throw TokenizerError.invalidVocabulary(file: source, reason: "byte 0x\(String(t[0], radix: 16)) has two tokens (ids \(byteToID[Int(t[0])]) and \(id))")
            }
            byteToID[Int(t[0])] = UInt32(id)
        }
        if let missing = Self.requiredBytes.first(where: { byteToID[Int($0)] == .max }) {
            throw TokenizerError.invalidVocabulary(file: source, reason: "no token for byte 0x\(String(missing, radix: 16)); a byte-level vocabulary needs at least tab, newline, carriage return and printable ASCII")
        }
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        var resolved: [(left: UInt32, right: UInt32, result: UInt32)] = []
        resolved.reserveCapacity(merges.count)
        var index: [[UInt8]: UInt32] = [:]
        index.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where index[t] == nil { index[t] = UInt32(id) }
        var produced = [Bool](repeating: false, count: tokens.count)
        for (rank, m) in merges.enumerated() {
            let joined = tokens[Int(m.0)] + tokens[Int(m.1)]
            guard let result = index[joined] else {
                throw TokenizerError.invalidVocabulary(file: source, reason: "merge \(rank + 1) (\(BPEByteMapping.string(fromBytes: tokens[Int(m.0)])) \(BPEByteMapping.string(fromBytes: tokens[Int(m.1)]))) produces a token missing from the vocabulary")
            }
            let key = UInt64(m.0) << 32 | UInt64(m.1)
            guard table[key] == nil else {
                throw TokenizerError.invalidVocabulary(file: source, reason: "merge \(rank + 1) repeats an earlier merge")
            }
            table[key] = UInt64(rank) << 32 | UInt64(result)
            resolved.append((m.0, m.1, result))
            produced[Int(result)] = true
        }
        var specials: [String: UInt32] = [:]
        for (id, t) in tokens.enumerated() where t.count > 1 && !produced[id] {
            specials[String(decoding: t, as: UTF8.self)] = UInt32(id)
        }
        self.tokenBytes = bytes
        self.tokenOffsets = offsets
        self.byteToID = byteToID
        self.merges = resolved
        self.mergeTable = table
        self.specialTokens = specials
        self.preTokenizer = preTokenizer
        self.cache = BPEWordCache(capacity: cacheCapacity)
        let files = BPEFiles.canonical(tokens: tokens, merges: merges, preTokenizer: preTokenizer)
        self.hash = TokenizerSHA256.hexDigest(files.vocabJSON + files.mergesText + (files.preTokenizerText ?? []))
    }

    /// A copy with its own empty piece cache of at most `capacity` entries (0: no cache), for
    /// bounding memory or measuring uncached speed. Copies made by assignment share one cache.
    public func withCache(capacity: Int) -> ByteLevelBPE {
        var copy = self
        copy.cache = BPEWordCache(capacity: max(0, capacity))
        return copy
    }

    /// The id of the single-byte token for `byte`.
    public func id(ofByte byte: UInt8) -> UInt32 { byteToID[Int(byte)] }

    /// The rank and result of merging `left` then `right`, or nil if that pair never merges.
    public func merge(_ left: UInt32, _ right: UInt32) -> (rank: Int, result: UInt32)? {
        guard let m = rank(left, right) else { return nil }
        return (Int(m >> 32), UInt32(truncatingIfNeeded: m))
    }

    /// The id of a special token such as `<|endoftext|>`, or nil.
    public func specialTokenID(_ text: String) -> UInt32? { specialTokens[text] }

    /// The bytes of one token.
    public func bytes(ofToken id: UInt32) throws -> [UInt8] {
        guard Int(id) < vocabSize else { throw TokenizerError.unknownTokenID(id: id, position: 0, vocabSize: vocabSize) }
        return Array(tokenBytes[tokenOffsets[Int(id)]..<tokenOffsets[Int(id) + 1]])
    }

    // MARK: Encoding

    /// Token ids of `text`. `decode(encode(text)) == text` for every String.
    public func encode(_ text: String) -> [UInt32] {
        var copy = text
        return copy.withUTF8 { encode(utf8: $0) }
    }

    /// Token ids of arbitrary bytes (valid UTF-8 or not); `decodeBytes` gives them back.
    public func encode(bytes: some Collection<UInt8>) -> [UInt32] {
        if let fast = bytes.withContiguousStorageIfAvailable({ encode(utf8: $0) }) { return fast }
        return Array(bytes).withUnsafeBufferPointer { encode(utf8: $0) }
    }

    func encode(utf8 p: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(p.count / 3 + 4)
        var scratch = MergeScratch()
        BPEPreTokenizer.forEachPiece(in: p, rule: preTokenizer) { r in
            if r.count == 1 {
                let id = byteToID[Int(p[r.lowerBound])]
                if id != .max { out.append(id) }
                return
            }
            let piece = UnsafeBufferPointer(rebasing: p[r])
            guard cache.capacity > 0 else { mergePiece(piece, &scratch, &out); return }
            let key = BPEPieceKey(piece)
            if let hit = cache.lookup(key) { out.append(contentsOf: hit); return }
            let start = out.count
            mergePiece(piece, &scratch, &out)
            cache.insert(key, Array(out[start...]))
        }
        return out
    }

    /// Reused buffers for `mergePiece`: a doubly linked list over the piece's tokens and a
    /// binary min-heap of (rank << 32 | position) for candidate merges.
    struct MergeScratch {
        var tok: [UInt32] = []
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap: [UInt64] = []
    }

    @inline(__always) func rank(_ a: UInt32, _ b: UInt32) -> UInt64? {
        mergeTable[UInt64(a) << 32 | UInt64(b)]
    }

    /// BPE on one piece, appending its ids to `out`. Pops the lowest (rank, position) pair,
    /// merges it in the linked list, and pushes the two new neighbour pairs: O(n log n) per
    /// piece. Same rank pops left to right, which is GPT-2's "merge every occurrence of the best
    /// pair, scanning left to right". Stale heap entries are recognised on pop (the pair at that
    /// position no longer has that rank) and dropped.
    /// Bytes without a token are left out before merging, so their neighbours may merge.
    func mergePiece(_ piece: UnsafeBufferPointer<UInt8>, _ s: inout MergeScratch, _ out: inout [UInt32]) {
        s.tok.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.heap.removeAll(keepingCapacity: true)
        for b in piece {
            let id = byteToID[Int(b)]
            guard id != .max else { continue }
            s.prev.append(Int32(s.tok.count - 1))
            s.next.append(Int32(s.tok.count + 1))
            s.tok.append(id)
        }
        let n = s.tok.count
        guard n > 0 else { return }
        for k in 0..<(n - 1) {
            if let m = rank(s.tok[k], s.tok[k + 1]) { heapPush(&s.heap, (m & 0xFFFF_FFFF_0000_0000) | UInt64(k)) }
        }
        let dead = UInt32.max
        while let top = heapPop(&s.heap) {
            let i = Int(top & 0xFFFF_FFFF)
            let r = top >> 32
            guard s.tok[i] != dead else { continue }
            let j = Int(s.next[i])
            guard j < n, let m = rank(s.tok[i], s.tok[j]), m >> 32 == r else { continue }
            s.tok[i] = UInt32(truncatingIfNeeded: m)
            s.tok[j] = dead
            let after = Int(s.next[j])
            s.next[i] = Int32(after)
            if after < n { s.prev[after] = Int32(i) }
            let before = Int(s.prev[i])
            if before >= 0, let m2 = rank(s.tok[before], s.tok[i]) {
                heapPush(&s.heap, (m2 & 0xFFFF_FFFF_0000_0000) | UInt64(before))
            }
            if after < n, let m3 = rank(s.tok[i], s.tok[after]) {
                heapPush(&s.heap, (m3 & 0xFFFF_FFFF_0000_0000) | UInt64(i))
            }
        }
        var k = 0
        while k < n { out.append(s.tok[k]); k = Int(s.next[k]) }
    }

    @inline(__always) func heapPush(_ h: inout [UInt64], _ v: UInt64) {
        h.append(v)
        var c = h.count - 1
        while c > 0 {
            let p = (c - 1) >> 1
            if h[p] <= h[c] { break }
            h.swapAt(p, c); c = p
        }
    }

    @inline(__always) func heapPop(_ h: inout [UInt64]) -> UInt64? {
        guard let last = h.popLast() else { return nil }
        guard !h.isEmpty else { return last }
        let top = h[0]
        h[0] = last
        var p = 0
        let n = h.count
        while true {
            let l = 2 * p + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && h[l + 1] < h[l] { c = l + 1 }
            if h[p] <= h[c] { break }
            h.swapAt(p, c); p = c
        }
        return top
    }

    // MARK: Decoding

    /// The bytes of a token sequence. Throws on an id outside the vocabulary.
    public func decodeBytes(_ ids: [UInt32]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for (pos, id) in ids.enumerated() {
            guard Int(id) < vocabSize else { throw TokenizerError.unknownTokenID(id: id, position: pos, vocabSize: vocabSize) }
            out.append(contentsOf: tokenBytes[tokenOffsets[Int(id)]..<tokenOffsets[Int(id) + 1]])
        }
        return out
    }

    /// The text of a token sequence. Throws on an unknown id, and on bytes that are not UTF-8
    /// (a sequence cut inside a character): no silent U+FFFD replacement.
    public func decode(_ ids: [UInt32]) throws -> String {
        let bytes = try decodeBytes(ids)
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var offset = 0
        bytes.withUnsafeBufferPointer { p in
            var i = 0
            while i < p.count {
                let (v, len) = BPEPreTokenizer.decode(p, i)
                if v == 0xFFFF_FFFF { offset = i; return }
                i += len
            }
        }
        throw TokenizerError.invalidUTF8(byteOffset: offset)
    }
}
