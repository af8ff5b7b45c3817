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

/// Coordinate-wise median (robust aggregation, Yin et al. 2018); even counts average the two middle values.
public func coordinateMedian(_ sets: [ParameterSet]) throws(FederationError) -> ParameterSet {
    guard let first = sets.first else { throw FederationError(.noResults, "nothing to aggregate") }
    for s in sets { try s.checkStructure(matches: first) }
    return ParameterSet(
        first.tensors.enumerated().map { ti, t in
            var out = [Float](repeating: 0, count: t.count)
            var column = [Float](repeating: 0, count: sets.count)
            for i in 0..<t.count {
                for (k, s) in sets.enumerated() { column[k] = s.tensors[ti].values[i] }
                column.sort()
                let n = column.count
                out[i] = n % 2 == 1 ? column[n / 2] : (column[n / 2 - 1] + column[n / 2]) / 2
            }
            return ParameterTensor(name: t.name, shape: t.shape, values: out)
        })
}
