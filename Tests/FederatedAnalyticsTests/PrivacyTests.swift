import DifferentialPrivacy
import FederatedAnalytics
import Foundation
import TestSupport
import Testing

@Suite("Privacy mechanics", .computeBound)
struct PrivacyTests {
    @Test(
        "Laplace and Gaussian samples have the calibrated variance (Dwork & Roth Thm 3.6, A.1)",
        arguments: [
            NoiseSpec(mechanism: .laplace, epsilon: 0.5, delta: 0, sensitivity: 1),
            NoiseSpec(mechanism: .laplace, epsilon: 2, delta: 0, sensitivity: 40),
            NoiseSpec(mechanism: .gaussian, epsilon: 0.5, delta: 1e-6, sensitivity: 1),
            NoiseSpec(mechanism: .gaussian, epsilon: 0.9, delta: 1e-5, sensitivity: 25),
        ])
    func calibration(spec: NoiseSpec) {
        var source = SeededNoiseSource(seed: 42)
        let n = 40_000
        let samples = spec.apply([Double](repeating: 0, count: n), using: &source)
        let mean = samples.reduce(0, +) / Double(n)
        let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        let expected = spec.standardDeviation * spec.standardDeviation
        // Hand-computed: Laplace b = Δ/ε, variance 2b²; Gaussian σ = Δ√(2 ln(1.25/δ))/ε.
        if spec.mechanism == .laplace {
            #expect(abs(expected - 2 * pow(spec.sensitivity / spec.epsilon, 2)) < 1e-9 * expected)
        } else {
            #expect(
                abs(expected - pow(spec.sensitivity * (2 * log(1.25 / spec.delta)).squareRoot() / spec.epsilon, 2))
                    < 1e-9 * expected)
        }
        #expect(abs(variance / expected - 1) < 0.05, "variance \(variance) vs \(expected)")
        #expect(abs(mean) < 4 * spec.standardDeviation / Double(n).squareRoot())
    }

    @Test("Released counts carry noise of the calibrated scale over many seeded runs")
    func releasedNoise() throws {
        let query = try StatisticsQuery.parse(
            """
            name: noise
            features:
              - feature: PatientAge
                statistics: [count]
                bounds: [0, 100]
                epsilon: 1.0
            privacy: {minimum_count: 1}
            """)
        var policy = openPolicy()
        policy.totalEpsilon = 1e9
        var counts: [Double] = []
        let ledger = try PrivacyLedger(path: nil)
        for seed in 0..<300 {
            var run = CohortStatistics(query: query, seed: UInt64(seed))
            run.secureSum = false
            let r = try run.run(sites: sites(policy: policy, ledger: ledger, names: ["research-center"]))
            // Raw noisy count (before rounding): recover from the per-site primitive via the unrounded global.
            counts.append(r.global[0].count ?? 0)
        }
        let mean = counts.reduce(0, +) / Double(counts.count)
        let variance = counts.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(counts.count - 1)
        // One primitive (counts), ε = 1, Δ = 1: Laplace b = 1, variance 2 (+ 1/12 from rounding to integers).
        #expect(abs(mean - 4) < 0.4, "mean \(mean)")
        #expect(variance > 1.5 && variance < 2.8, "variance \(variance)")
        #expect(abs(try ledger.spent(site: "research-center").epsilon - 300) < 1e-9)
    }

    @Test("Every cell below the minimum count is suppressed, globally and per site")
    func suppression() throws {
        let query = try StatisticsQuery.load(
            path: repositoryRoot + "/Tests/FederatedAnalyticsTests/Golden/reference-query.yaml")
        let exact = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(minimumCount: 1), ledger: PrivacyLedger(path: nil)))
        let k = 5
        let strict = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(minimumCount: k), ledger: PrivacyLedger(path: nil)))
        var checked = 0
        func check(_ a: FeatureResult, _ b: FeatureResult) {
            if let c = a.count, c < Double(k) {
                #expect(b.count == nil)
                checked += 1
                return
            }
            if a.unit != .voxel, let h = a.histogram, let hs = b.histogram {
                for (x, y) in zip(h.counts, hs.counts) {
                    let v = x ?? 0
                    if v < Double(k) {
                        #expect(y == nil || v == 0)
                        checked += 1
                    } else {
                        #expect(y == v)
                    }
                }
            }
            for (name, v) in a.frequencies ?? [:] {
                let value = v ?? 0
                if value < Double(k) {
                    #expect((b.frequencies?[name] ?? nil) == nil)
                    checked += 1
                }
            }
        }
        for (a, b) in zip(exact.global, strict.global) { check(a, b) }
        for site in siteNames {
            for (a, b) in zip(exact.perSite[site] ?? [], strict.perSite[site] ?? []) { check(a, b) }
        }
        #expect(checked > 20)
        #expect(strict.privacy.values.allSatisfy { $0.minimumCount == k })
    }

    @Test("The ledger refuses the query that would exceed the budget, records nothing for it, and persists")
    func ledger() throws {
        let path = NSTemporaryDirectory() + "tessera-ledger-\(UUID().uuidString).sqlite"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var policy = openPolicy()
        policy.totalEpsilon = 1.0
        policy.maxEpsilonPerQuery = 1.0
        let query = try StatisticsQuery.parse(
            """
            name: budget
            features:
              - {feature: PatientAge, statistics: [mean], bounds: [0, 100], epsilon: 0.6}
            """)
        let first = try CohortStatistics(query: query, seed: 1)
            .run(sites: sites(policy: policy, ledger: PrivacyLedger(path: path), names: ["research-center"]))
        #expect(abs((first.privacy["research-center"]?.epsilonSpent ?? 0) - 0.6) < 1e-12)
        let again = try PrivacyLedger(path: path)
        do {
            _ = try CohortStatistics(query: query, seed: 2)
                .run(sites: sites(policy: policy, ledger: again, names: ["research-center"]))
            Issue.record("the second query should be refused")
        } catch {
            #expect(error.code == .budgetExceeded)
            #expect(error.message.contains("0.6"))
        }
        let reopened = try PrivacyLedger(path: path)
        #expect(abs(try reopened.spent(site: "research-center").epsilon - 0.6) < 1e-12)
        // Over several sites, the refusing site is left out and named; the others answer.
        let other = try PrivacyLedger(path: nil)
        let mixed = try CohortStatistics(query: query, seed: 3).run(sites: [
            StatisticsSite(
                name: "research-center", cohort: sampleCohorts["research-center"]!, policy: policy, ledger: reopened),
            StatisticsSite(
                name: "treatment-center", cohort: sampleCohorts["treatment-center"]!, policy: policy, ledger: other),
        ])
        #expect(mixed.sites == ["treatment-center"])
        #expect(mixed.refused["research-center"]?.contains("budget") == true)
    }

    @Test("A query above the site's per-query ε, or with a mechanism the site forbids, is refused")
    func policyLimits() throws {
        var policy = openPolicy()
        policy.maxEpsilonPerQuery = 0.5
        let query = try StatisticsQuery.parse(
            """
            name: greedy
            features:
              - {feature: PatientAge, statistics: [mean], bounds: [0, 100], epsilon: 0.8}
            """)
        let ledger = try PrivacyLedger(path: nil)
        #expect(throws: AnalyticsError.self) {
            try CohortStatistics(query: query).run(
                sites: sites(policy: policy, ledger: ledger, names: ["research-center"]))
        }
        policy.maxEpsilonPerQuery = 5
        policy.allowedMechanisms = [.laplace]
        var gaussian = query
        gaussian.privacy.mechanism = .gaussian
        do {
            _ = try CohortStatistics(query: gaussian).run(
                sites: sites(policy: policy, ledger: ledger, names: ["research-center"]))
            Issue.record("gaussian should be refused")
        } catch {
            #expect(error.code == .policyViolation)
        }
    }
}
