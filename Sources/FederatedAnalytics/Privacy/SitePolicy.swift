import DifferentialPrivacy
import Foundation
import Yams

/// A site's privacy policy: what it will release, whatever a query asks. Read from the site's kit
/// (`site-policy.yaml`), never from the job.
///
/// Thresholds follow NVIDIA FLARE's statistics cleansers (`min_count`, histogram bin suppression); the budget is
/// basic sequential composition (Dwork & Roth 2014, Theorem 3.16): the ε (and δ) of every released noisy
/// primitive add up, and a query that would take the total past `totalEpsilon` / `totalDelta` is refused.
public struct SitePolicy: Codable, Sendable {
    /// Smallest count the site reports for any cell (a feature's total, a histogram bin, a category); smaller
    /// ones are suppressed and reported as "< k". The query may raise it, never lower it.
    public var minimumCount: Int = 5
    /// Lifetime privacy budget of the site: total ε over all queries.
    public var totalEpsilon: Double = 10
    /// Lifetime δ budget (Gaussian mechanism).
    public var totalDelta: Double = 1e-4
    /// δ at which the Rényi-DP curves of the site's Gaussian releases (model updates with DP-SGD or client-level DP)
    /// are read as ε; part of `totalDelta` (see `PrivacyBudget`).
    public var accountingDelta: Double = PrivacyBudget.defaultAccountingDelta
    /// Largest ε one query may spend at this site.
    public var maxEpsilonPerQuery: Double = 2
    /// ε spent per feature when the query does not say.
    public var defaultFeatureEpsilon: Double = 0.5
    /// Mechanisms the site accepts.
    public var allowedMechanisms: [NoiseMechanism] = [.laplace, .gaussian]
    /// Whether the site's own (noisy) figures may appear in the report; otherwise only secure sums leave it.
    public var revealPerSite: Bool = false
    /// Whether category names not listed by the query may be revealed (their existence is itself information).
    public var revealCategoryNames: Bool = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case minimumCount = "minimum_count"
        case totalEpsilon = "total_epsilon"
        case totalDelta = "total_delta"
        case maxEpsilonPerQuery = "max_epsilon_per_query"
        case defaultFeatureEpsilon = "default_feature_epsilon"
        case allowedMechanisms = "allowed_mechanisms"
        case revealPerSite = "reveal_per_site"
        case revealCategoryNames = "reveal_category_names"
        case accountingDelta = "accounting_delta"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SitePolicy()
        minimumCount = try c.decodeIfPresent(Int.self, forKey: .minimumCount) ?? d.minimumCount
        totalEpsilon = try c.decodeIfPresent(Double.self, forKey: .totalEpsilon) ?? d.totalEpsilon
        totalDelta = try c.decodeIfPresent(Double.self, forKey: .totalDelta) ?? d.totalDelta
        accountingDelta =
            try c.decodeIfPresent(Double.self, forKey: .accountingDelta)
            ?? min(d.accountingDelta, totalDelta)
        maxEpsilonPerQuery = try c.decodeIfPresent(Double.self, forKey: .maxEpsilonPerQuery) ?? d.maxEpsilonPerQuery
        defaultFeatureEpsilon =
            try c.decodeIfPresent(Double.self, forKey: .defaultFeatureEpsilon) ?? d.defaultFeatureEpsilon
        allowedMechanisms =
            try c.decodeIfPresent([NoiseMechanism].self, forKey: .allowedMechanisms) ?? d.allowedMechanisms
        revealPerSite = try c.decodeIfPresent(Bool.self, forKey: .revealPerSite) ?? d.revealPerSite
        revealCategoryNames = try c.decodeIfPresent(Bool.self, forKey: .revealCategoryNames) ?? d.revealCategoryNames
    }

    public static func load(path: String) throws(AnalyticsError) -> SitePolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalyticsError(.io, "cannot read the site policy \(path)")
        }
        do {
            let policy = try YAMLDecoder().decode(SitePolicy.self, from: String(decoding: data, as: UTF8.self))
            try policy.validate()
            return policy
        } catch let error as AnalyticsError {
            throw error
        } catch {
            throw AnalyticsError(.invalidPolicy, "\(path): \(describe(error))")
        }
    }

    public func validate() throws(AnalyticsError) {
        guard minimumCount >= 1 else { throw AnalyticsError(.invalidPolicy, "minimum_count must be at least 1") }
        guard totalEpsilon > 0, maxEpsilonPerQuery > 0, defaultFeatureEpsilon > 0 else {
            throw AnalyticsError(
                .invalidPolicy, "total_epsilon, max_epsilon_per_query and default_feature_epsilon must be positive")
        }
        guard totalDelta >= 0, totalDelta < 1 else {
            throw AnalyticsError(.invalidPolicy, "total_delta must be in [0, 1)")
        }
        guard accountingDelta >= 0, accountingDelta <= totalDelta else {
            throw AnalyticsError(.invalidPolicy, "accounting_delta must be in [0, total_delta]")
        }
    }

    /// The site's lifetime budget, shared by statistics and model updates.
    /// - Throws: `.invalidPolicy` for values `validate` refuses.
    public func budget() throws(AnalyticsError) -> PrivacyBudget {
        do {
            return try PrivacyBudget(
                totalEpsilon: totalEpsilon, totalDelta: totalDelta,
                accountingDelta: accountingDelta)
        } catch {
            throw AnalyticsError(.invalidPolicy, error.message)
        }
    }
}
