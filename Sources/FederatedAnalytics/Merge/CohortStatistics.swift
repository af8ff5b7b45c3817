import Foundation

/// One site taking part in a statistics query, with its own policy and ledger.
public struct StatisticsSite: Sendable {
    public var name: String
    public var cohort: SiteCohort
    public var policy: SitePolicy
    public var ledger: PrivacyLedger

    public init(name: String, cohort: SiteCohort, policy: SitePolicy, ledger: PrivacyLedger) {
        self.name = name
        self.cohort = cohort
        self.policy = policy
        self.ledger = ledger
    }
}

/// The outcome of a query over one or more sites.
public struct StatisticsResult: Sendable, Codable {
    public struct SitePrivacy: Sendable, Codable, Equatable {
        public var epsilonSpent: Double
        public var deltaSpent: Double
        public var epsilonRemaining: Double
        public var minimumCount: Int
        public var revealed: Bool
    }

    public var query: String
    public var mechanism: NoiseMechanism
    /// Sites whose values are in the global figures.
    public var sites: [String]
    /// Sites that refused the query (budget, policy), with the reason.
    public var refused: [String: String]
    /// Sites that dropped out after masking (their masks were removed through the survivors).
    public var dropped: [String]
    /// True when the server saw only masked uploads (secure sums).
    public var secureSum: Bool
    public var global: [FeatureResult]
    /// Per-site figures, only for sites whose policy reveals them.
    public var perSite: [String: [FeatureResult]]
    public var privacy: [String: SitePrivacy]
}

/// Runs a query across sites in-process: each site computes, noises and masks its statistics; the "server" sums
/// the masked uploads (secure sum) and derives the global figures. The same steps run over the federation runtime.
public struct CohortStatistics: Sendable {
    public var query: StatisticsQuery
    /// Overrides the query's mechanism: `.none` for exact reference comparisons in tests.
    public var mechanism: NoiseMechanism?
    /// Seed for reproducible noise (tests, demos); nil draws from the system generator.
    public var seed: UInt64?
    /// Mask uploads (secure sum); off only for comparisons.
    public var secureSum = true
    /// Test hook: sites that drop out after masking in the first pass.
    public var dropAfterMasking: Set<String> = []

    public init(query: StatisticsQuery, mechanism: NoiseMechanism? = nil, seed: UInt64? = nil) {
        self.query = query
        self.mechanism = mechanism
        self.seed = seed
    }

    public func run(sites: [StatisticsSite]) throws(AnalyticsError) -> StatisticsResult {
        try query.validate()
        var refused: [String: String] = [:]
        var active: [(site: StatisticsSite, release: SiteRelease, specs: [String: [String: NoiseSpec]])] = []
        for site in sites {
            do {
                let release = try SiteRelease(query: query, policy: site.policy, mechanism: mechanism)
                let (specs, charges) = try release.plan()
                try site.ledger.charge(site: site.name, query: query.name, charges: charges, policy: site.policy)
                active.append((site, release, specs))
            } catch {
                if sites.count == 1 { throw error }
                refused[site.name] = error.message
            }
        }
        guard !active.isEmpty else {
            throw AnalyticsError(.policyViolation, "every site refused the query: "
                                 + refused.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; "))
        }
        var sources: [String: any NoiseSource] = [:]
        for (site, _, _) in active {
            if let seed {
                var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
                for b in site.name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
                sources[site.name] = SeededNoiseSource(seed: h)
            } else {
                sources[site.name] = SystemNoiseSource()
            }
        }
        // Pass 0: agree on category lists for categorical features the query does not enumerate. Only sites whose
        // policy reveals category names contribute names; the others count everything under "other".
        var categoryLists: [String: [String]] = [:]
        for (site, _, _) in active where site.policy.revealCategoryNames {
            for (key, names) in try LocalStatistics(query: query, cohort: site.cohort).categoryNames() {
                categoryLists[key] = Array(Set(categoryLists[key] ?? []).union(names)).sorted()
            }
        }
        // Pass 1.
        var firstPass: [String: [FeaturePrimitives]] = [:]
        for (site, release, specs) in active {
            let exact = try LocalStatistics(query: query, cohort: site.cohort).primitives(categoryLists: categoryLists)
            var source = sources[site.name] ?? SystemNoiseSource()
            firstPass[site.name] = release.noised(exact, specs: specs, secondPass: false, using: &source)
            sources[site.name] = source
        }
        let template = firstPass[active[0].site.name] ?? []
        var dropped: [String] = []
        let summed1 = try aggregate(firstPass, secondPass: false, template: template, session: query.name + "/1",
                                    dropped: &dropped)
        // Pass 2: squared deviations around the global means.
        var centres: [String: Double] = [:]
        for (fq, p) in zip(query.features, summed1) where !Set(fq.statistics).isDisjoint(with: [.variance, .stddev]) {
            if let s = p.sum, p.counts[0] > 0, let b = fq.bounds {
                centres[p.feature] = min(max((b[0] + b[1]) / 2 + s / p.counts[0], b[0]), b[1])
            }
        }
        var global = summed1
        var secondPass: [String: [FeaturePrimitives]] = [:]
        if !centres.isEmpty {
            for (site, release, specs) in active where !dropped.contains(site.name) {
                let exact = try LocalStatistics(query: query, cohort: site.cohort).primitives(centres: centres,
                                                                                              categoryLists: categoryLists)
                var source = sources[site.name] ?? SystemNoiseSource()
                secondPass[site.name] = release.noised(exact, specs: specs, secondPass: true, using: &source)
                sources[site.name] = source
            }
            var noDrop: [String] = []
            let summed2 = try aggregate(secondPass, secondPass: true, template: secondPass.values.first ?? template,
                                        session: query.name + "/2", dropped: &noDrop, allowDrop: false)
            for i in global.indices { global[i].squaredDeviations = summed2[i].squaredDeviations }
        }
        // Results.
        let k = active.map(\.release.minimumCount).max() ?? query.privacy.minimumCount
        var perSite: [String: [FeatureResult]] = [:]
        var privacy: [String: StatisticsResult.SitePrivacy] = [:]
        for (site, release, _) in active {
            let spent = try site.ledger.spent(site: site.name)
            privacy[site.name] = .init(epsilonSpent: spent.epsilon, deltaSpent: spent.delta,
                                       epsilonRemaining: site.policy.totalEpsilon - spent.epsilon,
                                       minimumCount: release.minimumCount, revealed: site.policy.revealPerSite)
            guard site.policy.revealPerSite, var mine = firstPass[site.name], !dropped.contains(site.name) else { continue }
            if let second = secondPass[site.name] {
                for i in mine.indices { mine[i].squaredDeviations = second[i].squaredDeviations }
                // A site's own variance is centred on the global mean: re-centre on its own mean.
                for i in mine.indices {
                    if let d = mine[i].squaredDeviations, let s = mine[i].sum, let c = centres[mine[i].feature],
                       mine[i].counts[0] > 0, let b = query.features[i].bounds {
                        let n = mine[i].counts[0], m = (b[0] + b[1]) / 2 + s / n
                        mine[i].squaredDeviations = d - n * (m - c) * (m - c)
                    }
                }
            }
            perSite[site.name] = try results(mine, minimumCount: release.minimumCount)
        }
        return StatisticsResult(
            query: query.name, mechanism: mechanism ?? query.privacy.mechanism,
            sites: active.map(\.site.name).filter { !dropped.contains($0) }, refused: refused, dropped: dropped,
            secureSum: secureSum, global: try results(global, minimumCount: k), perSite: perSite, privacy: privacy)
    }

    func results(_ primitives: [FeaturePrimitives], minimumCount: Int) throws(AnalyticsError) -> [FeatureResult] {
        var out: [FeatureResult] = []
        for (fq, p) in zip(query.features, primitives) {
            let feature = try Feature(parsing: fq.feature)
            out.append(FeatureResult(query: fq, feature: feature, unit: fq.unit ?? query.unit, primitives: p,
                                     minimumCount: minimumCount))
        }
        return out
    }

    /// Sums the sites' primitives: through pairwise masks when `secureSum`, in the clear otherwise.
    func aggregate(_ bySite: [String: [FeaturePrimitives]], secondPass: Bool, template: [FeaturePrimitives],
                   session: String, dropped: inout [String], allowDrop: Bool = true) throws(AnalyticsError) -> [FeaturePrimitives] {
        let names = bySite.keys.sorted()
        let vectors = bySite.mapValues { $0.flattened(secondPass: secondPass) }
        let length = template.flattened(secondPass: secondPass).count
        guard secureSum else {
            var total = [Double](repeating: 0, count: length)
            for v in vectors.values { for i in 0..<length { total[i] += v[i] } }
            return template.unflattened(total, secondPass: secondPass)
        }
        let participants = Dictionary(uniqueKeysWithValues: names.map { ($0, SecureSumParticipant(siteID: $0)) })
        let keys = participants.mapValues(\.publicKey)
        var uploads: [String: [UInt64]] = [:]
        for name in names {
            if allowDrop && dropAfterMasking.contains(name) { continue }
            guard let p = participants[name], let v = vectors[name] else { continue }
            uploads[name] = try p.mask(v, publicKeys: keys, session: session)
        }
        var recovery: [String: [String: [UInt64]]] = [:]
        for d in names where uploads[d] == nil {
            dropped.append(d)
            for (survivor, _) in uploads {
                guard let p = participants[survivor], let key = keys[d] else { continue }
                recovery[d, default: [:]][survivor] = try p.recoveryMask(dropped: d, droppedKey: key, session: session,
                                                                        length: length)
            }
        }
        let total = try SecureSumServer.sum(uploads: uploads, expected: Set(names), recovery: recovery)
        return template.unflattened(total, secondPass: secondPass)
    }
}
