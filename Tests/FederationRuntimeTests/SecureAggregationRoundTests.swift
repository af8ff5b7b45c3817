import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import SecureAggregation
import Synchronization
import Testing

@Suite("Secure aggregation of training updates over the in-process transport")
struct SecureAggregationRoundTests {
    let targets: [String: (target: [Float], samples: Int)] = [
        "a": ([1, 2], 1), "b": ([3, 6], 2), "c": ([-1, 10], 1),
    ]

    func job(_ id: String, rounds: Int = 1, retries: Int = 0) throws -> JobConfiguration {
        var job = JobConfiguration(
            jobID: id, rounds: rounds, sites: ["a", "b", "c"], minClients: 2, roundTimeout: .seconds(600),
            gracePeriod: .seconds(600), maxRoundRetries: retries)
        // Values up to 10, weights min(samples, 2) / 2.
        job.secureAggregation = try SecureAggregationSettings(clipRange: 16, maxWeightSamples: 2)
        return job
    }

    func agent(
        _ site: String, _ connection: any FederationConnection, _ clock: ManualClock, pki: TemporaryPKI
    ) throws -> SiteAgent<ManualClock> {
        let files = try pki.issue(site, role: "site")
        var agent = SiteAgent(
            site: site, connection: connection,
            trainer: JumpTrainer(target: targets[site]!.target, samples: targets[site]!.samples), clock: clock,
            chunkScalars: 1, log: { _ in })
        agent.secureAggregation = try SecureAggregationCredentials.load(
            site: site, certificatePath: files.certificateChain, privateKeyPath: files.privateKey,
            caPath: files.trustRoots, minimumParticipants: 2)
        return agent
    }

    /// Runs the job with one connection per site; returns the model (or the failure) and the connections.
    func run(
        _ configuration: JobConfiguration,
        connections make: (Coordinator<ManualClock>) -> [String: InterposedConnection]
    ) async throws -> (model: ParameterSet?, failure: String?, connections: [String: InterposedConnection]) {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        let clock = ManualClock()
        let coordinator = Coordinator(
            configuration: configuration, initialModel: initial, strategy: FedAvg(), clock: clock)
        let connections = make(coordinator)
        let agents = try ["a", "b", "c"].map { try agent($0, connections[$0]!, clock, pki: pki) }
        let events = await coordinator.observe()
        let watcher = Task {
            for await event in events where event.isTerminal { clock.advance(by: .seconds(100_000)) }
        }
        let running = agents.map { agent in Task { try await agent.run() } }
        let model = try? await coordinator.run()
        for task in running { _ = try? await task.value }
        await watcher.value
        return (model, await coordinator.failure, connections)
    }

    @Test("Three sites, two rounds: the unmasked mean equals FedAvg's within the quantisation bound")
    func equalsFedAvg() async throws {
        let (model, failure, connections) = try await run(try job("s1", rounds: 2)) { coordinator in
            [
                "a": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "b": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "c": InterposedConnection(InProcessConnection(coordinator: coordinator)),
            ]
        }
        #expect(failure == nil)
        // (0.5·[1,2] + 1·[3,6] + 0.5·[-1,10]) / 2 = [1.5, 6]; quantisation error ≤ 3 / (2 · ⌊(2³¹−1)/48⌋) per value.
        let w = try #require(model?["w"]?.values)
        #expect(abs(w[0] - 1.5) < 1e-5 && abs(w[1] - 6) < 1e-5, "\(w)")
        // What the server received from a: words that decode to nothing like a's weighted diff.
        let quantizer = try RingQuantizer(clipRange: 16, participants: 3)
        let received = connections["a"]!.maskedUploads.withLock { $0["a"] } ?? []
        let words = received.filter { $0.tensor == "w" }.flatMap { $0.values.map(\.bitPattern) }
        #expect(words.count == 2)
        let decoded = words.map { quantizer.decode($0) }
        #expect(abs(decoded[0] - 0.5) > 1e-3 || abs(decoded[1] - 1) > 1e-3, "\(decoded)")
    }

    @Test("A site that drops after sharing its keys: the round closes with the other two, their mean exact")
    func dropoutRecovered() async throws {
        let (model, failure, _) = try await run(try job("s2")) { coordinator in
            [
                "a": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "b": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "c": InterposedConnection(InProcessConnection(coordinator: coordinator), dropAt: .mask),
            ]
        }
        #expect(failure == nil)
        // (0.5·[1,2] + 1·[3,6]) / 1.5 = [7/3, 14/3]
        let w = try #require(model?["w"]?.values)
        #expect(abs(w[0] - 7.0 / 3) < 1e-5 && abs(w[1] - 14.0 / 3) < 1e-5, "\(w)")
    }

    @Test("A site that advertises and then leaves before sharing: the others' shares still line up, the mean is exact")
    func dropoutBeforeSharing() async throws {
        let (model, failure, _) = try await run(try job("s5")) { coordinator in
            [
                "a": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "b": InterposedConnection(InProcessConnection(coordinator: coordinator), dropAt: .share),
                "c": InterposedConnection(InProcessConnection(coordinator: coordinator)),
            ]
        }
        #expect(failure == nil, "\(failure ?? "")")
        // (0.5·[1,2] + 0.5·[-1,10]) / 1 = [0, 6]
        let w = try #require(model?["w"]?.values)
        #expect(abs(w[0]) < 1e-5 && abs(w[1] - 6) < 1e-5, "\(w)")
    }

    @Test("A server that substitutes a site's key is refused by the sites; the job fails naming the check")
    func substitutedKey() async throws {
        let forged = Curve25519KeyForTests.publicKey
        let (model, failure, _) = try await run(try job("s3")) { coordinator in
            let tamper: @Sendable (inout TaskAssignment) -> Void = { task in
                guard case .string("share")? = task.config[SecureAggregationStage.configKey],
                    var request = try? SecAggMessage.decode(SecAggMessage.ShareRequest.self, from: task.payload),
                    let i = request.adverts.firstIndex(where: { $0.site == "b" })
                else { return }
                request.adverts[i].maskKey = forged
                task.payload = (try? SecAggMessage.encode(request)) ?? task.payload
            }
            return [
                "a": InterposedConnection(InProcessConnection(coordinator: coordinator), tamper: tamper),
                "b": InterposedConnection(InProcessConnection(coordinator: coordinator)),
                "c": InterposedConnection(InProcessConnection(coordinator: coordinator), tamper: tamper),
            ]
        }
        #expect(model == nil)
        #expect(failure?.contains("signature does not verify") == true, "\(failure ?? "")")
    }

    @Test("A server that announces other survivors than the sites signed gets no shares; the job fails")
    func substitutedSurvivors() async throws {
        let (model, failure, _) = try await run(try job("s4")) { coordinator in
            let tamper: @Sendable (inout TaskAssignment) -> Void = { task in
                guard case .string("unmask")? = task.config[SecureAggregationStage.configKey],
                    var request = try? SecAggMessage.decode(SecAggMessage.UnmaskRequest.self, from: task.payload)
                else { return }
                // Claim c dropped out (to unmask c's vector from its mask key shares).
                request.survivors = request.survivors.filter { $0 != "c" }
                task.payload = (try? SecAggMessage.encode(request)) ?? task.payload
            }
            return [
                "a": InterposedConnection(InProcessConnection(coordinator: coordinator), tamper: tamper),
                "b": InterposedConnection(InProcessConnection(coordinator: coordinator), tamper: tamper),
                "c": InterposedConnection(InProcessConnection(coordinator: coordinator)),
            ]
        }
        #expect(model == nil)
        #expect(failure?.contains("this site signed") == true, "\(failure ?? "")")
    }
}

/// A valid X25519 public key no site holds.
enum Curve25519KeyForTests {
    static let publicKey: Data = {
        var bytes = [UInt8](repeating: 9, count: 32)
        bytes[31] = 0x40
        return Data(bytes)
    }()
}

/// Moves every value of the global model by the site's own step: after one round of FedAvg the global model moved by
/// the weighted mean of the steps.
struct StepTrainer: LocalTrainer {
    var step: Float
    var samples: Int
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        var weights = global
        try weights.updateValues { tensor, values throws(FederationError) in
            for i in values.indices { values[i] += step * Float(1 + (i + tensor) % 7) / 7 }
        }
        return (weights, samples, [:])
    }
}

extension SecureAggregationRoundTests {
    @Test("A model of several tensors, larger than a keystream block and a wire chunk: the mean is FedAvg's")
    func largeModel() async throws {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        let model = ParameterSet([
            ParameterTensor(name: "a", shape: [300, 1000], values: [Float](repeating: 0.25, count: 300_000)),
            ParameterTensor(name: "b", shape: [5], values: [Float](repeating: -1, count: 5)),
            ParameterTensor(name: "c", shape: [70_001], values: [Float](repeating: 0, count: 70_001)),
        ])
        let clock = ManualClock()
        var job = try job("big")
        job.secureAggregation = try SecureAggregationSettings(clipRange: 1, maxWeightSamples: 300)
        let coordinator = Coordinator(configuration: job, initialModel: model, strategy: FedAvg(), clock: clock)
        let steps: [String: (Float, Int)] = ["a": (0.01, 100), "b": (-0.02, 200), "c": (0.005, 150)]
        var agents: [SiteAgent<ManualClock>] = []
        for site in ["a", "b", "c"] {
            let files = try pki.issue(site, role: "site")
            var agent = SiteAgent(
                site: site, connection: InProcessConnection(coordinator: coordinator),
                trainer: StepTrainer(step: steps[site]!.0, samples: steps[site]!.1), clock: clock,
                chunkScalars: 1 << 17, log: { _ in })
            agent.secureAggregation = try SecureAggregationCredentials.load(
                site: site, certificatePath: files.certificateChain, privateKeyPath: files.privateKey,
                caPath: files.trustRoots, minimumParticipants: 2)
            agents.append(agent)
        }
        let events = await coordinator.observe()
        let watcher = Task { for await event in events where event.isTerminal { clock.advance(by: .seconds(100_000)) } }
        let running = agents.map { agent in Task { try await agent.run() } }
        let result = try await coordinator.run()
        for task in running { _ = try? await task.value }
        await watcher.value
        // (100·0.01 + 200·(−0.02) + 150·0.005) / 450 per unit step.
        let mean = (100 * 0.01 + 200 * -0.02 + 150 * 0.005) / 450.0
        var worst = 0.0
        for (t, tensor) in result.tensors.enumerated() {
            let start = model.tensors[t].values
            for i in tensor.values.indices {
                let expected = Double(start[i]) + mean * Double(1 + (i + t) % 7) / 7
                worst = max(worst, abs(Double(tensor.values[i]) - expected))
            }
        }
        #expect(worst < 1e-6, "largest error \(worst)")
    }
}

extension SecureAggregationRoundTests {
    @Test("A restarted site client reads its egress log: it takes no part in a second unmasking of a round")
    func revealedRoundSurvivesARestart() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secagg-egress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        let log = try EgressLog(path: folder.appendingPathComponent("a.sqlite").path)
        var declines: [String] = []
        // The same job and round twice (as a server restored from a checkpoint taken before the round closed): the
        // second time site a, a new client process on the same kit, declines; b and c close the round.
        for attempt in 0..<2 {
            let clock = ManualClock()
            let coordinator = Coordinator(
                configuration: try job("s6"), initialModel: initial, strategy: FedAvg(), clock: clock)
            let events = await coordinator.observe()
            let watcher = Task {
                var seen: [String] = []
                for await event in events {
                    if case .siteDeclined(_, let site, let reason) = event { seen.append("\(site): \(reason)") }
                    if event.isTerminal { clock.advance(by: .seconds(100_000)) }
                }
                return seen
            }
            var agents: [SiteAgent<ManualClock>] = []
            for site in ["a", "b", "c"] {
                var agent = try agent(site, InProcessConnection(coordinator: coordinator), clock, pki: pki)
                if site == "a" { agent.egressLog = log }
                agents.append(agent)
            }
            let running = agents.map { agent in Task { try await agent.run() } }
            let model = try await coordinator.run()
            for task in running { _ = try? await task.value }
            let seen = await watcher.value
            let w = try #require(model["w"]?.values)
            if attempt == 0 {
                #expect(seen.isEmpty && abs(w[0] - 1.5) < 1e-5, "\(seen) \(w)")
            } else {
                declines = seen
                // (1·[3,6] + 0.5·[-1,10]) / 1.5 without a.
                #expect(abs(w[0] - 5.0 / 3) < 1e-5 && abs(w[1] - 22.0 / 3) < 1e-5, "\(w)")
            }
        }
        #expect(declines.count == 1 && declines[0].hasPrefix("a: this site already revealed"), "\(declines)")
    }
}
