import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// Four honest sites whose targets lie within ±0.05 of a seeded centre, and what the attacker sends.
private struct Round {
    static let size = 8
    let honest: [[Float]]
    let honestMean: [Float]

    init(seed: UInt64) {
        var state = seed
        func next() -> Float {
            // SplitMix64 (Steele et al. 2014), uniform in [−1, 1).
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(Double(z >> 11) * 0x1p-53 * 2 - 1)
        }
        let center = (0..<Self.size).map { _ in next() }
        var sites: [[Float]] = []
        for _ in 0..<4 { sites.append(center.map { $0 + 0.05 * next() }) }
        honest = sites
        honestMean = (0..<Self.size).map { i in sites.reduce(0) { $0 + $1[i] } / 4 }
    }
}

private let zeros = ParameterSet([
    ParameterTensor(name: "w", shape: [Round.size], values: [Float](repeating: 0, count: Round.size))
])

/// Largest |model − target| over tensor "w".
private func distance(_ model: ParameterSet, _ target: [Float]) -> Float {
    zip(model["w"]?.values ?? [], target).map { abs($0 - $1) }.max() ?? .infinity
}

@Suite("Robust aggregation through the Coordinator: one malicious site among four honest ones")
struct RobustAggregationCoordinatorTests {
    static let sites = ["h1", "h2", "h3", "h4", "m"]

    /// One round with every site answering (the round closes at once); the attacker sends the honest mean ×
    /// `factor` and claims `attackerSamples` (honest sites: 10 each). Returns the model and the round's record.
    func run(_ aggregation: RobustAggregation, factor: Float, attackerSamples: Int = 1000, seed: UInt64 = 7)
        async throws -> (model: ParameterSet, record: RoundRecord?, honest: [Float])
    {
        let round = Round(seed: seed)
        let clock = ManualClock()
        var job = JobConfiguration(
            jobID: "robust", rounds: 1, sites: Self.sites, minClients: 5, roundTimeout: .seconds(60),
            gracePeriod: .seconds(5))
        job.robustAggregation = aggregation
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let watcher = Task {
            // Wake agents that wait on the manual clock once the job is over.
            for await event in events where event.isTerminal { clock.advance(by: .seconds(3600)) }
        }
        func agent(_ site: String, _ target: [Float], samples: Int) -> SiteAgent<ManualClock> {
            SiteAgent(
                site: site, connection: InProcessConnection(coordinator: coordinator),
                trainer: JumpTrainer(target: target, samples: samples), clock: clock, chunkScalars: 3,
                log: { _ in })
        }
        async let final = coordinator.run()
        async let r1 = agent("h1", round.honest[0], samples: 10).run()
        async let r2 = agent("h2", round.honest[1], samples: 10).run()
        async let r3 = agent("h3", round.honest[2], samples: 10).run()
        async let r4 = agent("h4", round.honest[3], samples: 10).run()
        async let rm = agent("m", round.honestMean.map { $0 * factor }, samples: attackerSamples).run()
        let model = try await final
        _ = try await (r1, r2, r3, r4, rm)
        await watcher.value
        return (model, await coordinator.records.first, round.honestMean)
    }

    @Test("Plain FedAvg: the attacker's ×100 diff and 1000 claimed samples carry the global model far away")
    func fedAvgIsPulled() async throws {
        let (model, record, honest) = try await run(RobustAggregation(), factor: 100)
        let largest = honest.map(abs).max() ?? 0
        // (4·10·h + 1000·100·h) / 1040 ≈ 96·h: the pull is about 95 × the honest mean.
        #expect(distance(model, honest) > 50 * largest)
        #expect(record?.participants == Self.sites)
    }

    @Test(
        "Median, trimmed mean, Krum and multi-Krum keep the global model within 0.1 of the honest mean",
        arguments: [
            (RobustAggregation(rule: .median), Float(100)),
            (RobustAggregation(rule: .median), Float(-10)),
            (RobustAggregation(rule: .trimmedMean(trimFraction: 0.2)), Float(100)),
            (RobustAggregation(rule: .trimmedMean(trimFraction: 0.2)), Float(-10)),
            (RobustAggregation(rule: .krum(byzantineSites: 1, selected: 1)), Float(100)),
            (RobustAggregation(rule: .krum(byzantineSites: 1, selected: 3)), Float(-10)),
        ])
    func robustRules(aggregation: RobustAggregation, factor: Float) async throws {
        let (model, record, honest) = try await run(aggregation, factor: factor)
        #expect(distance(model, honest) < 0.1, "\(aggregation.ruleName): \(model["w"]?.values ?? [])")
        #expect(record?.participants == Self.sites)
        if case .krum = aggregation.rule {
            #expect(record?.metrics["m"]?["aggregation.krum_selected"] == 0)
            #expect(record?.metrics["h1"]?["aggregation.krum_selected"] != nil)
        }
    }

    @Test(
        "Norm bound with FedAvg: the attacker's diff is scaled down, not the honest ones; pull ≤ w × (bound + ‖h‖)",
        arguments: [
            (RobustAggregation.NormBound.fixed(3), Float(100)),
            (RobustAggregation.NormBound.medianFactor(2), Float(-10)),
            (RobustAggregation.NormBound.fixed(3), Float(-10)),
        ])
    func normBound(bound: RobustAggregation.NormBound, factor: Float) async throws {
        let aggregation = RobustAggregation(normBound: bound)
        let (model, record, honest) = try await run(aggregation, factor: factor, attackerSamples: 10)
        let scales = record?.metrics.mapValues { $0["aggregation.norm_scale"] ?? .nan } ?? [:]
        #expect((scales["m"] ?? 1) < 1)
        for site in ["h1", "h2", "h3", "h4"] { #expect(scales[site] == 1) }
        let norms = record?.metrics.values.compactMap { $0["aggregation.update_norm"] } ?? []
        let applied = try #require(aggregation.roundNormBound(norms: norms))
        let honestNorm = ParameterSet([ParameterTensor(name: "w", shape: [Round.size], values: honest)]).l2Norm
        // Equal sample counts: the attacker's clipped diff weighs 1/5, so ‖global − honest‖ ≤ (bound + ‖h‖) / 5.
        let pull = zip(model["w"]?.values ?? [], honest).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        #expect(pull.squareRoot() <= (applied + honestNorm) / 5 * (1 + 1e-4))
        // Unbounded, the same attacker moves it by |factor − 1| · ‖h‖ / 5.
        let unbounded = try await run(RobustAggregation(), factor: factor, attackerSamples: 10)
        #expect(distance(unbounded.model, honest) > 1.5 * distance(model, honest))
    }

    @Test("Three rounds of FedAvgM (η = 0.5, β = 0.9) on top of the median: near the honest mean, as FedAvg would be")
    func fedOptOnTop() async throws {
        let round = Round(seed: 5)
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "robust-fedopt", rounds: 3, sites: Self.sites, minClients: 5)
        job.robustAggregation = RobustAggregation(rule: .median, normBound: .medianFactor(3))
        let strategy = FedOpt(optimizer: ServerOptimizer(kind: .fedAvgM, learningRate: 0.5, beta1: 0.9))
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: strategy, clock: clock)
        let events = await coordinator.observe()
        let watcher = Task { for await event in events where event.isTerminal { clock.advance(by: .seconds(3600)) } }
        func agent(_ site: String, _ target: [Float]) -> SiteAgent<ManualClock> {
            SiteAgent(
                site: site, connection: InProcessConnection(coordinator: coordinator),
                trainer: JumpTrainer(target: target, samples: 10), clock: clock, chunkScalars: 3, log: { _ in })
        }
        async let final = coordinator.run()
        async let r1 = agent("h1", round.honest[0]).run()
        async let r2 = agent("h2", round.honest[1]).run()
        async let r3 = agent("h3", round.honest[2]).run()
        async let r4 = agent("h4", round.honest[3]).run()
        async let rm = agent("m", round.honestMean.map { $0 * -10 }).run()
        let model = try await final
        _ = try await (r1, r2, r3, r4, rm)
        await watcher.value
        // The same three rounds replayed with the free functions: diffs (target − global), each scaled to 3 × the
        // round's median norm, their coordinate median, FedAvgM's step.
        let targets = round.honest + [round.honestMean.map { $0 * -10 }]
        var reference = zeros
        var optimizer = ServerOptimizer(kind: .fedAvgM, learningRate: 0.5, beta1: 0.9)
        for _ in 0..<3 {
            var diffs = try targets.map {
                try ParameterSet([ParameterTensor(name: "w", shape: [Round.size], values: $0)]).subtracting(reference)
            }
            let bound = try #require(job.robustAggregation.roundNormBound(norms: diffs.map(\.l2Norm)))
            for i in diffs.indices { try diffs[i].clipL2Norm(to: bound) }
            try optimizer.apply(to: &reference, delta: try coordinateMedian(diffs))
        }
        #expect(distance(model, reference["w"]?.values ?? []) < 1e-5, "\(model) vs \(reference)")
        // The attacker's −10× diff is never the median: the model follows the honest sites (FedAvgM overshoots
        // them: 0.5, 1.2, then 1.29 × the target), never the attacker's side.
        for (v, h) in zip(model["w"]?.values ?? [], round.honestMean) where abs(h) > 0.2 { #expect(v * h > 0) }
        #expect(await coordinator.records.map(\.participants) == Array(repeating: Self.sites, count: 3))
    }

    @Test("Norm bound over three rounds: one spill file per site, reused round after round; the sums never rebuilt")
    func deferredAcrossRounds() async throws {
        let round = Round(seed: 9)
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "robust-rounds", rounds: 3, sites: Self.sites, minClients: 5)
        job.robustAggregation = RobustAggregation(normBound: .fixed(0.5))
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let watcher = Task {
            var spills: [Int] = []
            for await event in events {
                if case .roundClosed = event { spills.append(await coordinator.spillFileCount) }
                if event.isTerminal { clock.advance(by: .seconds(3600)) }
            }
            return spills
        }
        func agent(_ site: String, _ target: [Float]) -> SiteAgent<ManualClock> {
            SiteAgent(
                site: site, connection: InProcessConnection(coordinator: coordinator),
                trainer: JumpTrainer(target: target, samples: 10), clock: clock, chunkScalars: 3, log: { _ in })
        }
        async let final = coordinator.run()
        async let r1 = agent("h1", round.honest[0]).run()
        async let r2 = agent("h2", round.honest[1]).run()
        async let r3 = agent("h3", round.honest[2]).run()
        async let r4 = agent("h4", round.honest[3]).run()
        async let rm = agent("m", round.honestMean.map { $0 * 100 }).run()
        let model = try await final
        _ = try await (r1, r2, r3, r4, rm)
        // Read as each round closes; after the last one the job may already have closed its files.
        let spills = await watcher.value
        #expect(spills.count == 3 && spills.prefix(2) == [5, 5] && [0, 5].contains(spills[2]), "\(spills)")
        #expect(await coordinator.sumRebuilds == 0)
        #expect(await coordinator.spillFileCount == 0, "closed with the job")
        // Every diff is clipped to 0.5 (each round's mean moves ≤ 0.5): three rounds move the model ≤ 1.5 in L2.
        #expect((model.l2Norm) <= 1.5 * (1 + 1e-5))
        let records = await coordinator.records
        #expect(records.count == 3)
        for record in records { #expect((record.metrics["m"]?["aggregation.norm_scale"] ?? 1) < 1) }
    }

    @Test("Weights are capped by the declared sample count: a site claiming 2^62 samples counts as declared")
    func declaredSampleCounts() async throws {
        let aggregation = RobustAggregation(declaredSampleCounts: ["m": 10])
        let (model, _, honest) = try await run(aggregation, factor: 2, attackerSamples: 1 << 62)
        // All five weigh 10: (4·h + 2·h) / 5 = 1.2·h.
        for (v, h) in zip(model["w"]?.values ?? [], honest) { #expect(abs(v - 1.2 * h) < 1e-5) }
    }

    @Test(
        "A result that fails half-way leaves no trace without rebuilding the sums (norm bound: spilled; median: held)",
        arguments: [RobustAggregation(normBound: .fixed(100)), RobustAggregation(rule: .median)])
    func failedResult(aggregation: RobustAggregation) async throws {
        let round = Round(seed: 3)
        let clock = ManualClock()
        var job = JobConfiguration(
            jobID: "robust-fail", rounds: 1, sites: Self.sites, minClients: 4, roundTimeout: .seconds(60),
            gracePeriod: .seconds(5))
        job.robustAggregation = aggregation
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let watcher = Task {
            var rejected: [String] = []
            for await event in events {
                if case .resultRejected(_, let site, let reason) = event { rejected.append("\(site): \(reason)") }
                if case .gracePeriodStarted = event { clock.advance(by: .seconds(5)) }
                if event.isTerminal { clock.advance(by: .seconds(3600)) }
            }
            return rejected
        }
        func agent(_ site: String, _ target: [Float]) -> SiteAgent<ManualClock> {
            SiteAgent(
                site: site, connection: InProcessConnection(coordinator: coordinator),
                trainer: JumpTrainer(target: target, samples: 10), clock: clock, chunkScalars: 3, log: { _ in })
        }
        // The rogue: a good first chunk, then NaN.
        let rogue = Task { () -> FederationError? in
            do throws(FederationError) {
                guard let task = try await coordinator.nextTask(site: "m") else { return nil }
                try await coordinator.beginResult(
                    ResultHeader(jobID: task.jobID, round: task.round, site: "m", sampleCount: 10))
                try await coordinator.resultChunk(
                    site: "m", ParameterChunk(tensor: "w", shape: [Round.size], offset: 0, values: [1e5, 1e5, 1e5]))
                try await coordinator.resultChunk(
                    site: "m", ParameterChunk(tensor: "w", shape: [Round.size], offset: 3, values: [.nan]))
                return nil
            } catch {
                return error
            }
        }
        async let final = coordinator.run()
        async let r1 = agent("h1", round.honest[0]).run()
        async let r2 = agent("h2", round.honest[1]).run()
        async let r3 = agent("h3", round.honest[2]).run()
        async let r4 = agent("h4", round.honest[3]).run()
        let model = try await final
        _ = try await (r1, r2, r3, r4)
        #expect(await rogue.value?.code == .nonFinite)
        #expect(await coordinator.sumRebuilds == 0)
        #expect(await coordinator.probation.isEmpty)
        let rejected = await watcher.value
        #expect(rejected.contains { $0.hasPrefix("m: ") }, "\(rejected)")
        let sets = round.honest.map { ParameterSet([ParameterTensor(name: "w", shape: [Round.size], values: $0)]) }
        let honest: ParameterSet
        if aggregation.requiresIndividualUpdates {
            honest = try coordinateMedian(sets)
        } else {
            honest = try weightedAverage(sets.map { (parameters: $0, weight: 1.0) })
        }
        #expect(distance(model, honest["w"]?.values ?? []) < 1e-5)
        #expect(await coordinator.records.first?.participants == ["h1", "h2", "h3", "h4"])
    }

    @Test("The job refuses a rule whose held diffs exceed max_held_update_bytes, before any round")
    func heldMemoryLimit() async throws {
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "held", rounds: 1, sites: Self.sites, minClients: 5)
        job.robustAggregation = RobustAggregation(rule: .median)
        job.maxHeldUpdateBytes = 5 * Round.size * 4 - 1
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        await #expect(throws: FederationError.self) { try await coordinator.run() }
        #expect(await coordinator.failure?.contains("max_held_update_bytes") == true)
    }

    @Test("A site may not report metrics under the server's `aggregation.` prefix")
    func reservedMetricPrefix() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "prefix", rounds: 1, sites: ["a", "b"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        async let final = coordinator.run()
        let task = try #require(try await coordinator.nextTask(site: "a"))
        await #expect(throws: FederationError.self) {
            try await coordinator.beginResult(
                ResultHeader(
                    jobID: task.jobID, round: task.round, site: "a", sampleCount: 1,
                    metrics: ["aggregation.norm_scale": 1]))
        }
        await coordinator.abort(reason: "test over")
        _ = try? await final
    }
}
