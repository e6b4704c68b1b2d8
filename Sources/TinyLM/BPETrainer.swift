import Foundation

/// Learns byte-level BPE merges from a corpus: pre-tokenize, count distinct pieces, start from
/// the 256 byte tokens (ids in GPT-2's byte order) and repeatedly merge the most frequent
/// adjacent pair. Pair counts are updated incrementally: an index from each pair to the words
/// that contain it means a merge only revisits those words, and a max-heap with lazy deletion
/// finds the next pair without rescanning all counts.
///
/// Ties (equal counts) go to the pair whose left token's bytes sort first, then the right
/// token's bytes: the result depends only on the multiset of pieces, so the same corpus always
/// gives the same tokenizer, byte for byte.
struct BPETrainer {
    private(set) var wordCounts: [[UInt8]: Int] = [:]

    mutating func add(utf8 p: UnsafeBufferPointer<UInt8>) {
        BPEPreTokenizer.forEachPiece(in: p) { r in
            wordCounts[Array(p[r]), default: 0] += 1
        }
    }

    private struct Entry { var count: Int; var key: UInt64 }

    func train(vocabSize: Int, specialTokens: [String], minPairCount: Int) throws -> ByteLevelBPE {
        var seen = Set<String>()
        for s in specialTokens {
            guard s.utf8.count >= 2, s.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
                throw TokenizerError.invalidTraining(reason: "special token \"\(s)\" must be at least 2 printable ASCII characters without spaces")
            }
            guard seen.insert(s).inserted else {
                throw TokenizerError.invalidTraining(reason: "special token \"\(s)\" is listed twice")
            }
        }
        let mergesWanted = vocabSize - 256 - specialTokens.count
        guard mergesWanted >= 0 else {
            throw TokenizerError.invalidTraining(reason: "vocabSize \(vocabSize) is below 256 byte tokens + \(specialTokens.count) special tokens")
        }
        guard minPairCount >= 1 else { throw TokenizerError.invalidTraining(reason: "minPairCount must be ≥ 1, got \(minPairCount)") }

        var tokens: [[UInt8]] = BPEByteMapping.byteOrder.map { [$0] }
        var idOfByte = [UInt32](repeating: 0, count: 256)
        for (id, b) in BPEByteMapping.byteOrder.enumerated() { idOfByte[Int(b)] = UInt32(id) }

        // Words sorted by bytes so that every internal order is reproducible too.
        let sortedWords = wordCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words: [[UInt32]] = sortedWords.map { $0.key.map { idOfByte[Int($0)] } }
        let freq: [Int] = sortedWords.map(\.value)

        @inline(__always) func key(_ a: UInt32, _ b: UInt32) -> UInt64 { UInt64(a) << 32 | UInt64(b) }
        var pairCount: [UInt64: Int] = [:]
        var pairWords: [UInt64: [Int32]] = [:]
        for (w, sym) in words.enumerated() where sym.count > 1 {
            for k in 0..<(sym.count - 1) {
                let p = key(sym[k], sym[k + 1])
                pairCount[p, default: 0] += freq[w]
                pairWords[p, default: []].append(Int32(w))
            }
        }

        // Max-heap: higher count first, then byte-lexicographic order of (left, right).
        var heap: [Entry] = []
        func before(_ x: Entry, _ y: Entry) -> Bool {
            if x.count != y.count { return x.count > y.count }
            let xa = tokens[Int(x.key >> 32)], ya = tokens[Int(y.key >> 32)]
            if xa != ya { return xa.lexicographicallyPrecedes(ya) }
            return tokens[Int(x.key & 0xFFFF_FFFF)].lexicographicallyPrecedes(tokens[Int(y.key & 0xFFFF_FFFF)])
        }
        func push(_ e: Entry) {
            heap.append(e)
            var c = heap.count - 1
            while c > 0 {
                let p = (c - 1) >> 1
                if !before(heap[c], heap[p]) { break }
                heap.swapAt(p, c); c = p
            }
        }
        func pop() -> Entry? {
            guard let last = heap.popLast() else { return nil }
            guard !heap.isEmpty else { return last }
            let top = heap[0]
            heap[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1
                if l >= heap.count { break }
                var c = l
                if l + 1 < heap.count && before(heap[l + 1], heap[l]) { c = l + 1 }
                if !before(heap[c], heap[p]) { break }
                heap.swapAt(p, c); p = c
            }
            return top
        }
        for (p, c) in pairCount { push(Entry(count: c, key: p)) }

        var merges: [(UInt32, UInt32)] = []
        merges.reserveCapacity(mergesWanted)
        var stamp = [Int](repeating: -1, count: words.count)
        var changed = Set<UInt64>()
        var merged: [UInt32] = []
        while merges.count < mergesWanted {
            guard let top = pop() else { break }
            guard let current = pairCount[top.key], current == top.count else { continue }  // stale
            guard current >= minPairCount else { break }
            let a = UInt32(top.key >> 32), b = UInt32(top.key & 0xFFFF_FFFF)
            let c = UInt32(tokens.count)
            tokens.append(tokens[Int(a)] + tokens[Int(b)])
            merges.append((a, b))
            let step = merges.count
            changed.removeAll(keepingCapacity: true)
            for w32 in pairWords[top.key] ?? [] {
                let w = Int(w32)
                guard stamp[w] != step else { continue }
                stamp[w] = step
                let sym = words[w]
                let f = freq[w]
                merged.removeAll(keepingCapacity: true)
                var k = 0
                var found = false
                while k < sym.count {
                    if k + 1 < sym.count && sym[k] == a && sym[k + 1] == b {
                        merged.append(c); k += 2; found = true
                    } else {
                        merged.append(sym[k]); k += 1
                    }
                }
                guard found else { continue }  // stale index entry
                for k in 0..<(sym.count - 1) {
                    let p = key(sym[k], sym[k + 1])
                    let left = pairCount[p]! - f
                    if left == 0 { pairCount[p] = nil } else { pairCount[p] = left }
                    changed.insert(p)
                }
                if merged.count > 1 {
                    for k in 0..<(merged.count - 1) {
                        let p = key(merged[k], merged[k + 1])
                        pairCount[p, default: 0] += f
                        changed.insert(p)
                        if merged[k] == c || merged[k + 1] == c { pairWords[p, default: []].append(w32) }
                    }
                }
                words[w] = merged
            }
            pairWords[top.key] = nil
            for p in changed { if let n = pairCount[p] { push(Entry(count: n, key: p)) } }
        }
        guard merges.count == mergesWanted else {
            throw TokenizerError.invalidTraining(reason: "the corpus supports only \(256 + merges.count + specialTokens.count) tokens (no adjacent pair occurs ≥ \(minPairCount) times), \(vocabSize) requested")
        }
        let learned = Set(tokens)
        for s in specialTokens {
            let bytes = Array(s.utf8)
            guard !learned.contains(bytes) else {
                throw TokenizerError.invalidTraining(reason: "special token \"\(s)\" equals a learned token; choose text that pre-tokenizes into several pieces, like <|endoftext|>")
            }
            tokens.append(bytes)
        }
        return try ByteLevelBPE(tokens: tokens, merges: merges, source: "trained")
    }
}

extension ByteLevelBPE {
    /// Trains on in-memory texts to exactly `vocabSize` ids: 256 bytes, the learned merges, then
    /// `specialTokens` at the last ids (GPT-2 puts `<|endoftext|>` last). Throws if the corpus
    /// has too few pairs occurring at least `minPairCount` times to reach `vocabSize`.
    public static func train(corpus: [String], vocabSize: Int, specialTokens: [String] = [],
                             minPairCount: Int = 2) throws -> ByteLevelBPE {
        var trainer = BPETrainer()
        for text in corpus {
            var copy = text
            copy.withUTF8 { trainer.add(utf8: $0) }
        }
        return try trainer.train(vocabSize: vocabSize, specialTokens: specialTokens, minPairCount: minPairCount)
    }

    /// Trains on the bytes of files (any encoding; UTF-8 text gives the intended pieces).
    public static func train(files: [URL], vocabSize: Int, specialTokens: [String] = [],
                             minPairCount: Int = 2) throws -> ByteLevelBPE {
        var trainer = BPETrainer()
        for url in files {
            let bytes = try BPEFiles.read(url)
            bytes.withUnsafeBufferPointer { trainer.add(utf8: $0) }
        }
        return try trainer.train(vocabSize: vocabSize, specialTokens: specialTokens, minPairCount: minPairCount)
    }
}
