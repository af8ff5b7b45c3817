import DifferentialPrivacy
import FederationCore
import FederationGRPC
import Foundation
import Testing

/// A site's own training policy and privacy ledger, over real processes: the policy file sits in the site's kit,
/// the declined job's reason reaches the admin, and the ε each site's ledger charged reaches `admin status`.
extension ProcessFederationTests {
    @Test(
        "A site declines a policy-breaking job (the admin sees why); a client-DP job runs, each site's ε reported",
        .timeLimit(.minutes(6)))
    func sitePolicyDeclinesAndChargesDP() async throws {
        let cluster = try ProcessCluster()
        let strict = "treatment-center"
        let policy = """
            require_dp: true
            min_noise_multiplier: 0.5
            max_epsilon_per_job: 50
            allow_isolating_rounds: false
            min_participants: 3
            allowed_submitters: [lead]
            """
        try policy.write(toFile: cluster.kit(strict) + "/training-policy.yaml", atomically: true, encoding: .utf8)
        try await cluster.startServer()
        try cluster.startClients(once: false)
        let admin = try cluster.admin()

        // 1. No DP: the strict site declines, and with min_clients 3 the job fails at once with its reason.
        let plain = try await admin.submit(pipeline: try cluster.pipeline(rounds: 2, minClients: 3), name: "plain")
        let events = try await cluster.events(admin, job: plain)
        let declines = events.compactMap { event -> String? in
            if case .siteDeclined(1, let site, let reason) = event { "\(site): \(reason)" } else { nil }
        }
        #expect(declines.count == 1)
        #expect(declines.first?.hasPrefix("\(strict): the site requires differential privacy") == true, "\(declines)")
        guard case .jobFailed(let reason)? = events.last else {
            Issue.record("the job did not fail: \(events)")
            return
        }
        #expect(reason.contains("\(strict) declined"), "\(reason)")
        let failed = try #require(try await admin.status(jobID: plain).first)
        #expect(failed.state == .failed && failed.reason.contains("require_dp"))

        // 2. Client-level DP, noise by the server: every site takes it; each charges z = 1 per round.
        let dp =
            try cluster.pipeline(rounds: 2, minClients: 3)
            + "\n  client_dp: {clip_norm: 1.0, noise_multiplier: 1.0, noise: server}\n"
        let job = try await admin.submit(pipeline: dp, name: "client-dp")
        let dpEvents = try await cluster.events(admin, job: job)
        #expect(dpEvents.last == .jobFinished, "\(dpEvents.suffix(3))")
        let status = try #require(try await admin.status(jobID: job).first)
        // Two Gaussian releases of noise multiplier 1, composed and read at the default accounting δ = 1e-5.
        let twoRounds = try RDPAccountant.gaussian(noiseMultiplier: 1).scaled(by: 2)
        let expected = try RDPAccountant.epsilon(twoRounds, delta: 1e-5).epsilon
        for site in status.siteStates {
            let spent = try #require(site.lastMetrics["dp_epsilon"], "\(site.site) reported no ε")
            #expect(abs(spent - expected) < 1e-9 * expected, "\(site.site): \(spent) vs \(expected)")
        }
        for site in ProcessCluster.sites { cluster.killClient(site) }
        await admin.close()
    }
}
