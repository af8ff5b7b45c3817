import FederationCore
import Testing

/// SplitMix64 (Steele et al. 2014), for seeded test vectors without a dependency on `Randomness`.
private struct Seeded {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [−1, 1).
    mutating func symmetric() -> Float { Float(Double(next() >> 11) * 0x1p-53 * 2 - 1) }
}

/// The naive references: every coordinate gathered, sorted and reduced in Double, sets given as plain arrays.
private enum Naive {
    static func median(_ rows: [[Float]]) -> [Float] {
        (0..<rows[0].count).map { i in
            let c = rows.map { Double($0[i]) }.sorted()
            return Float(c.count % 2 == 1 ? c[c.count / 2] : (c[c.count / 2 - 1] + c[c.count / 2]) / 2)
        }
    }
    static func trimmed(_ rows: [[Float]], _ beta: Double) -> [Float] {
        (0..<rows[0].count).map { i in
            let c = rows.map { Double($0[i]) }.sorted()
            let k = Int(beta * Double(c.count))
            let kept = c[k..<(c.count - k)]
            return Float(kept.reduce(0, +) / Double(kept.count))
        }
    }
    /// Krum scores straight from the definition: for each i, the n − f − 2 smallest ‖vᵢ − vⱼ‖², j ≠ i, summed.
    static func krumScores(_ rows: [[Float]], f: Int) -> [Double] {
        rows.indices.map { i in
            let d = rows.indices.filter { $0 != i }.map { j in
                zip(rows[i], rows[j]).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
            }
            return d.sorted().prefix(rows.count - f - 2).reduce(0, +)
        }
    }
}

private func vector(_ values: [Float], name: String = "w") -> ParameterSet {
    ParameterSet([ParameterTensor(name: name, shape: [values.count], values: values)])
}

/// Largest |a − b| over the values of tensor "w".
private func distance(_ a: ParameterSet, _ b: [Float]) -> Float {
    zip(a["w"]?.values ?? [], b).map { abs($0 - $1) }.max() ?? .infinity
}

/// ‖a − b‖₂ over tensor "w", in Double.
private func l2(_ a: ParameterSet, _ b: [Float]) -> Double {
    zip(a["w"]?.values ?? [], b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
}

@Suite("Robust aggregation rules: math against naive references, and one malicious site among honest ones")
struct RobustAggregationTests {
    // Five hand-checked sets: per coordinate the sorted column is written next to it.
    let rows: [[Float]] = [
        [1, 10, -2],
        [2, 20, -1],
        [3, 30, 0],
        [4, 40, 100],
        [100, -50, 1],
    ]
    // Columns sorted: [1,2,3,4,100], [-50,10,20,30,40], [-2,-1,0,1,100].

    @Test("Median of five: the middle value per coordinate (3, 20, 0); even counts average the middle two")
    func medianHandChecked() throws {
        let m = try coordinateMedian(rows.map { vector($0) })
        #expect(m["w"]?.values == [3, 20, 0])
        #expect(m["w"]?.values == Naive.median(rows))
        let even = try coordinateMedian(rows.prefix(4).map { vector($0) })
        #expect(even["w"]?.values == [2.5, 25, -0.5])
    }

    @Test("Trimmed mean, β = 0.2 of five: one value off each end, (2+3+4)/3 = 3, (10+20+30)/3 = 20, (−1+0+1)/3 = 0")
    func trimmedHandChecked() throws {
        let t = try trimmedMean(rows.map { vector($0) }, trimFraction: 0.2)
        #expect(t["w"]?.values == [3, 20, 0])
        #expect(t["w"]?.values == Naive.trimmed(rows, 0.2))
        // β = 0.1 of five trims ⌊0.5⌋ = 0: the plain mean (110/5, 50/5, 98/5).
        let none = try trimmedMean(rows.map { vector($0) }, trimFraction: 0.1)
        #expect(none["w"]?.values == [22, 10, 19.6])
        #expect(throws: FederationError.self) { try trimmedMean([vector([1])], trimFraction: 0.5) }
    }

    @Test("Krum scores against the definition, by hand for f = 1 of five")
    func krumHandChecked() throws {
        let sets = [[Float(0), 0], [1, 0], [0, 1], [1, 1], [10, 10]].map { vector($0) }
        let scores = try krumScores(sets, byzantine: 1)
        // n − f − 2 = 2 nearest: from (0,0): 1, 1 → 2; (1,0): 1, 1 → 2; (0,1): 2; (1,1): 2; (10,10): 162 + 181 = 343.
        #expect(scores == [2, 2, 2, 2, 343])
        #expect(scores == Naive.krumScores(sets.map { $0["w"]?.values ?? [] }, f: 1))
        let krum = try multiKrum(sets, byzantine: 1, selected: 1)
        #expect(krum.chosen == [0], "ties go to the earlier set")
        #expect(krum.aggregate["w"]?.values == [0, 0])
        let multi = try multiKrum(sets, byzantine: 1, selected: 4)
        #expect(multi.chosen == [0, 1, 2, 3])
        #expect(multi.aggregate["w"]?.values == [0.5, 0.5])
        #expect(throws: FederationError.self) { try krumScores(Array(sets.prefix(4)), byzantine: 1) }
        #expect(throws: FederationError.self) { try multiKrum(sets, byzantine: 1, selected: 5) }
    }

    @Test("Seeded random sets: median, trimmed mean and Krum scores equal the naive references", arguments: [1, 2, 3])
    func seededAgainstNaive(seed: UInt64) throws {
        var random = Seeded(state: seed)
        let n = 5 + Int(random.next() % 4)
        let rows = (0..<n).map { _ in (0..<17).map { _ in random.symmetric() * 10 } }
        let sets = rows.map { vector($0) }
        #expect(try coordinateMedian(sets)["w"]?.values == Naive.median(rows))
        let t = try trimmedMean(sets, trimFraction: 0.25)["w"]?.values ?? []
        for (a, b) in zip(t, Naive.trimmed(rows, 0.25)) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b))) }
        let scores = try krumScores(sets, byzantine: 1)
        for (a, b) in zip(scores, Naive.krumScores(rows, f: 1)) { #expect(abs(a - b) <= 1e-9 * max(1, b)) }
    }

    @Test("Tensors a site keeps: each rule runs over the sets that hold the tensor; zeros where none does")
    func partialSets() throws {
        let structure = [(name: "w", shape: [1]), (name: "b", shape: [1]), (name: "k", shape: [1])]
        let sets = [
            ParameterSet([ParameterTensor(name: "w", shape: [1], values: [1])]),
            ParameterSet([
                ParameterTensor(name: "w", shape: [1], values: [2]),
                ParameterTensor(name: "b", shape: [1], values: [5]),
            ]),
            ParameterSet([
                ParameterTensor(name: "w", shape: [1], values: [9]),
                ParameterTensor(name: "b", shape: [1], values: [7]),
            ]),
        ]
        let m = try coordinateMedian(sets, structure: structure)
        #expect(m.names == ["w", "b", "k"])
        #expect(m["w"]?.values == [2])
        #expect(m["b"]?.values == [6])
        #expect(m["k"]?.values == [0])
        #expect(throws: FederationError.self) {
            try coordinateMedian([vector([1, 2])], structure: [(name: "w", shape: [3])])
        }
    }

    // MARK: - One malicious site

    /// Four honest diffs within ±0.05 of `honestMean` (seeded), and one attacker's: the honest mean × `factor`.
    static func round(seed: UInt64, factor: Float) -> (sets: [ParameterSet], honestMean: [Float]) {
        var random = Seeded(state: seed)
        let center = (0..<64).map { _ in random.symmetric() }
        let honest = (0..<4).map { _ in center.map { $0 + 0.05 * random.symmetric() } }
        let mean = (0..<64).map { i in honest.reduce(0) { $0 + $1[i] } / 4 }
        let attacker = mean.map { $0 * factor }
        return (honest.map { vector($0) } + [vector(attacker)], mean)
    }

    @Test(
        "×100 or ×−10 from one site of five: FedAvg is pulled far from the honest mean; every robust rule stays near",
        arguments: [(Float(100), UInt64(11)), (-10, 12), (100, 13)])
    func oneMalicious(factor: Float, seed: UInt64) throws {
        let (sets, honest) = Self.round(seed: seed, factor: factor)
        // The attacker reports as many samples as all honest sites together: FedAvg's sample weighting helps it.
        let fedAvg = try weightedAverage(sets.enumerated().map { ($1, $0 == 4 ? 4 : 1) })
        let pulled = distance(fedAvg, honest)
        let largest = honest.map(abs).max() ?? 0
        #expect(pulled > 4 * largest, "FedAvg moved by \(pulled)")
        // Honest diffs are within ±0.05 of their centre, so each rule's output is within 0.1 of the honest mean.
        #expect(distance(try coordinateMedian(sets), honest) < 0.1)
        #expect(distance(try trimmedMean(sets, trimFraction: 0.2), honest) < 0.1)
        let krum = try multiKrum(sets, byzantine: 1, selected: 1)
        #expect(!krum.chosen.contains(4))
        #expect(distance(krum.aggregate, honest) < 0.1)
        let multi = try multiKrum(sets, byzantine: 1, selected: 3)
        #expect(!multi.chosen.contains(4))
        #expect(distance(multi.aggregate, honest) < 0.1)
        // Norm bounding at 2 × the median norm, then FedAvg: the honest diffs are left as they are, the attacker's
        // is scaled to the bound, so with half the weight its pull on the mean is at most (bound + ‖honest‖) / 2.
        let settings = RobustAggregation(normBound: .medianFactor(2))
        let norms = sets.map(\.l2Norm)
        let bound = try #require(settings.roundNormBound(norms: norms))
        var clipped = sets
        for i in clipped.indices { try clipped[i].clipL2Norm(to: bound) }
        #expect(clipped[4].l2Norm <= bound * (1 + 1e-6))
        #expect(clipped.prefix(4) == sets.prefix(4))
        let bounded = try weightedAverage(clipped.enumerated().map { ($1, $0 == 4 ? 4 : 1) })
        let honestNorm = vector(honest).l2Norm
        let limit = (bound + honestNorm) / 2 * (1 + 1e-5)
        #expect(l2(bounded, honest) <= limit)
        #expect(l2(fedAvg, honest) > 2 * limit, "FedAvg's pull \(l2(fedAvg, honest)), bounded \(limit)")
    }

    // MARK: - Settings

    @Test("Norm bounds: fixed, or a factor of the round's median norm; the scale only ever shrinks")
    func normBounds() {
        #expect(RobustAggregation(normBound: .fixed(3)).roundNormBound(norms: [1, 100]) == 3)
        #expect(RobustAggregation(normBound: .medianFactor(2)).roundNormBound(norms: [5, 1, 100]) == 10)
        #expect(RobustAggregation(normBound: .medianFactor(2)).roundNormBound(norms: [1, 3, 5, 100]) == 8)
        #expect(RobustAggregation().roundNormBound(norms: [1]) == nil)
        #expect(RobustAggregation.normScale(norm: 20, bound: 10) == 0.5)
        #expect(RobustAggregation.normScale(norm: 5, bound: 10) == 1)
        #expect(RobustAggregation.normScale(norm: 0, bound: 0) == 1)
        #expect(RobustAggregation.normScale(norm: 5, bound: nil) == 1)
    }

    @Test("Weights: min(reported, declared, max_sample_count); equal weighting and the held rules count 1")
    func weights() {
        let samples = RobustAggregation(declaredSampleCounts: ["a": 120])
        #expect(samples.weight(site: "a", reported: 1 << 62, maxSampleCount: 1_000_000) == 120)
        #expect(samples.weight(site: "a", reported: 80, maxSampleCount: 1_000_000) == 80)
        #expect(samples.weight(site: "b", reported: 1 << 62, maxSampleCount: 5000) == 5000)
        #expect(RobustAggregation(weighting: .equal).weight(site: "a", reported: 900, maxSampleCount: 10_000) == 1)
        #expect(RobustAggregation(rule: .median).weight(site: "a", reported: 900, maxSampleCount: 10_000) == 1)
    }

    @Test(
        "Validation names the key",
        arguments: [
            (RobustAggregation(rule: .median), 2, "rule"),
            (RobustAggregation(rule: .trimmedMean(trimFraction: 0.6)), 5, "trim_fraction"),
            (RobustAggregation(rule: .trimmedMean(trimFraction: 0.2)), 4, "trim_fraction"),
            (RobustAggregation(rule: .krum(byzantineSites: 2, selected: 1)), 6, "byzantine_sites"),
            (RobustAggregation(rule: .krum(byzantineSites: Int.max, selected: 1)), 6, "byzantine_sites"),
            (RobustAggregation(rule: .krum(byzantineSites: 1, selected: 5)), 5, "selected"),
            (RobustAggregation(normBound: .fixed(0)), 3, "max_norm"),
            (RobustAggregation(normBound: .fixed(.nan)), 3, "max_norm"),
            (RobustAggregation(normBound: .medianFactor(0.5)), 3, "median_norm_factor"),
            (RobustAggregation(normBound: .medianFactor(2)), 2, "median_norm_factor"),
            (RobustAggregation(declaredSampleCounts: ["z": 10]), 2, "declared_sample_counts.z"),
            (RobustAggregation(declaredSampleCounts: ["a": 0]), 2, "declared_sample_counts.a"),
            (RobustAggregation(rule: .median, declaredSampleCounts: ["a": 9]), 3, "declared_sample_counts"),
        ])
    func validation(settings: RobustAggregation, minClients: Int, key: String) {
        do {
            try settings.validate(minClients: minClients, sites: ["a", "b", "c", "d", "e", "f"])
            Issue.record("accepted \(settings)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("`federation.robust_aggregation.\(key)`"), "\(error.message)")
        }
    }

    @Test("Valid settings pass; client DP and the cyclic strategy refuse the rules that need several diffs")
    func combinations() throws {
        try RobustAggregation(rule: .krum(byzantineSites: 1, selected: 2)).validate(minClients: 5, sites: [])
        try RobustAggregation(rule: .trimmedMean(trimFraction: 0.2), normBound: .fixed(1)).validate(
            minClients: 5, sites: [])
        try RobustAggregation(normBound: .fixed(1)).validate(minClients: 1, sites: [], onePerRound: true)
        #expect(throws: FederationError.self) {
            try RobustAggregation(rule: .median).validate(minClients: 3, sites: [], onePerRound: true)
        }
        #expect(throws: FederationError.self) {
            try RobustAggregation(normBound: .fixed(1)).validate(minClients: 3, sites: [], clientDP: true)
        }
    }

    @Test("Held memory: sites × parameters × 4 bytes against the limit, overflow refused; streaming rules unlimited")
    func heldMemory() throws {
        let median = RobustAggregation(rule: .median)
        try median.checkHeldMemory(parameters: 1_000_000, sites: 16, limit: 64_000_000)
        #expect(throws: FederationError.self) {
            try median.checkHeldMemory(parameters: 1_000_001, sites: 16, limit: 64_000_000)
        }
        #expect(throws: FederationError.self) {
            try median.checkHeldMemory(parameters: Int.max, sites: 16, limit: Int.max)
        }
        try RobustAggregation(normBound: .fixed(1)).checkHeldMemory(parameters: Int.max, sites: 256, limit: 1)
        #expect(RobustAggregation.heldBytes(parameters: 10, sites: 3) == 120)
    }

    @Test("Secure aggregation hook: the rules and norm bounds that read single diffs are refused with it")
    func secureAggregationHook() throws {
        #expect(RobustAggregation(rule: .krum(byzantineSites: 1, selected: 1)).requiresIndividualUpdates)
        #expect(!RobustAggregation(normBound: .fixed(1)).requiresIndividualUpdates)
        #expect(RobustAggregation(normBound: .fixed(1)).readsIndividualUpdates)
        try RobustAggregation().checkCompatible(secureAggregation: true)
        try RobustAggregation(rule: .median).checkCompatible(secureAggregation: false)
        for settings in [RobustAggregation(rule: .median), RobustAggregation(normBound: .medianFactor(2))] {
            #expect(throws: FederationError.self) { try settings.checkCompatible(secureAggregation: true) }
        }
    }
}
