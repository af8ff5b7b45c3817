import DifferentialPrivacy
import FederatedAnalytics
import FederationClient
import FederationCore
import FederationJobs
import Foundation
import Synchronization
import Testing

/// The site's gatekeeper: its training policy declines what it refuses, with the reason; its ledger (one per site,
/// shared with statistics) is charged for every DP update and refuses the round that would pass the budget.
@Suite("Site training policy and privacy ledger")
struct SitePrivacyGatekeeperTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let shipped =
        (try? String(
            contentsOfFile: root + "/pipelines/segmentation-unet2d.yaml",
            encoding: .utf8)) ?? ""

    static func pipeline(_ replacements: [(String, String)] = [], clientDP: String? = nil) -> String {
        var text = shipped
        for (old, new) in replacements {
            precondition(text.contains(old), "the shipped pipeline changed: \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        if let clientDP { text += "\n  client_dp: \(clientDP)\n" }
        return text
    }

    static func task(
        _ pipeline: String, job: String = "job-1", round: Int = 1, kind: TaskKind = .train,
        admin: String = "lead"
    ) -> TaskAssignment {
        TaskAssignment(
            jobID: job, round: round, kind: kind, site: "s",
            config: ["pipeline": .string(pipeline), "submitted_by": .string(admin), "local_epochs": .int(1)])
    }

    static func update(_ task: TaskAssignment, values: [Float] = [3, 4]) -> ModelUpdate {
        ModelUpdate(
            jobID: task.jobID, round: task.round, site: "s", sampleCount: 40,
            diff: ParameterSet([ParameterTensor(name: "w", shape: [values.count], values: values)]))
    }

    func gatekeeper(
        _ policy: String, epsilon: Double = 10, ledger: PrivacyLedger? = nil,
        now: @escaping @Sendable () -> Date = { Date(timeIntervalSince1970: 0) }
    ) throws
        -> SitePrivacyGatekeeper
    {
        SitePrivacyGatekeeper(
            site: "s", policy: try SiteTrainingPolicy.parse(policy),
            budget: try PrivacyBudget(totalEpsilon: epsilon, totalDelta: 1e-4),
            ledger: try ledger ?? PrivacyLedger(path: nil), noise: SeededNoiseSource(seed: 1),
            now: now)
    }

    func declineReason(_ body: () async throws(FederationError) -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            #expect(error.code == .declined)
            return error.message
        }
    }

    @Test("Each rule of training-policy.yaml declines the job that breaks it, naming the rule")
    func policyRules() async throws {
        let dp = "{clip_norm: 1, noise_multiplier: 1.2, noise: server}"
        let cases: [(policy: String, task: TaskAssignment, expected: String)] = [
            ("architectures: [unet3d]", Self.task(Self.pipeline()), "architectures"),
            ("max_parameters: 1000", Self.task(Self.pipeline()), "max_parameters"),
            ("max_local_epochs: 0\n", Self.task(Self.pipeline()), "must be an integer"),
            ("max_rounds: 3", Self.task(Self.pipeline()), "max_rounds"),
            (
                "allow_isolating_rounds: false",
                Self.task(Self.pipeline([("strategy: fedavg", "strategy: cyclic")])), "isolate"
            ),
            ("allow_isolating_rounds: false\nmin_participants: 3", Self.task(Self.pipeline()), "min_participants"),
            ("require_dp: true", Self.task(Self.pipeline()), "require_dp"),
            ("min_noise_multiplier: 1.5", Self.task(Self.pipeline(clientDP: dp)), "min_noise_multiplier"),
            // With the noise split between 3 sites, the site counts z/√3 = 0.69.
            (
                "min_noise_multiplier: 1.0",
                Self.task(Self.pipeline(clientDP: "{clip_norm: 1, noise_multiplier: 1.2, noise: sites}")),
                "min_noise_multiplier"
            ),
            ("allowed_submitters: [alice]", Self.task(Self.pipeline()), "allowed_submitters"),
            ("share_local_model: false", Self.task(Self.pipeline(), kind: .submitModel), "share_local_model"),
            // Client-level DP protects the diff, not the local model: the site keeps it.
            ("", Self.task(Self.pipeline(clientDP: dp), kind: .submitModel), "client-level DP"),
        ]
        for (policy, task, expected) in cases {
            let reason: String?
            do {
                let keeper = try gatekeeper(policy)
                reason = await declineReason { () async throws(FederationError) in try await keeper.admit(task) }
            } catch {
                reason = "\(error)"  // a policy file refused when read
            }
            #expect(reason?.contains(expected) == true, "\(policy): \(reason ?? "admitted")")
        }
        // A job within every rule is admitted.
        let keeper = try gatekeeper(
            """
            architectures: [unet2d]
            max_parameters: 2000000
            max_local_epochs: 2
            max_rounds: 10
            allow_isolating_rounds: false
            min_participants: 2
            require_dp: true
            min_noise_multiplier: 1.0
            allowed_submitters: [lead]
            """)
        try await keeper.admit(Self.task(Self.pipeline(clientDP: dp)))
    }

    @Test("Unknown or malformed policy keys are refused when the policy is read")
    func policyValidation() {
        for bad in [
            "max_rounds: -1", "require_dp: maybe", "unknown_key: 1", "architectures: unet2d",
            "min_noise_multiplier: .nan", "- a list",
        ] {
            #expect(throws: FederationError.self, "\(bad)") { try SiteTrainingPolicy.parse(bad) }
        }
    }

    @Test("Evaluate tasks beyond max_evaluations_per_hour are declined until the hour has passed")
    func evaluationRateLimit() async throws {
        let clock = Mutex(Date(timeIntervalSince1970: 0))
        let keeper = try gatekeeper("max_evaluations_per_hour: 2", now: { clock.withLock { $0 } })
        let evaluate = Self.task(Self.pipeline(), kind: .evaluate)
        try await keeper.admit(evaluate)
        try await keeper.admit(evaluate)
        let third = await declineReason { () async throws(FederationError) in try await keeper.admit(evaluate) }
        #expect(third?.contains("max_evaluations_per_hour") == true)
        clock.withLock { $0 = $0.addingTimeInterval(3601) }
        try await keeper.admit(evaluate)
    }

    @Test("Client DP: clipped to S, weight 1, each round charged; the round past max_epsilon_per_job is declined")
    func clientDPChargesAndDeclines() async throws {
        let ledger = try PrivacyLedger(path: nil)
        let keeper = try gatekeeper("max_epsilon_per_job: 3", epsilon: 100, ledger: ledger)
        let pipeline = Self.pipeline(clientDP: "{clip_norm: 1, noise_multiplier: 2, noise: server}")
        let perRound = try RDPAccountant.gaussian(noiseMultiplier: 2)
        var rounds = 0
        while true {
            let task = Self.task(pipeline, round: rounds + 1)
            let released: ModelUpdate
            do {
                try await keeper.admit(task)
                released = try await keeper.release(Self.update(task), task: task)
            } catch {
                #expect(error.code == .declined)
                #expect(error.message.contains("max_epsilon_per_job"), "\(error.message)")
                break
            }
            rounds += 1
            // [3, 4] has norm 5: scaled to norm 1; weight 1.
            #expect(released.diff["w"]?.values == [0.6, 0.8])
            #expect(released.sampleCount == 1)
            let expected = try RDPAccountant.epsilon(try perRound.scaled(by: rounds), delta: 1e-5).epsilon
            #expect(abs((released.metrics["dp_epsilon"] ?? 0) - expected) < 1e-9)
            #expect(rounds < 100)
        }
        // The last admitted round is the last that fits: one more would pass 3.
        let atLimit = try RDPAccountant.epsilon(try perRound.scaled(by: rounds), delta: 1e-5).epsilon
        let beyond = try RDPAccountant.epsilon(try perRound.scaled(by: rounds + 1), delta: 1e-5).epsilon
        #expect(atLimit <= 3 && beyond > 3)
        #expect(rounds >= 1)
        let spent = try ledger.spent(site: "s", accountingDelta: 1e-5)
        #expect(abs(spent.epsilon - atLimit) < 1e-9)
    }

    @Test("One ledger for statistics and training: the round that would pass the shared budget is declined")
    func ledgerSharedWithStatistics() async throws {
        let ledger = try PrivacyLedger(path: nil)
        var statistics = SitePolicy()
        statistics.totalEpsilon = 4
        statistics.maxEpsilonPerQuery = 4
        try ledger.charge(
            site: "s", query: "ages",
            charges: [
                PrivacyCharge(feature: "age", primitive: "count", epsilon: 1.5, delta: 0),
                PrivacyCharge(feature: "age", primitive: "sum", epsilon: 1.5, delta: 0),
            ], policy: statistics)
        let keeper = try gatekeeper("", epsilon: 4, ledger: ledger)
        let pipeline = Self.pipeline(clientDP: "{clip_norm: 1, noise_multiplier: 4, noise: server}")
        // ε of one release of z = 4 at δ = 1e-5 is about 1.0: it fits the remaining 1.0 only if below it.
        let one = try RDPAccountant.epsilon(try RDPAccountant.gaussian(noiseMultiplier: 4), delta: 1e-5).epsilon
        var admitted = 0
        for round in 1...5 {
            let task = Self.task(pipeline, round: round)
            do {
                try await keeper.admit(task)
                _ = try await keeper.release(Self.update(task), task: task)
                admitted += 1
            } catch {
                #expect(error.code == .declined)
                #expect(error.message.contains("budget"), "\(error.message)")
                break
            }
        }
        var curve = RDPCurve.zero
        var fits = 0
        while true {
            curve += try RDPAccountant.gaussian(noiseMultiplier: 4)
            guard try 3 + RDPAccountant.epsilon(curve, delta: 1e-5).epsilon <= 4 else { break }
            fits += 1
        }
        #expect(admitted == fits, "one release costs ε = \(one)")
        // The statistics side now sees the training charges too: a query of ε 0.9 no longer fits if rounds ran.
        let total = try ledger.spent(site: "s", accountingDelta: 1e-5).epsilon
        #expect(total > 3 || fits == 0)
        #expect(total <= 4 + 1e-12)
    }
}
