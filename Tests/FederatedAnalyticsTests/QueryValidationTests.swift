import FederatedAnalytics
import Foundation
import Testing

@Suite("Query and policy validation")
struct QueryValidationTests {
    @Test("Bad queries fail with an error that names the problem", arguments: [
        ("features:\n  - {feature: Weight, statistics: [mean], bounds: [0, 1]}", "unknown feature 'Weight'"),
        ("features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [5, 5], bins: 3}", "must be below"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 100], epsilon: -1}", "epsilon must be a positive"),
        ("features:\n  - {feature: PatientAge, statistics: [mean]}", "needs bounds"),
        ("features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 100]}", "need bins"),
        ("features:\n  - {feature: PatientSex, statistics: [mean]}", "categorical"),
        ("features:\n  - {feature: PatientAge, statistics: [quantiles], bounds: [0, 1], bins: 2, quantiles: [1.5]}", "(0, 1)"),
        ("features:\n  - {feature: PatientAge, unit: voxel, statistics: [histogram], bounds: [0, 1], bins: 2}", "image features"),
        ("features:\n  - {feature: hu-in-label:0, statistics: [mean], bounds: [0, 1]}", "1...255"),
        ("features: []", "no feature"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 100]}\nprivacy: {delta: 2}", "delta"),
        ("features:\n  - {feature: PatientAge, statistics: [average], bounds: [0, 100]}", "statistics"),
    ])
    func badQueries(body: String, words: String) {
        do {
            _ = try StatisticsQuery.parse("name: bad\n" + body)
            Issue.record("accepted: \(body)")
        } catch {
            #expect(error.code == .invalidQuery)
            #expect(error.description.contains(words), "\(error)")
        }
    }

    @Test("The Gaussian mechanism is refused where its calibration does not hold (ε ≥ 1 per primitive)")
    func gaussianEpsilon() throws {
        var query = try StatisticsQuery.parse("""
            name: g
            features:
              - {feature: PatientAge, statistics: [count], bounds: [0, 100], epsilon: 1.5}
            """)
        query.privacy.mechanism = .gaussian
        #expect(throws: AnalyticsError.self) { try SiteRelease(query: query, policy: openPolicy()).plan() }
    }

    @Test("A query asking a lower minimum count than the site's gets the site's")
    func minimumCountFloor() throws {
        let query = try StatisticsQuery.parse("""
            name: k
            features:
              - {feature: PatientAge, statistics: [count], bounds: [0, 100]}
            privacy: {minimum_count: 1}
            """)
        let r = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(minimumCount: 5), ledger: PrivacyLedger(path: nil), names: ["research-center"]))
        #expect(r.privacy["research-center"]?.minimumCount == 5)
        #expect(r.global[0].count == nil)  // 4 patients < 5
        #expect(r.global[0].suppressed == ["count"])
    }

    @Test("Data lacking what a feature needs lands in the missing bucket, never a silent zero")
    func missing() throws {
        let query = try StatisticsQuery.parse("""
            name: m
            features:
              - {feature: hu-in-label:7, statistics: [count, mean], bounds: [-100, 300]}
              - {feature: volume-ml:7, statistics: [mean], bounds: [0, 100]}
            privacy: {minimum_count: 1}
            """)
        let r = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil), names: ["research-center"]))
        #expect(r.global[0].count == nil && r.global[0].missing == 4 && r.global[0].mean == nil)
        // Segment 7 is not in the SEG: its volume is a true 0 mL, not missing.
        #expect(r.global[1].count == 4 && r.global[1].mean == 0)
    }

    @Test("The shipped query and site policy parse and validate")
    func shippedFiles() throws {
        let q = try StatisticsQuery.load(path: repositoryRoot + "/pipelines/cohort-statistics.yaml")
        #expect(q.features.count >= 8)
        let p = try SitePolicy.load(path: repositoryRoot + "/pipelines/site-policy.yaml")
        #expect(p.minimumCount >= 1)
        #expect(throws: AnalyticsError.self) { try SitePolicy.load(path: "/nonexistent/policy.yaml") }
    }
}
