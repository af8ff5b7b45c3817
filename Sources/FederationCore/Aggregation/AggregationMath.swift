/// Aggregation as free functions: hand-checkable, shared by every strategy.

/// Weighted average Σ wᵢ·xᵢ / Σ wᵢ of parameter sets with the same structure (FedAvg, McMahan et al. 2017).
/// - Throws: `.noResults` for no input or zero total weight, `.shapeMismatch` for differing structures.
public func weightedAverage(_ items: [(parameters: ParameterSet, weight: Double)]) throws(FederationError)
    -> ParameterSet
{
    guard let first = items.first else { throw FederationError(.noResults, "nothing to average") }
    var acc = StreamingAccumulator(structure: first.parameters)
    for (i, item) in items.enumerated() {
        try item.parameters.checkStructure(matches: first.parameters)
        for chunk in item.parameters.chunks(maxScalars: 1 << 20) {
            try acc.accept(chunk, weight: item.weight, from: "#\(i)")
        }
        try acc.commit(client: "#\(i)", weight: item.weight)
    }
    return try acc.weightedMean()
}

/// Coordinate-wise median (FedMedian; Yin et al. 2018): per value, the middle of the values of the sets that hold
/// its tensor (even counts average the two middle values).
/// - Parameters:
///   - sets: the diffs, each with `structure`'s tensors or a subset of them (a site may keep tensors to itself).
///   - structure: names and shapes of the result (the model's); nil: the first set's (every set must then match it).
/// - Returns: a set of `structure`; zeros for a tensor no set holds.
/// - Throws: `.noResults` for no set, `.shapeMismatch` for a tensor that is not in `structure` with its shape.
public func coordinateMedian(_ sets: [ParameterSet], structure: [(name: String, shape: [Int])]? = nil)
    throws(FederationError)
    -> ParameterSet
{
    try coordinateWise(sets, structure: structure) { column in
        column.sort()
        let n = column.count
        return n % 2 == 1 ? column[n / 2] : (column[n / 2 - 1] + column[n / 2]) / 2
    }
}

/// Coordinate-wise β-trimmed mean (FedTrimmedAvg; Yin et al. 2018): per value, of the n sets that hold its tensor
/// the ⌊β·n⌋ smallest and ⌊β·n⌋ largest values are dropped and the rest averaged (sum in Double).
/// - Parameters:
///   - trimFraction: β in [0, 0.5); 0 is the plain unweighted mean.
///   - structure: as for `coordinateMedian`.
/// - Throws: `.invalidConfiguration` for β outside [0, 0.5), `.noResults`, `.shapeMismatch` as `coordinateMedian`.
public func trimmedMean(_ sets: [ParameterSet], trimFraction: Double, structure: [(name: String, shape: [Int])]? = nil)
    throws(FederationError) -> ParameterSet
{
    guard trimFraction.isFinite, trimFraction >= 0, trimFraction < 0.5 else {
        throw FederationError(.invalidConfiguration, "trim fraction \(trimFraction) is not in [0, 0.5)")
    }
    return try coordinateWise(sets, structure: structure) { column in
        column.sort()
        let n = column.count
        // β < 0.5 keeps 2k < n: at least one value is averaged.
        let k = min(Int(exactly: (trimFraction * Double(n)).rounded(.down)) ?? 0, (n - 1) / 2)
        var sum = 0.0
        for v in column[k..<(n - k)] { sum += Double(v) }
        return Float(sum / Double(n - 2 * k))
    }
}

/// Krum scores (Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent"):
/// for each set i, Σ ‖Vᵢ − Vⱼ‖² over its n − f − 2 nearest other sets j (squared L2 over the tensors every set
/// holds, in Double).
/// - Parameter byzantine: f, the number of sets assumed Byzantine; needs n ≥ 2f + 3.
/// - Returns: one score per set, in `sets`' order.
/// - Throws: `.invalidConfiguration` when n < 2f + 3, `.shapeMismatch` when the sets share no tensor or a shared
///   tensor's shape differs.
public func krumScores(_ sets: [ParameterSet], byzantine f: Int) throws(FederationError) -> [Double] {
    let n = sets.count
    guard f >= 0, f <= (n - 3) / 2, n >= 3 else {
        throw FederationError(
            .invalidConfiguration, "Krum with f = \(f) Byzantine sets needs at least 2f + 3 sets, has \(n)")
    }
    let shared = try sharedTensors(sets)
    var distance = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
    for i in 0..<n {
        for j in (i + 1)..<n {
            var d = 0.0
            for name in shared {
                guard let a = sets[i][name]?.values, let b = sets[j][name]?.values else { continue }
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        for k in a.indices {
                            let x = Double(a[k]) - Double(b[k])
                            d += x * x
                        }
                    }
                }
            }
            distance[i][j] = d
            distance[j][i] = d
        }
    }
    let neighbours = n - f - 2
    return (0..<n).map { i in
        let others = (0..<n).filter { $0 != i }.map { distance[i][$0] }.sorted()
        return others.prefix(neighbours).reduce(0, +)
    }
}

/// Multi-Krum (Blanchard et al. 2017): the `selected` sets with the lowest Krum scores (ties: the earlier set),
/// averaged with equal weights per tensor over the chosen sets that hold it; `selected` = 1 is Krum.
/// - Parameters:
///   - byzantine: f; needs n ≥ 2f + 3.
///   - selected: m in 1...n − f.
///   - structure: as for `coordinateMedian`.
/// - Returns: the aggregate and the positions (in `sets`) of the chosen sets, ascending.
/// - Throws: `.invalidConfiguration` for f or m out of range, `.shapeMismatch` as `krumScores`.
public func multiKrum(
    _ sets: [ParameterSet], byzantine: Int, selected: Int, structure: [(name: String, shape: [Int])]? = nil
)
    throws(FederationError) -> (aggregate: ParameterSet, chosen: [Int])
{
    let scores = try krumScores(sets, byzantine: byzantine)
    guard selected >= 1, selected <= sets.count - byzantine else {
        throw FederationError(
            .invalidConfiguration,
            "multi-Krum selects \(selected) of \(sets.count) sets with f = \(byzantine); must be in 1..."
                + "\(sets.count - byzantine)")
    }
    let chosen = scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(selected).sorted()
    let aggregate = try coordinateWise(chosen.map { sets[$0] }, structure: structure ?? sets.first?.structure) {
        column in
        var sum = 0.0
        for v in column { sum += Double(v) }
        return Float(sum / Double(column.count))
    }
    return (aggregate, Array(chosen))
}

/// Names of the tensors every set holds, with one shape each, in the first set's order.
/// - Throws: `.shapeMismatch` when there is none or a shape differs between sets.
private func sharedTensors(_ sets: [ParameterSet]) throws(FederationError) -> [String] {
    guard let first = sets.first else { return [] }
    var names: [String] = []
    for t in first.tensors {
        var everywhere = true
        for s in sets.dropFirst() {
            guard let other = s[t.name] else {
                everywhere = false
                break
            }
            guard other.shape == t.shape else {
                throw FederationError(
                    .shapeMismatch, "tensor '\(t.name)' has shapes \(t.shape) and \(other.shape) in two updates")
            }
        }
        if everywhere { names.append(t.name) }
    }
    guard !names.isEmpty else {
        throw FederationError(.shapeMismatch, "the updates share no tensor: Krum has nothing to compare")
    }
    return names
}

/// Applies `reduce` to each value's column: the values of the sets holding its tensor (in `sets`' order, a fresh
/// copy `reduce` may reorder).
/// - Returns: a set of `structure` (the first set's when nil); zeros for a tensor no set holds.
/// - Throws: `.noResults` for no set, `.shapeMismatch` for a tensor that is not in `structure` or has another shape.
func coordinateWise(
    _ sets: [ParameterSet], structure: [(name: String, shape: [Int])]?, _ reduce: (inout [Float]) -> Float
) throws(FederationError) -> ParameterSet {
    guard let first = sets.first else { throw FederationError(.noResults, "nothing to aggregate") }
    let reference = structure ?? first.structure
    let shapes = Dictionary(reference.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
    for s in sets {
        if structure == nil { try s.checkStructure(matches: first) }
        for t in s.tensors where shapes[t.name] != t.shape {
            throw FederationError(
                .shapeMismatch, "tensor '\(t.name)' \(t.shape) is not part of the model or has another shape")
        }
    }
    var tensors: [ParameterTensor] = []
    tensors.reserveCapacity(reference.count)
    var column: [Float] = []
    column.reserveCapacity(sets.count)
    for (name, shape) in reference {
        let holders = sets.compactMap { $0[name]?.values }
        let count = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        if !holders.isEmpty {
            for i in 0..<count {
                column.removeAll(keepingCapacity: true)
                for values in holders { column.append(values[i]) }
                out[i] = reduce(&column)
            }
        }
        tensors.append(ParameterTensor(name: name, shape: shape, values: out))
    }
    return ParameterSet(tensors)
}
