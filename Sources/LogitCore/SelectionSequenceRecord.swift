extension SequenceRecord {
    /// A record straight from a teacher's per-position selections (`selected[t]` predicts
    /// `tokens[t + 1]`), laid out in CSR form. Validation stays with `validate(vocabSize:policy:logprobScale:)`.
    public init(key: String, tokens: [UInt32], lossMask: [UInt8]? = nil, selected: [SelectedSet]) {
        // `candidateSet` shares the id and log-prob arrays (copy-on-write): nothing is copied twice.
        self.init(key: key, tokens: tokens, lossMask: lossMask, sets: selected.map(\.candidateSet))
    }
}
