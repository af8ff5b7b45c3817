import FederationSimulation
import Testing
import Training

@Suite("Learning-quality target: federated vs local-only and centralised, per site")
struct LearningQualityTests {
    static func row(_ model: String, _ kind: ComparisonRow.Kind, _ a: Double, _ b: Double) -> ComparisonRow {
        ComparisonRow(model: model, kind: kind, scores: ["a": a, "b": b], mean: (a + b) / 2)
    }

    @Test("Hand-computed: the personalised models meet the target, the global model misses it at one site")
    func personalisedMeets() throws {
        let rows = [
            Self.row("federated (fedavg)", .federated, 0.90, 0.95),
            Self.row("personalised", .personalised, 0.93, 0.96),
            Self.row("local only: a", .localOnly, 0.92, 0.80),
            Self.row("local only: b", .localOnly, 0.85, 0.96),
            Self.row("centralised (pooled data)", .centralised, 0.95, 0.97),
        ]
        let q = try #require(LearningQuality(rows, sites: ["a", "b"]))
        #expect(q.sites.map(\.bestLocal) == [0.92, 0.96])
        #expect(q.sites.map(\.bestLocalModel) == ["local only: a", "local only: b"])
        #expect(q.sites.map(\.centralised) == [0.95, 0.97] && q.sites.map(\.personalised) == [0.93, 0.96])
        // Personalised: a 0.93 ≥ 0.92 and ≥ 0.95 − 0.02; b 0.96 ≥ 0.96 and ≥ 0.97 − 0.02. Global: a 0.90 < 0.92 and
        // < 0.93; b 0.95 < 0.96.
        #expect(q.metBy == [.personalised])
        #expect(
            q.shortfalls == [
                "federated 0.900 < 0.920 of local only: a at a",
                "federated 0.900 < centralised 0.950 − 0.020 at a",
                "federated 0.950 < 0.960 of local only: b at b",
            ])
        #expect(q.verdict.hasSuffix("met by the personalised models"))
        let table = StudyReportWriter.learningQualityTable(q).split(separator: "\n")
        #expect(table.count == 5 && table[2].hasPrefix("a ") && table[2].contains("0.920 (local only: a)"))
        #expect(table[2].hasSuffix("0.900         0.930         0.950"))
    }

    @Test(
        "Not met when the federated model is more than the tolerance below the centralised one; nil without baselines")
    func notMet() throws {
        let rows = [
            Self.row("federated", .federated, 0.94, 0.97),
            Self.row("local only: a", .localOnly, 0.93, 0.90),
            Self.row("centralised", .centralised, 0.9601, 0.97),
        ]
        let q = try #require(LearningQuality(rows, sites: ["a", "b"]))
        #expect(q.metBy.isEmpty && q.shortfalls == ["federated 0.940 < centralised 0.960 − 0.020 at a"])
        #expect(q.verdict.contains("NOT met"))
        #expect(try #require(LearningQuality(rows, sites: ["a", "b"], tolerance: 0.03)).metBy == [.federated])
        #expect(LearningQuality(Array(rows.prefix(2)), sites: ["a", "b"]) == nil)
    }
}
