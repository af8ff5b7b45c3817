import DifferentialPrivacy

/// What one site releases for a query: its primitives with calibrated noise, and the charges for its ledger.
///
/// Sensitivities (add/remove one patient, who contributes at most `cap` records, `cap` = max records per patient;
/// values clipped to [L, U]):
/// - counts [with value, missing]: Δ₁ = cap (one record sits in one cell);
/// - sum of values centred on the midpoint m of [L, U]: Δ = cap · (U − L) / 2;
/// - squared deviations from a public centre inside [L, U]: Δ = cap · (U − L)²;
/// - histogram and frequencies: Δ₁ = cap; for unit voxel each patient's histogram is normalised to 1, so Δ₁ = 1.
/// The Gaussian mechanism uses the same values as L2 sensitivities (an upper bound). A feature's ε is split evenly
/// over its noisy primitives; each Gaussian primitive spends the query's δ.
public struct SiteRelease: Sendable {
    public var query: StatisticsQuery
    public var policy: SitePolicy
    /// `.none` only for testing and for exact reference comparisons (never from a site policy in production).
    public var mechanism: NoiseMechanism

    /// - Parameter mechanism: the site's own override (`.none` for exact reference comparisons); it is the only
    ///   way to turn noise off without the policy listing `none`. A query asking for `none` is held to the policy
    ///   like any other mechanism, so a query cannot switch a site's noise off.
    public init(query: StatisticsQuery, policy: SitePolicy, mechanism: NoiseMechanism? = nil) throws(AnalyticsError) {
        self.query = query
        self.policy = policy
        let wanted = mechanism ?? query.privacy.mechanism
        let siteTurnedNoiseOff = mechanism == NoiseMechanism.none
        if !siteTurnedNoiseOff && !policy.allowedMechanisms.contains(wanted) {
            throw AnalyticsError(
                .policyViolation,
                "the site does not allow the \(wanted.rawValue) mechanism (allowed: "
                    + policy.allowedMechanisms.map(\.rawValue).joined(separator: ", ") + ")")
        }
        self.mechanism = wanted
    }

    /// The minimum count in force: the larger of the site's and the query's.
    public var minimumCount: Int { max(policy.minimumCount, query.privacy.minimumCount) }

    /// The noisy primitives a feature needs, in a fixed order.
    static func primitiveNames(_ fq: FeatureQuery, feature: Feature, unit: CountingUnit) -> [String] {
        let s = Set(fq.statistics)
        if feature.isCategorical {
            return ["counts", "frequencies"].filter { $0 == "counts" || s.contains(.frequencies) }
        }
        if unit == .voxel { return ["counts", "histogram"] }
        var names = ["counts"]
        if !s.isDisjoint(with: [.sum, .mean, .variance, .stddev]) { names.append("sum") }
        if !s.isDisjoint(with: [.variance, .stddev]) { names.append("squared-deviations") }
        if !s.isDisjoint(with: [.histogram, .quantiles, .minimum, .maximum]) { names.append("histogram") }
        return names
    }

    /// Noise for each primitive of each feature, and the ledger charges they add up to.
    public func plan() throws(AnalyticsError) -> (specs: [String: [String: NoiseSpec]], charges: [PrivacyCharge]) {
        var specs: [String: [String: NoiseSpec]] = [:]
        var charges: [PrivacyCharge] = []
        for (index, fq) in query.features.enumerated() {
            let feature = try Feature(parsing: fq.feature)
            let unit = fq.unit ?? query.unit
            let key = featureKey(index, fq)
            let cap = Double(unit == .study || unit == .series ? query.maxRecordsPerPatient : 1)
            let names = Self.primitiveNames(fq, feature: feature, unit: unit)
            let epsilon = (fq.epsilon ?? policy.defaultFeatureEpsilon) / Double(names.count)
            if mechanism == .gaussian && epsilon >= 1 {
                throw AnalyticsError(
                    .invalidQuery,
                    "feature '\(fq.feature)': the Gaussian mechanism's calibration holds for "
                        + "ε < 1 per primitive, here \(fmt(epsilon)); lower epsilon or use laplace")
            }
            let b = fq.bounds ?? [0, 1]
            for name in names {
                let sensitivity: Double
                switch name {
                case "sum": sensitivity = cap * (b[1] - b[0]) / 2
                case "squared-deviations": sensitivity = cap * (b[1] - b[0]) * (b[1] - b[0])
                default: sensitivity = cap
                }
                let delta = mechanism == .gaussian ? query.privacy.delta : 0
                specs[key, default: [:]][name] = NoiseSpec(
                    mechanism: mechanism, epsilon: epsilon, delta: delta,
                    sensitivity: sensitivity)
                if mechanism != .none {
                    charges.append(PrivacyCharge(feature: fq.feature, primitive: name, epsilon: epsilon, delta: delta))
                }
            }
        }
        return (specs, charges)
    }

    /// Adds noise to the first-pass primitives (counts, sums, histograms, frequencies), or to the second pass
    /// (squared deviations) — each value is released once.
    public func noised<S: NoiseSource>(
        _ primitives: [FeaturePrimitives], specs: [String: [String: NoiseSpec]],
        secondPass: Bool, using source: inout S
    ) -> [FeaturePrimitives] {
        primitives.map { p in
            var q = p
            let s = specs[p.feature] ?? [:]
            if secondPass {
                if let v = p.squaredDeviations, let spec = s["squared-deviations"] {
                    q.squaredDeviations = spec.apply([v], using: &source)[0]
                }
                return q
            }
            if let spec = s["counts"] { q.counts = spec.apply(p.counts, using: &source) }
            if let v = p.sum, let spec = s["sum"] { q.sum = spec.apply([v], using: &source)[0] }
            if let h = p.histogram, let spec = s["histogram"] { q.histogram = spec.apply(h, using: &source) }
            if let f = p.frequencies, let spec = s["frequencies"] { q.frequencies = spec.apply(f, using: &source) }
            return q
        }
    }
}

// MARK: - Flattening for secure sums

extension Array where Element == FeaturePrimitives {
    /// All values in a fixed order (the same at every site for the same query), for masking.
    func flattened(secondPass: Bool) -> [Double] {
        var out: [Double] = []
        for p in self {
            if secondPass {
                out.append(p.squaredDeviations ?? 0)
                continue
            }
            out += p.counts
            out.append(p.sum ?? 0)
            out += p.histogram ?? []
            out += p.frequencies ?? []
        }
        return out
    }

    /// The inverse of `flattened`, using `self` as the template for shapes.
    func unflattened(_ values: [Double], secondPass: Bool) -> [FeaturePrimitives] {
        var i = 0
        func take(_ n: Int) -> [Double] {
            defer { i += n }
            return [Double](values[i..<(i + n)])
        }
        return map { p in
            var q = p
            if secondPass {
                q.squaredDeviations = p.squaredDeviations == nil ? nil : take(1)[0]
                if p.squaredDeviations == nil { i += 1 }
                return q
            }
            q.counts = take(p.counts.count)
            let s = take(1)[0]
            q.sum = p.sum == nil ? nil : s
            q.histogram = p.histogram.map { take($0.count) }
            q.frequencies = p.frequencies.map { take($0.count) }
            return q
        }
    }
}
