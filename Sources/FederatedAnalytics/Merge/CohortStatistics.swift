import DifferentialPrivacy
import Foundation

/// One site taking part in a statistics query, with its own policy and ledger.
public struct StatisticsSite: Sendable {
    public var name: String
    public var cohort: SiteCohort
    public var policy: SitePolicy
    public var ledger: PrivacyLedger
    /// The site's own limits: every query is checked against them before the ledger is charged.
    public var limits: QueryLimits

    public init(
        name: String, cohort: SiteCohort, policy: SitePolicy, ledger: PrivacyLedger,
        limits: QueryLimits = .default
    ) {
        self.name = name
        self.cohort = cohort
        self.policy = policy
        self.ledger = ledger
        self.limits = limits
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
    /// Sites left out before masking, with the reason: refused the query (budget, policy) or did not answer.
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

/// Runs a query across sites in-process: one `StatisticsSiteSession` per site answers a `StatisticsAggregator`,
/// message by message, exactly as over the federation runtime (where each site is its own process): each site
/// checks its policy and charges its ledger, computes, noises and masks its statistics; the "server" sums the masked
/// uploads (secure sum) and derives the global figures.
public struct CohortStatistics: Sendable {
    public var query: StatisticsQuery
    /// Overrides the query's mechanism: `.none` for exact reference comparisons in tests.
    public var mechanism: NoiseMechanism?
    /// Seed for reproducible noise (tests, demos); nil draws from the system generator.
    public var seed: UInt64?
    /// Mask uploads (secure sum); off only for comparisons.
    public var secureSum = true
    /// Test hook: sites that drop out after masking in the first pass (with secure sums).
    public var dropAfterMasking: Set<String> = []

    public init(query: StatisticsQuery, mechanism: NoiseMechanism? = nil, seed: UInt64? = nil) {
        self.query = query
        self.mechanism = mechanism
        self.seed = seed
    }

    public func run(sites: [StatisticsSite]) throws(AnalyticsError) -> StatisticsResult {
        try query.validate()
        let options = StatisticsAggregator.Options(
            mechanism: mechanism, secureSum: secureSum,
            session: query.name + "/" + UUID().uuidString)
        var aggregator = try StatisticsAggregator(query: query, sites: sites.map(\.name), options: options)
        var sessions: [String: StatisticsSiteSession] = [:]
        for site in sites {
            let noise: any NoiseSource =
                seed.map { SeededNoiseSource(seed: $0, site: site.name) } ?? SystemNoiseSource()
            sessions[site.name] = StatisticsSiteSession(
                site: site, noise: noise, mechanism: mechanism, serverIsLocal: true)
        }
        var requests = try aggregator.nextRequests()
        while !requests.isEmpty {
            for request in requests {
                if secureSum && request.phase == .firstPass && dropAfterMasking.contains(request.site) {
                    try aggregator.siteDidNotAnswer(request.site, reason: "dropped out after masking (test hook)")
                    continue
                }
                guard var session = sessions[request.site] else {
                    throw AnalyticsError(.unexpectedMessage, "no site session for '\(request.site)'")
                }
                let response = try session.respond(to: request)
                sessions[request.site] = session
                try aggregator.receive(response)
            }
            requests = try aggregator.nextRequests()
        }
        return try aggregator.result()
    }
}
