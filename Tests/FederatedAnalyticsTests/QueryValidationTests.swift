import DifferentialPrivacy
import FederatedAnalytics
import Foundation
import TestSupport
import Testing

@Suite("Query and policy validation", .computeBound)
struct QueryValidationTests {
    @Test(
        "Bad queries fail with an error that names the problem",
        arguments: [
            ("features:\n  - {feature: Weight, statistics: [mean], bounds: [0, 1]}", "unknown feature 'Weight'"),
            ("features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [5, 5], bins: 3}", "must be below"),
            (
                "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 100], epsilon: -1}",
                "query.features[0].epsilon"
            ),
            ("features:\n  - {feature: PatientAge, statistics: [mean]}", "query.features[0].bounds"),
            (
                "features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 100]}",
                "query.features[0].bins"
            ),
            ("features:\n  - {feature: PatientSex, statistics: [mean]}", "categorical"),
            (
                "features:\n  - {feature: PatientAge, statistics: [quantiles], bounds: [0, 1], bins: 2, quantiles: [1.5]}",
                "(0, 1)"
            ),
            (
                "features:\n  - {feature: PatientAge, unit: voxel, statistics: [histogram], bounds: [0, 1], bins: 2}",
                "image features"
            ),
            ("features:\n  - {feature: hu-in-label:0, statistics: [mean], bounds: [0, 1]}", "1...255"),
            ("features: []", "no feature"),
            (
                "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 100]}\nprivacy: {delta: 2}",
                "delta"
            ),
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
        var query = try StatisticsQuery.parse(
            """
            name: g
            features:
              - {feature: PatientAge, statistics: [count], bounds: [0, 100], epsilon: 1.5}
            """)
        query.privacy.mechanism = .gaussian
        #expect(throws: AnalyticsError.self) { try SiteRelease(query: query, policy: openPolicy()).plan() }
    }

    @Test("A query asking a lower minimum count than the site's gets the site's")
    func minimumCountFloor() throws {
        let query = try StatisticsQuery.parse(
            """
            name: k
            features:
              - {feature: PatientAge, statistics: [count], bounds: [0, 100]}
            privacy: {minimum_count: 1}
            """)
        let r = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(
                sites: sites(
                    policy: openPolicy(minimumCount: 5), ledger: PrivacyLedger(path: nil), names: ["research-center"]))
        #expect(r.privacy["research-center"]?.minimumCount == 5)
        #expect(r.global[0].count == nil)  // 4 patients < 5
        #expect(r.global[0].suppressed == ["count"])
    }

    @Test("Data lacking what a feature needs lands in the missing bucket, never a silent zero")
    func missing() throws {
        let query = try StatisticsQuery.parse(
            """
            name: m
            features:
              - {feature: hu-in-label:7, statistics: [count, mean], bounds: [-100, 300]}
              - {feature: volume-ml:7, statistics: [mean], bounds: [0, 100]}
            privacy: {minimum_count: 1}
            """)
        let r = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil), names: ["community-hospital"]))
        #expect(r.global[0].count == nil && r.global[0].missing == 6 && r.global[0].mean == nil)
        // Segment 7 is not in the site's SEGs: its volume is a true 0 mL, not missing.
        #expect(r.global[1].count == 6 && r.global[1].mean == 0)
    }

    @Test("The shipped query and site policy parse and validate")
    func shippedFiles() throws {
        let q = try StatisticsQuery.load(path: repositoryRoot + "/pipelines/cohort-statistics.yaml")
        #expect(q.features.count >= 8)
        let p = try SitePolicy.load(path: repositoryRoot + "/pipelines/site-policy.yaml")
        #expect(p.minimumCount >= 1)
        #expect(throws: AnalyticsError.self) { try SitePolicy.load(path: "/nonexistent/policy.yaml") }
    }

    // MARK: - Limits

    static let age = "{feature: PatientAge, statistics: [mean, histogram], bounds: [0, 100], bins: 10"

    static let crafted: [(String, String)] = [
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1e300]}", "query.features[0].bounds[1]"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, .inf]}", "query.features[0].bounds[1]"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [.nan, 1]}", "query.features[0].bounds[0]"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [10, 1]}", "query.features[0].bounds"),
        ("features:\n  - {feature: PatientAge, statistics: [mean], bounds: [1, 2, 3]}", "query.features[0].bounds"),
        (
            "features:\n  - {feature: PatientAge, statistics: [variance], bounds: [-1e8, 1e8]}",
            "query.features[0].bounds"
        ),
        ("features:\n  - \(age), epsilon: 0}", "query.features[0].epsilon"),
        ("features:\n  - \(age), epsilon: .nan}", "query.features[0].epsilon"),
        ("features:\n  - \(age), epsilon: .inf}", "query.features[0].epsilon"),
        ("features:\n  - \(age), epsilon: 1e9}", "query.features[0].epsilon"),
        (
            "features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 1], bins: 1000000000}",
            "query.features[0].bins"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 1], bins: 0}",
            "query.features[0].bins"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 1], bins: -3}",
            "query.features[0].bins"
        ),
        ("features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 1], bins: many}", "bins"),
        ("features:\n  - \(age)}\n  - \(age)}", "query.features[1]"),
        (
            "features:\n  - {feature: hu-in-label:1, unit: voxel, statistics: [histogram], bounds: [0, 100], bins: 5}\n"
                + "  - {feature: hu-in-label:1, unit: voxel, statistics: [histogram], bounds: [0, 100], bins: 7}",
            "query.features[1]"
        ),
        (
            "features:\n  - {feature: PatientSex, statistics: [frequencies], categories: [F, M, F]}",
            "query.features[0].categories[2]"
        ),
        (
            "features:\n  - {feature: PatientSex, statistics: [frequencies], categories: [other]}",
            "query.features[0].categories[0]"
        ),
        (
            "features:\n  - {feature: Manufacturer, statistics: [frequencies], categories: [GE, SIEMENS, GE]}",
            "`query.features[0].categories[2]` 'GE' is listed twice (also categories[0])"
        ),
        (
            "features:\n  - {feature: Manufacturer, statistics: [frequencies], categories: [GE, ' GE']}",
            "query.features[0].categories[1]"
        ),
        (
            "features:\n  - {feature: Manufacturer, statistics: [frequencies], categories: ['']}",
            "query.features[0].categories[0]"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [quantiles], bounds: [0, 1], bins: 2, "
                + "quantiles: [0.5, 0.25, 0.5]}",
            "`query.features[0].quantiles[2]` 0.5 is listed twice (also quantiles[0])"
        ),
        (
            "features:\n  - {feature: hu-in-label:1, statistics: [mean], bounds: [0, 1]}\n"
                + "  - {feature: hu-in-label:01, statistics: [count], bounds: [0, 1]}",
            "query.features[1]"
        ),
        ("features:\n  - {feature: PatientSex, statistics: [frequencies], bounds: [0, 1]}", "query.features[0].bounds"),
        (
            "features:\n  - {feature: PatientAge, statistics: [quantiles], bounds: [0, 1], bins: 2, quantiles: [.nan]}",
            "query.features[0].quantiles[0]"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean, mean], bounds: [0, 1]}",
            "query.features[0].statistics"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1], bnds: [0, 1]}",
            "query.features[0].bnds"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\nprivcy: {delta: 0.1}",
            "query.privcy"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\nprivacy: {delta: 0}",
            "query.privacy.delta"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\nprivacy: {delta: .nan}",
            "query.privacy.delta"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\nprivacy: {minimum_count: 0}",
            "query.privacy.minimum_count"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\n"
                + "max_records_per_patient: 1000000000", "query.max_records_per_patient"
        ),
        (
            "features:\n  - {feature: PatientAge, statistics: [mean], bounds: [0, 1]}\nminimum_sites: 0",
            "query.minimum_sites"
        ),
        ("features: 3", "features"),
        (
            "features:\n  - {feature: PatientAge, statistics: [histogram], bounds: [0, 1], bins: 3, bins: 1000000000}",
            "features[0].bins"
        ),
    ]

    @Test("A crafted query is refused before anything is computed or charged, naming the key", arguments: crafted)
    func craftedQueries(body: String, key: String) {
        do {
            _ = try StatisticsQuery.parse("name: crafted\n" + body)
            Issue.record("accepted: \(body)")
        } catch {
            #expect(error.code == .invalidQuery)
            #expect(error.description.contains(key), "\(error)")
        }
    }

    @Test("Huge lists and names are refused by their limits, with short messages")
    func hugeLists() {
        func categories(_ n: Int) -> String {
            "name: big\nfeatures:\n  - {feature: Manufacturer, statistics: [frequencies], categories: ["
                + (0..<n).map { "c\($0)" }.joined(separator: ", ") + "]}"
        }
        var limits = QueryLimits()
        limits.maxQueryBytes = 64 << 20
        for (yaml, key) in [
            (categories(5000), "query.features[0].categories"),
            (
                "name: " + String(repeating: "n", count: 10_000) + "\nfeatures:\n  - {feature: Modality, "
                    + "statistics: [count]}", "query.name"
            ),
            (
                "name: f\nfeatures:\n"
                    + String(repeating: "  - {feature: Modality, statistics: [count]}\n", count: 100),
                "query.features"
            ),
        ] {
            do {
                _ = try StatisticsQuery.parse(yaml, limits: limits)
                Issue.record("accepted")
            } catch {
                #expect(error.description.contains(key), "\(error.description.prefix(300))")
                #expect(error.description.utf8.count < 1000)
            }
        }
        // A million categories: refused by the size of the text before it is parsed.
        do {
            _ = try StatisticsQuery.parse(categories(1_000_000))
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("max_query_bytes"), "\(error.description.prefix(300))")
        }
    }

    @Test("Fixed-point encoding throws instead of trapping")
    func fixedPoint() throws {
        #expect(throws: AnalyticsError.self) { try FixedPoint.encode(1e300) }
        #expect(throws: AnalyticsError.self) { try FixedPoint.encode(.nan) }
        #expect(throws: AnalyticsError.self) { try FixedPoint.encode(-.infinity) }
        #expect(FixedPoint.decode(try FixedPoint.encode(-12.5)) == -12.5)
    }

    @Test("A site refuses a query beyond its own limits before charging its ledger")
    func siteRefusesBeforeCharging() throws {
        let query = StatisticsQuery(
            name: "wide",
            features: [
                FeatureQuery(feature: "PatientAge", statistics: [.histogram], bounds: [0, 100], bins: 10_000)
            ])
        try query.validate()  // the server's default limits accept it
        let ledger = try PrivacyLedger(path: nil)
        var site = try #require(sites(policy: openPolicy(), ledger: ledger, names: ["research-center"]).first)
        site.limits.maxBins = 100
        var session = StatisticsSiteSession(site: site, noise: SeededNoiseSource(seed: 1))
        let answer = try session.respond(
            to: StatisticsRequest(
                session: "s", site: site.name,
                payload: .plan(.init(query: query))))
        guard case .plan(.refused(let refusal)) = answer.payload else {
            Issue.record("accepted")
            return
        }
        #expect(refusal.message.contains("query.features[0].bins") && refusal.message.contains("max_bins"))
        #expect(try ledger.spent(site: site.name).epsilon == 0)

        // Built in code, never checked by a server (as a tampered message would be): bounds beyond the fixed-point
        // range are refused at the site, again before any charge.
        let wide = StatisticsQuery(
            name: "wide2",
            features: [
                FeatureQuery(feature: "PatientAge", statistics: [.variance], bounds: [-1e300, 1e300], epsilon: 0.01)
            ])
        var second = StatisticsSiteSession(site: site, noise: SeededNoiseSource(seed: 1))
        let refused = try second.respond(
            to: StatisticsRequest(
                session: "t", site: site.name,
                payload: .plan(.init(query: wide))))
        guard case .plan(.refused) = refused.payload else {
            Issue.record("accepted")
            return
        }
        #expect(try ledger.spent(site: site.name).epsilon == 0)
    }

    @Test("The same image feature per patient and per voxel, in either order, gives the same figures")
    func reorderedEntries() throws {
        let perPatient = FeatureQuery(
            feature: "hu-in-label:1", statistics: [.mean, .histogram], bounds: [-100, 300],
            bins: 4)
        let perVoxel = FeatureQuery(
            feature: "hu-in-label:1", statistics: [.histogram], unit: .voxel,
            bounds: [-50, 250], bins: 15)
        let cohort = try #require(sampleCohorts["research-center"])
        let a = try LocalStatistics(
            query: StatisticsQuery(name: "a", features: [perPatient, perVoxel]), cohort: cohort
        )
        .primitives()
        let b = try LocalStatistics(
            query: StatisticsQuery(name: "b", features: [perVoxel, perPatient]), cohort: cohort
        )
        .primitives()
        #expect(a[0].histogram == b[1].histogram && a[1].histogram == b[0].histogram)
        #expect(a[1].histogram?.count == 15 && a[0].histogram?.count == 4)
    }

    @Test("limits.yaml raises query limits; unknown keys are named")
    func limitsFile() throws {
        let limits = try QueryLimits(yaml: "pipeline:\n  max_rounds: 3\nquery:\n  max_bins: 100000\n")
        #expect(limits.maxBins == 100_000 && limits.maxFeatures == QueryLimits().maxFeatures)
        #expect(throws: AnalyticsError.self) { try QueryLimits(yaml: "query:\n  max_binz: 3") }
        #expect(throws: AnalyticsError.self) { try QueryLimits(yaml: "query:\n  max_delta: 2") }
    }

    @Test("deduplicated() keeps each statistic, category and quantile level once, in first-seen order")
    func deduplicatedQuery() throws {
        let query = StatisticsQuery(
            name: "q",
            features: [
                FeatureQuery(
                    feature: "Manufacturer", statistics: [.frequencies, .count, .frequencies],
                    categories: ["GE", "SIEMENS", "GE", "Philips", "SIEMENS"]),
                FeatureQuery(
                    feature: "PatientAge", statistics: [.quantiles], bounds: [0, 100], bins: 4,
                    quantiles: [0.5, 0.1, 0.5]),
            ])
        let unique = query.deduplicated()
        #expect(unique.features[0].categories == ["GE", "SIEMENS", "Philips"])
        #expect(unique.features[0].statistics == [.frequencies, .count])
        #expect(unique.features[1].quantiles == [0.5, 0.1])
        #expect(throws: AnalyticsError.self) { try query.validate() }
        try unique.validate()
    }
}
