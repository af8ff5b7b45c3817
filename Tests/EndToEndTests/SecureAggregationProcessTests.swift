import FederationClient
import FederationCore
import FederationGRPC
import FederationTestSupport
import Foundation
import SafeTensorsFormat
import SecureAggregation
import Synchronization
import Testing

extension ProcessFederationTests {
    /// treatment-center played by this test process (a real site agent training on its data, over gRPC + mTLS with
    /// its kit) through `InterposedConnection`; the other two sites are `tessera client` processes.
    func interposedSite(
        _ cluster: ProcessCluster, dropMaskUpload: Bool = false,
        tamper: @escaping @Sendable (inout TaskAssignment) -> Void = { _ in }
    ) throws -> (Task<[Int], any Error>, GRPCFederationConnection) {
        let site = "treatment-center"
        let connection = try cluster.site(site)
        var agent = SiteAgent(
            site: site,
            connection: InterposedConnection(connection, dropAt: dropMaskUpload ? .mask : nil, tamper: tamper),
            trainer: PipelineSiteTrainer(
                dataFolder: ProcessCluster.repository.appendingPathComponent("sample-data/\(site)").path),
            clock: ContinuousClock(), retry: RetryPolicy(base: .milliseconds(100), cap: .seconds(1)),
            log: { _ in })
        agent.secureAggregation = try SecureAggregationCredentials.load(
            site: site, certificatePath: cluster.kit(site) + "/cert.pem",
            privateKeyPath: cluster.kit(site) + "/key.pem",
            caPath: cluster.kit(site) + "/ca.pem", minimumParticipants: 2)
        return (Task { try await agent.run() }, connection)
    }

    func globalModel(_ cluster: ProcessCluster, _ admin: GRPCAdminConnection, job: String) async throws
        -> [String: [Float]]
    {
        let folder = cluster.path("download-\(job)")
        _ = try await admin.download(jobID: job, to: folder)
        let file = try SafeTensorsFile.read(contentsOf: folder + "/global.safetensors")
        return Dictionary(uniqueKeysWithValues: file.entries.map { ($0.name, $0.values) })
    }

    @Test(
        "SecAgg over processes: plain FedAvg's model within quantisation, only masked updates, a dropout recovered",
        .timeLimit(.minutes(8)))
    func secureAggregationOverProcesses() async throws {
        let cluster = try ProcessCluster()
        try await cluster.startServer()
        try cluster.startClients(once: false)
        let admin = try cluster.admin()
        let secure = "\n  secure_aggregation: {clip_range: 1.0, max_weight_samples: 1000}\n"

        // 1. Plain FedAvg, then the same round under secure aggregation: one model, up to quantisation.
        let plain = try await admin.submit(pipeline: try cluster.pipeline(rounds: 1, minClients: 3), name: "plain")
        #expect(try await cluster.events(admin, job: plain).last == .jobFinished)
        let masked = try await admin.submit(
            pipeline: try cluster.pipeline(rounds: 1, minClients: 3) + secure, name: "secagg")
        let maskedEvents = try await cluster.events(admin, job: masked)
        #expect(maskedEvents.last == .jobFinished, "\(maskedEvents.suffix(3))")
        let a = try await globalModel(cluster, admin, job: plain)
        let b = try await globalModel(cluster, admin, job: masked)
        #expect(a.keys.sorted() == b.keys.sorted())
        var worst = 0.0
        for (name, values) in a {
            for (x, y) in zip(values, b[name] ?? []) {
                worst = max(worst, Double(abs(x - y)) / (1e-3 + Double(abs(x))))
            }
        }
        #expect(worst < 1e-2, "largest relative difference \(worst)")

        // What left each site for the secure job: keys, shares, a signature, unmasking shares and one masked vector
        // per round, never a plain update.
        for site in ProcessCluster.sites {
            let log = try EgressLog(path: cluster.kit(site) + "/" + EgressLog.fileName)
            let kinds = try log.records(job: masked).map(\.kind)
            #expect(kinds.filter { $0 == .maskedUpdate }.count == 1, "\(site): \(kinds)")
            #expect(!kinds.contains(.trainUpdate), "\(site): \(kinds)")
            #expect(kinds.filter { $0 == .secureAggregation }.count == 4, "\(site): \(kinds)")
        }

        // 2. treatment-center shares its keys, then drops: the round closes with the other two, unmasked.
        cluster.killClient("treatment-center")
        let (dropping, connection) = try interposedSite(cluster, dropMaskUpload: true)
        let job = try await admin.submit(
            pipeline: try cluster.pipeline(rounds: 1, minClients: 2) + secure, name: "dropout")
        let events = try await cluster.events(admin, job: job)
        #expect(events.last == .jobFinished, "\(events.suffix(3))")
        let closed = events.compactMap { e -> [String]? in if case .roundClosed(1, let p, _) = e { p } else { nil } }
        #expect(closed == [["community-hospital", "research-center"]])
        let model = try await globalModel(cluster, admin, job: job)
        #expect(model.values.allSatisfy { $0.allSatisfy(\.isFinite) })
        dropping.cancel()
        for site in ProcessCluster.sites { cluster.killClient(site) }
        cluster.killServer()
        await connection.close()
        await admin.close()
    }

    @Test(
        "SecAgg over processes: a server substituting a key or the survivor set is refused by the site",
        .timeLimit(.minutes(6)))
    func secureAggregationRefusesATamperingServer() async throws {
        let cluster = try ProcessCluster()
        try await cluster.startServer()
        for site in ["community-hospital", "research-center"] { try cluster.startClient(site, once: false) }
        let admin = try cluster.admin()
        let pipeline =
            try cluster.pipeline(rounds: 1, minClients: 3, retries: 0)
            + "\n  secure_aggregation: {clip_range: 1.0}\n"
        let attacks: [(String, String, @Sendable (inout TaskAssignment) -> Void)] = [
            (
                "substituted key", "signature does not verify",
                { task in
                    guard case .string("share")? = task.config[SecureAggregationStage.configKey],
                        var request = try? SecAggMessage.decode(SecAggMessage.ShareRequest.self, from: task.payload),
                        let i = request.adverts.firstIndex(where: { $0.site == "research-center" })
                    else { return }
                    request.adverts[i].maskKey = Data(repeating: 0x42, count: 32)
                    task.payload = (try? SecAggMessage.encode(request)) ?? task.payload
                }
            ),
            (
                "other survivors", "this site signed",
                { task in
                    guard case .string("unmask")? = task.config[SecureAggregationStage.configKey],
                        var request = try? SecAggMessage.decode(SecAggMessage.UnmaskRequest.self, from: task.payload)
                    else { return }
                    request.survivors.removeAll { $0 == "community-hospital" }
                    task.payload = (try? SecAggMessage.encode(request)) ?? task.payload
                }
            ),
        ]
        var opened: [GRPCFederationConnection] = []
        for (name, expected, attack) in attacks {
            let (site, connection) = try interposedSite(cluster, tamper: attack)
            opened.append(connection)
            // The real server keeps a site's long-poll open for its next job: the agent stops after its job; its
            // connection is closed once the server is gone (closing waits for the open poll).
            defer { site.cancel() }
            let job = try await admin.submit(pipeline: pipeline, name: name)
            let events = try await cluster.events(admin, job: job)
            let refusal = events.compactMap { e -> String? in
                if case .siteDeclined(_, "treatment-center", let reason) = e { reason } else { nil }
            }
            #expect(refusal.contains { $0.contains(expected) }, "\(name): \(refusal)")
            guard case .jobFailed(let reason)? = events.last else {
                Issue.record("\(name): the job did not fail: \(events.suffix(3))")
                continue
            }
            #expect(reason.contains(expected), "\(name): \(reason)")
        }
        for site in ProcessCluster.sites { cluster.killClient(site) }
        cluster.killServer()
        for connection in opened { await connection.close() }
        await admin.close()
    }

    @Test(
        "SecAgg over processes: the server killed mid-round (masked uploads under way) resumes with a new session",
        .timeLimit(.minutes(6)))
    func secureAggregationSurvivesAServerRestart() async throws {
        let cluster = try ProcessCluster()
        try await cluster.startServer()
        let pipeline =
            try cluster.pipeline(rounds: 2, minClients: 3) + "\n  secure_aggregation: {clip_range: 1.0}\n"
        let (admin, job) = try await submit(cluster, pipeline)
        // Round 2's stages each start as a round: kill the server (SIGKILL) when its third stage (mask) starts.
        let stages = Mutex(0)
        let before = try await cluster.events(admin, job: job) { event in
            if case .roundStarted(1, 0, _) = event, stages.withLock({ $0 }) == 0 {
                stages.withLock { $0 = -1 }
                try cluster.startClients()
            }
            if case .roundStarted(2, _, _) = event {
                return stages.withLock { count in
                    count = max(count, 0) + 1
                    return count == 3
                }
            }
            return false
        }
        #expect(before.contains { if case .roundClosed(1, _, _) = $0 { true } else { false } })
        cluster.killServer()
        await admin.close()
        try await cluster.startServer()
        let again = try cluster.admin()
        let after = try await cluster.events(again, job: job)
        #expect(after.last == .jobFinished, "\(after.suffix(3))")
        #expect(!after.contains { if case .roundStarted(1, _, _) = $0 { true } else { false } })
        let m = try await metrics(cluster, again, job: job)
        #expect(m.rounds.map(\.round) == [1, 2])
        #expect(m.rounds.allSatisfy { Set($0.participants) == Set(ProcessCluster.sites) })
        // The sites trained round 2 once; the new session masked the update they kept (an upload may have landed
        // before the kill: its session was never unmasked).
        for site in ProcessCluster.sites {
            #expect(try await cluster.waitForClient(site) == 0, "\(cluster.logText(site))")
            let kinds = try EgressLog(path: cluster.kit(site) + "/" + EgressLog.fileName).records(job: job).map(\.kind)
            #expect((2...3).contains(kinds.filter { $0 == .maskedUpdate }.count), "\(site): \(kinds)")
        }
        await again.close()
    }
}
