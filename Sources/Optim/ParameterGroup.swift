import Parameters
/// A set of tensors sharing weight decay and a learning-rate multiplier.
///
/// The usual split (no weight decay on norm gains and biases, which are vectors) is
/// `ParameterGroup.decayMatricesOnly(_:weightDecay:)`. An optimizer requires every tensor of its
/// store to be in exactly one group, so a forgotten or misspelled name is an error, not a
/// silently un-trained tensor.
public struct ParameterGroup: Sendable, Equatable {
    public var name: String
    public var tensorNames: [String]
    /// Decoupled weight decay λ: p ← p·(1 − lr·λ) before the update.
    public var weightDecay: Float
    /// Multiplies the scheduled learning rate for this group.
    public var lrScale: Float

    public init(name: String, tensorNames: [String], weightDecay: Float = 0, lrScale: Float = 1) {
        self.name = name
        self.tensorNames = tensorNames
        self.weightDecay = weightDecay
        self.lrScale = lrScale
    }

    /// One group with every tensor of `store`.
    public static func all(_ store: ParameterStore, weightDecay: Float = 0) -> [ParameterGroup] {
        [ParameterGroup(name: "all", tensorNames: store.tensors.map(\.name), weightDecay: weightDecay)]
    }

    /// Rank ≥ 2 tensors (matrices, embeddings) get `weightDecay`; rank-1 tensors (biases, norm
    /// gains) get none, because decaying them toward 0 only fights the normalisation.
    /// Empty groups are omitted.
    public static func decayMatricesOnly(_ store: ParameterStore, weightDecay: Float) -> [ParameterGroup] {
        let tensors = store.tensors
        let decay = tensors.filter { $0.rank >= 2 }.map(\.name)
        let noDecay = tensors.filter { $0.rank < 2 }.map(\.name)
        var groups: [ParameterGroup] = []
        if !decay.isEmpty { groups.append(ParameterGroup(name: "decay", tensorNames: decay, weightDecay: weightDecay)) }
        if !noDecay.isEmpty { groups.append(ParameterGroup(name: "no_decay", tensorNames: noDecay, weightDecay: 0)) }
        return groups
    }

    /// Maps each tensor (by index in `tensors`) to the index of its group, checking that every
    /// tensor is covered exactly once and every listed name exists.
    static func assign(_ groups: [ParameterGroup], to tensors: [ParameterTensor],
                       maxLearningRate: Float) throws -> [Int] {
        if groups.isEmpty { throw OptimError.invalidConfig("no parameter groups given; expected at least one") }
        var indexOfName: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { indexOfName[t.name] = i }
        var groupOf = [Int](repeating: -1, count: tensors.count)
        for (g, group) in groups.enumerated() {
            if !(group.weightDecay.isFinite && group.weightDecay >= 0) {
                throw OptimError.invalidConfig("group '\(group.name)' weight decay \(group.weightDecay), expected finite and ≥ 0")
            }
            if !(group.lrScale.isFinite && group.lrScale >= 0) {
                throw OptimError.invalidConfig("group '\(group.name)' lrScale \(group.lrScale), expected finite and ≥ 0")
            }
            let decayPerStep = Double(maxLearningRate) * Double(group.lrScale) * Double(group.weightDecay)
            if decayPerStep >= 1 {
                throw OptimError.invalidConfig("group '\(group.name)': peak lr·lrScale·weightDecay = \(decayPerStep), expected < 1 (the decay factor 1 − lr·λ must stay positive)")
            }
            for name in group.tensorNames {
                guard let i = indexOfName[name] else {
                    throw OptimError.invalidConfig("group '\(group.name)' names tensor '\(name)', which is not in the parameter store")
                }
                if groupOf[i] >= 0 {
                    throw OptimError.invalidConfig("tensor '\(name)' is in both group '\(groups[groupOf[i]].name)' and group '\(group.name)'; expected exactly one")
                }
                groupOf[i] = g
            }
        }
        if let missing = groupOf.firstIndex(of: -1) {
            throw OptimError.invalidConfig("tensor '\(tensors[missing].name)' is in no parameter group; every tensor must be in exactly one")
        }
        return groupOf
    }
}
