import Testing
import Training

@testable import FederationSimulation

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

@Suite("Baselines choose their epochs without the held-out patients")
struct BaselineSelectionTests {
    struct Case { var patientID: String }

    @Test("The set-aside patients are training patients, drawn by patient, deterministic, never all of them")
    func selectionSplit() {
        var configuration = TrainingConfiguration()
        configuration.validationFraction = 0.25
        // Two cases (slices, series) per patient: a patient is wholly on one side.
        let cases = (1...8).flatMap { p in [Case(patientID: "p\(p)"), Case(patientID: "p\(p)")] }
        let (fit, aside) = StudySites.selectionSplit(cases, patient: \.patientID, configuration)
        #expect(fit.count + aside.count == cases.count)
        #expect(Set(aside.map(\.patientID)).count == 2)  // 0.25 × 8 patients
        #expect(Set(fit.map(\.patientID)).isDisjoint(with: Set(aside.map(\.patientID))))
        let again = StudySites.selectionSplit(cases, patient: \.patientID, configuration)
        #expect(again.selection.map(\.patientID) == aside.map(\.patientID))
        // Not the draw that chose the held-out patients (seed + 1).
        #expect(
            Trainer.heldOutPatients(cases.map(\.patientID), configuration: configuration)
                != Set(aside.map(\.patientID)))
        // Two patients: one set aside; one: nothing to set aside (the whole budget is trained).
        #expect(
            StudySites.selectionSplit(Array(cases.prefix(4)), patient: \.patientID, configuration).selection.count == 2)
        #expect(
            StudySites.selectionSplit(Array(cases.prefix(2)), patient: \.patientID, configuration).selection.isEmpty)
    }
}
