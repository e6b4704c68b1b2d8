extension SequenceRecord {
    /// A record straight from a teacher's per-position selections (`selected[t]` predicts
    /// `tokens[t + 1]`), laid out in CSR form. Validation stays with `validate(vocabSize:policy:)`.
    public init(key: String, tokens: [UInt32], lossMask: [UInt8]? = nil, selected: [SelectedSet]) {
        var offsets: [UInt32] = [0]
        offsets.reserveCapacity(selected.count + 1)
        let total = selected.reduce(0) { $0 + $1.ids.count }
        var ids: [UInt32] = []
        ids.reserveCapacity(total)
        var logprobs: [Float] = []
        logprobs.reserveCapacity(total)
        for set in selected {
            ids.append(contentsOf: set.ids)
            logprobs.append(contentsOf: set.logprobs)
            offsets.append(UInt32(truncatingIfNeeded: ids.count))
        }
        self.init(key: key, tokens: tokens, lossMask: lossMask, setOffsets: offsets, ids: ids,
                  logprobs: logprobs, goldForced: selected.map(\.goldForced))
    }
}
