import DifferentialPrivacy
import FederatedAnalytics
import Foundation

let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

let siteNames = ["community-hospital", "research-center", "treatment-center"]

/// Cohorts of the three sample sites, read once (decoding is the slow part).
let sampleCohorts: [String: SiteCohort] = {
    var out: [String: SiteCohort] = [:]
    for name in siteNames { out[name] = try? SiteCohort(folder: repositoryRoot + "/sample-data/" + name) }
    return out
}()

func sites(policy: SitePolicy, ledger: PrivacyLedger, names: [String] = siteNames) -> [StatisticsSite] {
    names.compactMap { name in
        sampleCohorts[name].map { StatisticsSite(name: name, cohort: $0, policy: policy, ledger: ledger) }
    }
}

func openPolicy(minimumCount: Int = 1) -> SitePolicy {
    var p = SitePolicy()
    p.minimumCount = minimumCount
    p.revealPerSite = true
    p.revealCategoryNames = true
    p.totalEpsilon = 1000
    p.maxEpsilonPerQuery = 1000
    return p
}
