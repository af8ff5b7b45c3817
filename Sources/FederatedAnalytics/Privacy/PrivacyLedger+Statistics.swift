import DifferentialPrivacy
import Foundation

/// The statistics side of the site's privacy ledger (`DifferentialPrivacy.PrivacyLedger`, shared with model updates).
extension PrivacyLedger {
    /// Records every charge of a query atomically, or none, against the site's budget (`policy.budget()`).
    /// - Throws: `.budgetExceeded` (naming spent, asked and budget) when the site's total would pass its policy or
    ///   the query alone its `max_epsilon_per_query`; `.ledger` when the ledger cannot be read or written.
    public func charge(site: String, query: String, charges: [PrivacyCharge], policy: SitePolicy)
        throws(AnalyticsError)
    {
        let budget = try policy.budget()
        do {
            try charge(
                site: site, query: query, charges: charges, budget: budget,
                maxEpsilonPerQuery: policy.maxEpsilonPerQuery)
        } catch {
            throw AnalyticsError(
                error.code == .budgetExceeded ? .budgetExceeded : .ledger, error.message,
                cause: error.cause)
        }
    }

    /// What the site has spent (statistics and model updates), its RDP curves read at the policy's accounting δ.
    public func spent(site: String, policy: SitePolicy) throws(AnalyticsError) -> PrivacySpent {
        do { return try spent(site: site, accountingDelta: policy.accountingDelta) } catch {
            throw AnalyticsError(.ledger, "cannot read the privacy ledger: \(error.message)", cause: error.cause)
        }
    }
}

func fmt(_ v: Double) -> String { String(format: "%.4g", v) }
