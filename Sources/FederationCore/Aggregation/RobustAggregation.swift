/// How the server combines a round's weight diffs into the one diff the strategy applies (pipeline section
/// `federation.robust_aggregation`): the rule, an optional bound on each diff's L2 norm, and how results are weighted.
/// The default (`rule: .mean`, no norm bound, `.samples`) is plain FedAvg's sample-weighted mean.
///
/// What each setting costs the server:
/// - `rule: .mean` without a norm bound: results are summed as they stream in (`StreamingAccumulator`): one model of
///   sums, never N models.
/// - `rule: .mean` with a norm bound: each result streams into the site's spill file (`ResultSpill`, disk) while its
///   norm is computed from the values received; at the round's close every committed result is read back once and
///   added, scaled to the bound. Memory stays one model of sums plus the chunk in flight; disk holds one model per
///   site that answered.
/// - `rule: .median`, `.trimmedMean`, `.krum`: every site's diff is held in memory until the round closes
///   (`requiresIndividualUpdates`): sites × parameters × 4 bytes, refused when a job is built if that exceeds the
///   limit `max_held_update_bytes` (`checkHeldMemory`). There is no spill to disk for these rules.
///
/// Nothing a site declares about its own diff is trusted: norms are computed by the server from the values it
/// received.
public struct RobustAggregation: Sendable, Equatable {
    /// How the round's (norm-bounded) diffs become one.
    public enum Rule: Sendable, Equatable {
        /// Σ wᵢΔᵢ / Σ wᵢ per tensor over the sites that sent it (FedAvg, McMahan et al. 2017).
        case mean
        /// Coordinate-wise median (FedMedian; Yin et al. 2018): per value, the middle of the sites' values (the
        /// average of the two middle ones for an even count). Unweighted.
        case median
        /// Coordinate-wise β-trimmed mean (FedTrimmedAvg; Yin et al. 2018): per value, drop the ⌊β·n⌋ smallest and
        /// ⌊β·n⌋ largest of the n sites' values and average the rest. Unweighted. β in (0, 0.5).
        case trimmedMean(trimFraction: Double)
        /// Krum / multi-Krum (Blanchard et al. 2017): each diff is scored by the sum of its squared L2 distances to
        /// its n − f − 2 nearest other diffs; the `selected` (m) diffs with the lowest scores are averaged with
        /// equal weights (m = 1: Krum). Needs n ≥ 2f + 3 results and m ≤ n − f.
        case krum(byzantineSites: Int, selected: Int)
    }

    /// A bound on the L2 norm of each site's diff (over every tensor it sent, in weight units): a diff above it is
    /// scaled down to it (direction kept), a diff below it is left as it is.
    public enum NormBound: Sendable, Equatable {
        /// The same bound every round (`max_norm`, > 0).
        case fixed(Double)
        /// `factor` × the median of the norms of the round's results (`median_norm_factor`, ≥ 1): follows the
        /// norms as training converges; a minority of sites cannot move the median far.
        case medianFactor(Double)
    }

    /// A result's weight in the `mean` rule.
    public enum Weighting: String, Sendable, Equatable, CaseIterable {
        /// min(reported sample count, the site's declared sample count if any, `max_sample_count`).
        case samples
        /// Every result counts once.
        case equal
    }

    public var rule: Rule
    public var normBound: NormBound?
    public var weighting: Weighting
    /// The sample count the study lead declares for a site (its dataset size, e.g. from the data-sharing agreement):
    /// a site's weight never exceeds it, whatever it reports. Sites not listed are capped by `max_sample_count` only.
    public var declaredSampleCounts: [String: Int]

    public init(
        rule: Rule = .mean, normBound: NormBound? = nil, weighting: Weighting = .samples,
        declaredSampleCounts: [String: Int] = [:]
    ) {
        self.rule = rule
        self.normBound = normBound
        self.weighting = weighting
        self.declaredSampleCounts = declaredSampleCounts
    }

    /// Pipeline name of a rule (`federation.robust_aggregation.rule`).
    public var ruleName: String {
        switch rule {
        case .mean: "mean"
        case .median: "median"
        case .trimmedMean: "trimmed_mean"
        case .krum: "krum"
        }
    }

    /// Pipeline key of the norm bound (`max_norm` or `median_norm_factor`; `max_norm` without one).
    public var normBoundKey: String {
        if case .medianFactor = normBound { return "median_norm_factor" }
        return "max_norm"
    }

    /// True when the rule needs every site's diff at once (median, trimmed mean, Krum): the server holds them all
    /// until the round closes. Such rules are unavailable under secure aggregation, which hides single diffs.
    public var requiresIndividualUpdates: Bool { rule != .mean }

    /// True when the server must read each site's diff in the clear: the rules that hold them, and norm bounding
    /// (the server computes each diff's norm). Plain FedAvg only needs the sum.
    public var readsIndividualUpdates: Bool { requiresIndividualUpdates || normBound != nil }

    /// The hook for secure aggregation (`federation.secure_aggregation`): with it the server only learns the sum of
    /// the diffs, so neither the robust rules nor server-side norm bounding can run.
    /// - Throws: `.invalidConfiguration` naming the key that needs single diffs, when `enabled` and they are needed.
    public func checkCompatible(secureAggregation enabled: Bool) throws(FederationError) {
        guard enabled, readsIndividualUpdates else { return }
        let key = requiresIndividualUpdates ? "rule: \(ruleName)" : normBoundKey
        throw FederationError(
            .invalidConfiguration,
            "`federation.robust_aggregation` (\(key)) needs each site's diff in the clear, which "
                + "`federation.secure_aggregation` hides from the server: choose one of them")
    }

    /// A result's weight: 1 under `.equal` weighting (and for the rules that weigh every update once), else
    /// min(reported, declared for the site, maxSampleCount), at least 1 for a positive report.
    /// - Parameters:
    ///   - reported: the sample count in the result's header (≥ 1: the intake refuses less).
    ///   - maxSampleCount: the job's `max_sample_count`.
    public func weight(site: String, reported: Int, maxSampleCount: Int) -> Double {
        guard weighting == .samples, !requiresIndividualUpdates else { return 1 }
        let declared = declaredSampleCounts[site] ?? Int.max
        return Double(max(1, min(reported, declared, maxSampleCount)))
    }

    // MARK: - Validation

    /// Default of `max_held_update_bytes`: what the rules that hold every diff may hold (4 GiB).
    public static let defaultMaxHeldUpdateBytes = 4 << 30

    /// Bytes the rules that hold every diff need: sites × parameters × 4 (float32); nil on overflow.
    public static func heldBytes(parameters: Int, sites: Int) -> Int? {
        let (a, o1) = parameters.multipliedReportingOverflow(by: sites)
        let (b, o2) = a.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        return o1 || o2 || parameters < 0 || sites < 0 ? nil : b
    }

    /// Refuses a rule that would hold more than `limit` bytes of diffs (nothing to check for rules that stream).
    /// - Throws: `.invalidConfiguration` naming `federation.robust_aggregation.rule`, the size and the limit.
    public func checkHeldMemory(parameters: Int, sites: Int, limit: Int) throws(FederationError) {
        guard requiresIndividualUpdates else { return }
        let bytes = Self.heldBytes(parameters: parameters, sites: sites)
        guard let bytes, bytes <= limit else {
            throw FederationError(
                .invalidConfiguration,
                "`federation.robust_aggregation.rule` \(ruleName) holds every site's diff until the round "
                    + "closes: \(sites) sites × \(parameters) parameters × 4 bytes = "
                    + "\(bytes.map { "\($0 >> 20) MiB" } ?? "more than 8 EiB"), more than \(limit >> 20) MiB "
                    + "(limit max_held_update_bytes); use rule mean with a norm bound, fewer sites or a smaller "
                    + "model, or raise the limit")
        }
    }

    /// Checks the settings against each other and the job: rule parameters in their domains, enough results per
    /// round for the rule to mean anything (`minClients`), declared sample counts for listed sites only.
    /// - Parameters:
    ///   - minClients: results a round closes with at least (`federation.min_clients`).
    ///   - sites: the job's sites; empty: not known yet (declared counts are checked later).
    ///   - clientDP: whether `federation.client_dp` is on (its noise is calibrated to the mean of clipped diffs:
    ///     another rule or bound changes its sensitivity, so none is allowed with it).
    ///   - onePerRound: whether the strategy asks one site per round (`cyclic`): no rule over several diffs then.
    /// - Throws: `.invalidConfiguration` naming the key under `federation.robust_aggregation`.
    public func validate(minClients: Int, sites: [String], clientDP: Bool = false, onePerRound: Bool = false)
        throws(FederationError)
    {
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(.invalidConfiguration, "`federation.robust_aggregation.\(key)` \(message)")
        }
        if clientDP, readsIndividualUpdates {
            throw fail(
                requiresIndividualUpdates ? "rule" : normBoundKey,
                "cannot be combined with `federation.client_dp`, which already clips every diff and calibrates "
                    + "its noise to their mean")
        }
        if onePerRound, requiresIndividualUpdates {
            throw fail("rule", "\(ruleName) needs several diffs per round; the cyclic strategy sends one")
        }
        switch rule {
        case .mean: break
        case .median:
            guard minClients >= 3 else {
                throw fail(
                    "rule",
                    "median needs federation.min_clients ≥ 3 (is \(minClients)): with 2 results the median is "
                        + "their mean")
            }
        case .trimmedMean(let beta):
            guard beta.isFinite, beta > 0, beta < 0.5 else {
                throw fail("trim_fraction", "is \(beta): must be in (0, 0.5)")
            }
            guard (beta * Double(minClients)).rounded(.down) >= 1 else {
                throw fail(
                    "trim_fraction",
                    "\(beta) × federation.min_clients \(minClients) < 1: a round of \(minClients) results "
                        + "would trim nothing; raise trim_fraction or min_clients")
            }
        case .krum(let f, let m):
            guard f >= 0 else { throw fail("byzantine_sites", "is \(f): must be ≥ 0") }
            // Checked arithmetic: f comes from a pipeline.
            let (twice, o1) = f.multipliedReportingOverflow(by: 2)
            let (needed, o2) = twice.addingReportingOverflow(3)
            guard !o1, !o2, minClients >= needed else {
                throw fail(
                    "byzantine_sites",
                    "is \(f): Krum needs federation.min_clients ≥ 2f + 3 results per round "
                        + "(min_clients is \(minClients))")
            }
            guard m >= 1, m <= minClients - f else {
                throw fail(
                    "selected",
                    "is \(m): must be in 1...\(minClients - f) (min_clients − byzantine_sites: more would "
                        + "always include a Byzantine diff)")
            }
        }
        switch normBound {
        case nil: break
        case .fixed(let bound):
            guard bound.isFinite, bound > 0 else { throw fail("max_norm", "is \(bound): must be > 0 and finite") }
        case .medianFactor(let factor):
            guard factor.isFinite, factor >= 1 else {
                throw fail("median_norm_factor", "is \(factor): must be ≥ 1 and finite")
            }
            guard minClients >= 3 else {
                throw fail(
                    "median_norm_factor",
                    "needs federation.min_clients ≥ 3 (is \(minClients)): with 2 results one site moves the median")
            }
        }
        for (site, count) in declaredSampleCounts.sorted(by: { $0.key < $1.key }) {
            guard count >= 1 else {
                throw fail("declared_sample_counts.\(site)", "is \(count): must be ≥ 1")
            }
            guard sites.isEmpty || sites.contains(site) else {
                throw fail("declared_sample_counts.\(site)", "names a site that is not in federation.sites")
            }
        }
        if !declaredSampleCounts.isEmpty, weighting == .equal || requiresIndividualUpdates {
            throw fail(
                "declared_sample_counts",
                "applies to rule mean with weighting samples only (\(ruleName), \(weighting.rawValue) weigh "
                    + "every result once)")
        }
    }

    // MARK: - Norm bounds

    /// The bound for a round whose results have L2 norms `norms` (weight units); nil without a norm bound.
    public func roundNormBound(norms: [Double]) -> Double? {
        switch normBound {
        case nil: return nil
        case .fixed(let bound): return bound
        case .medianFactor(let factor):
            let sorted = norms.sorted()
            guard !sorted.isEmpty else { return nil }
            let n = sorted.count
            let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
            return factor * median
        }
    }

    /// What a diff of L2 norm `norm` is multiplied by under `bound`: bound / norm above it, 1 otherwise.
    public static func normScale(norm: Double, bound: Double?) -> Float {
        guard let bound, norm > bound, norm > 0 else { return 1 }
        return Float(bound / norm)
    }
}
