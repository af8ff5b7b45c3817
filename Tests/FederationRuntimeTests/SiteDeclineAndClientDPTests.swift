import DifferentialPrivacy
import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// A site policy in miniature: declines every training task with a fixed reason.
private struct DecliningGatekeeper: SiteGatekeeper {
    var reason: String
    func admit(_ task: TaskAssignment) async throws(FederationError) {
        if task.kind == .train { throw FederationError(.declined, reason) }
    }
    func release(_ update: ModelUpdate, task: TaskAssignment) async throws(FederationError) -> ModelUpdate { update }
}

/// Takes every task, then declines at release: the budget check that runs after training.
private struct OverBudgetGatekeeper: SiteGatekeeper {
    func admit(_ task: TaskAssignment) async throws(FederationError) {}
    func release(_ update: ModelUpdate, task: TaskAssignment) async throws(FederationError) -> ModelUpdate {
        throw FederationError(.declined, "site c has spent ε = 7.9 of its budget ε = 8")
    }
}

@Suite("Sites declining tasks, and client-level DP at the server")
struct SiteDeclineAndClientDPTests {
    func agent(
        _ site: String, _ coordinator: Coordinator<ManualClock>, _ clock: ManualClock, target: [Float],
        samples: Int = 1, gatekeeper: (any SiteGatekeeper)? = nil
    ) -> SiteAgent<ManualClock> {
        var agent = SiteAgent(
            site: site, connection: InProcessConnection(coordinator: coordinator),
            trainer: JumpTrainer(target: target, samples: samples), clock: clock,
            log: { _ in })
        agent.gatekeeper = gatekeeper
        return agent
    }

    @Test("A declined round is recorded with the site's reason; the round closes with the others at once")
    func declineRecorded() async throws {
        for gatekeeper in [
            DecliningGatekeeper(reason: "the cyclic strategy isolates this site") as any SiteGatekeeper,
            OverBudgetGatekeeper(),
        ] {
            let clock = ManualClock()
            let job = JobConfiguration(
                jobID: "decline", rounds: 1, sites: ["a", "b", "c"], minClients: 2,
                roundTimeout: .seconds(600), gracePeriod: .seconds(600))
            let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
            let events = await coordinator.observe()
            let seen = Task {
                var declines: [String] = []
                var closed: [String] = []
                for await event in events {
                    if case .siteDeclined(_, let site, let reason) = event { declines.append("\(site): \(reason)") }
                    if case .roundClosed(_, let participants, let why) = event { closed = participants + [why] }
                }
                return (declines, closed)
            }
            async let final = coordinator.run()
            async let ra = agent("a", coordinator, clock, target: [1, 2]).run()
            async let rb = agent("b", coordinator, clock, target: [3, 6], samples: 3).run()
            async let rc = agent("c", coordinator, clock, target: [100, 100], gatekeeper: gatekeeper).run()
            let model = try await final
            let contributed = try await (ra, rb, rc)
            let (declines, closed) = await seen.value
            // No clock advance: every site answered or declined, so the grace period is not waited for.
            #expect(model["w"]?.values == [2.5, 5])
            #expect(closed == ["a", "b", RoundClosure.everySiteAnswered.rawValue])
            #expect(declines.count == 1)
            #expect(declines.first?.hasPrefix("c: ") == true)
            #expect(contributed.2.isEmpty)
        }
    }

    @Test("Declines that leave fewer than min_clients fail the job at once, naming each site and reason")
    func declinesFailTheJob() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "decline", rounds: 3, sites: ["a", "b"], minClients: 2,
            roundTimeout: .seconds(600))
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        async let ra = agent("a", coordinator, clock, target: [1, 2]).run()
        async let rb = agent(
            "b", coordinator, clock, target: [3, 6],
            gatekeeper: DecliningGatekeeper(reason: "architectures: unet3d only")
        ).run()
        await #expect(throws: FederationError.self) { try await coordinator.run() }
        let reason = await coordinator.failure ?? ""
        #expect(reason.contains("b declined: architectures: unet3d only"), "\(reason)")
        #expect(reason.contains("round 1"))
        _ = try await (ra, rb)
    }

    @Test("Client DP, server noise: equal weights, the seeded noise on the mean, an unclipped result refused")
    func serverNoise() async throws {
        let clock = ManualClock()
        var job = JobConfiguration(
            jobID: "cdp", rounds: 1, sites: ["a", "b", "r"], minClients: 2,
            roundTimeout: .seconds(60), gracePeriod: .seconds(5))
        job.clientDP = ClientDPSettings(clipNorm: 1, noiseMultiplier: 0.5, noise: .server)
        let coordinator = Coordinator(
            configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock,
            noise: SeededNoiseSource(seed: 42))
        let events = await coordinator.observe()
        let rejected = Task {
            var reasons: [String] = []
            for await event in events {
                if case .resultRejected(_, "r", let reason) = event { reasons.append(reason) }
                if case .gracePeriodStarted = event { clock.advance(by: .seconds(5)) }
                // The refused site waits to ask again on the manual clock: wake it to find the job over.
                if event.isTerminal { clock.advance(by: .seconds(3600)) }
            }
            return reasons
        }
        async let final = coordinator.run()
        // Norms 0.5 and 1.0: within clip_norm 1. Sample counts 1 and 3 do not count under client DP.
        async let ra = agent("a", coordinator, clock, target: [0.3, 0.4]).run()
        async let rb = agent("b", coordinator, clock, target: [0.6, 0.8], samples: 3).run()
        // Norm 2: refused, the round closes with a and b at the deadline.
        async let rr = agent("r", coordinator, clock, target: [1.2, 1.6]).run()
        // The rogue's refusal leaves two results: the grace period closes the round (the observer advances it).
        let model = try await final
        _ = try await (ra, rb, rr)
        var reference = SeededNoiseSource(seed: 42)
        let sigma = 0.5 * 1 / 2.0
        let expected = [0.45, 0.6].map { $0 + Calibration.gaussian(sigma: sigma, using: &reference) }
        let values = model["w"]?.values ?? []
        #expect(values.count == 2)
        for (v, e) in zip(values, expected) { #expect(abs(Double(v) - e) < 1e-6) }
        #expect(await rejected.value.contains { $0.contains("client_dp.clip_norm") })
    }
}
