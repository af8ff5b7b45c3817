import DifferentialPrivacy
import FederatedAnalytics
import Foundation
import TestSupport
import Testing

/// With noise off and k = 1, every figure equals the exact value computed independently with pydicom + numpy by
/// scripts/reference/cohort_golden.py (provenance inside Golden/cohort_golden.json), globally (through secure
/// sums) and per site.
@Suite("Cohort statistics: exact values against the pydicom reference", .computeBound)
struct ExactValueTests {
    struct Golden: Decodable {
        struct Histogram: Decodable {
            var edges: [Double]
            var counts: [Double?]
        }
        struct Feature: Decodable {
            var count: Double?
            var missing: Double?
            var sum: Double?
            var mean: Double?
            var variance: Double?
            var stddev: Double?
            var min: Double?
            var max: Double?
            var histogram: Histogram?
            var quantiles: [String: Double]?
            var frequencies: [String: Double?]?
        }
        var global: [Feature]
        var sites: [String: [Feature]]
    }

    /// `scale`: what one unit of a secure sum's error becomes in the figure (1, or a quantile's bin width).
    func close(
        _ a: Double?, _ b: Double?, _ what: String, scale: Double = 1,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        switch (a, b) {
        case (nil, nil): return
        case (let x?, let y?):
            // Secure sums carry values in 2⁻²⁰ fixed point: absolute error up to about 2e-6 per site. A quantile is
            // interpolated inside a histogram bin from such sums, so its error is that fraction of the bin's width.
            #expect(
                abs(x - y) <= 1e-5 * max(scale, 1) + 1e-9 * abs(y), "\(what): \(x) vs \(y)",
                sourceLocation: sourceLocation)
        default:
            Issue.record(
                "\(what): \(String(describing: a)) vs \(String(describing: b))", sourceLocation: sourceLocation)
        }
    }

    func compare(_ r: FeatureResult, _ g: Golden.Feature, _ label: String) {
        close(r.count, g.count, "\(label) count")
        close(r.missing, g.missing, "\(label) missing")
        close(r.sum, g.sum, "\(label) sum")
        close(r.mean, g.mean, "\(label) mean")
        close(r.variance, g.variance, "\(label) variance")
        close(r.stddev, g.stddev, "\(label) stddev")
        close(r.min, g.min, "\(label) min")
        close(r.max, g.max, "\(label) max")
        #expect((r.histogram == nil) == (g.histogram == nil), "\(label) histogram presence")
        if let h = r.histogram, let gh = g.histogram {
            #expect(h.edges.count == gh.edges.count)
            for (a, b) in zip(h.counts, gh.counts) { close(a, b, "\(label) histogram cell") }
        }
        #expect(Set((r.quantiles ?? [:]).keys) == Set((g.quantiles ?? [:]).keys), "\(label) quantile levels")
        let binWidth = g.histogram.map { h in
            h.edges.count > 1 ? ((h.edges.last ?? 0) - (h.edges.first ?? 0)) / Double(h.edges.count - 1) : 1
        }
        for (level, v) in g.quantiles ?? [:] {
            close(r.quantiles?[level], v, "\(label) quantile \(level)", scale: binWidth ?? 1)
        }
        #expect(Set((r.frequencies ?? [:]).keys) == Set((g.frequencies ?? [:]).keys), "\(label) categories")
        for (name, v) in g.frequencies ?? [:] { close(r.frequencies?[name] ?? nil, v, "\(label) category \(name)") }
    }

    @Test("Global (secure sums) and per-site figures equal the reference")
    func exact() throws {
        let golden = try JSONDecoder().decode(
            Golden.self,
            from: try Data(
                contentsOf: URL(
                    fileURLWithPath:
                        repositoryRoot + "/Tests/FederatedAnalyticsTests/Golden/cohort_golden.json")))
        let query = try StatisticsQuery.load(
            path: repositoryRoot + "/Tests/FederatedAnalyticsTests/Golden/reference-query.yaml")
        let ledger = try PrivacyLedger(path: nil)
        let run = CohortStatistics(query: query, mechanism: NoiseMechanism.none, seed: 1)
        let result = try run.run(sites: sites(policy: openPolicy(), ledger: ledger))
        #expect(result.secureSum)
        #expect(result.sites == siteNames)
        #expect(result.global.count == golden.global.count)
        for (i, (r, g)) in zip(result.global, golden.global).enumerated() { compare(r, g, "global \(i) \(r.feature)") }
        for site in siteNames {
            for (i, (r, g)) in zip(result.perSite[site] ?? [], golden.sites[site] ?? []).enumerated() {
                compare(r, g, "\(site) \(i) \(r.feature)")
            }
        }
        // Noise off spends nothing.
        #expect(try ledger.spent(site: "research-center").epsilon == 0)
    }
}
