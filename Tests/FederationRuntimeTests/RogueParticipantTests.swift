import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// A checkpoint store whose saves fail (a full disk, an unencodable record): the job must fail, not wedge.
private actor FailingStore: CheckpointStore {
    func save(
        jobID: String, completedRound: Int, model: ParameterSet, serverState: ParameterSet,
        records: [RoundRecord], modelMetadata: [String: String]
    ) async throws(FederationError) {
        throw FederationError(.invalidConfiguration, "disk full")
    }
    func load(jobID: String) async throws(FederationError) -> SavedCheckpoint? { nil }
}

/// An enrolled site that does not follow the protocol: it calls the coordinator directly with crafted results.
private struct Rogue {
    let coordinator: Coordinator<ManualClock>
    let site: String

    /// Waits for its task, then sends `chunks` under a header with `sampleCount` and `metrics`; returns the error.
    func send(samples: Int = 1, metrics: [String: Double] = [:], _ chunks: (TaskAssignment) -> [ParameterChunk])
        async -> FederationError?
    {
        do throws(FederationError) {
            guard let task = try await coordinator.nextTask(site: site) else { return nil }
            try await coordinator.beginResult(
                ResultHeader(
                    jobID: task.jobID, round: task.round, site: site,
                    sampleCount: samples, metrics: metrics))
            for chunk in chunks(task) { try await coordinator.resultChunk(site: site, chunk) }
            try await coordinator.endResult(site: site)
            return nil
        } catch {
            return error
        }
    }
}

@Suite("Rogue participants and the round lifecycle: the round closes with the honest sites, the job always ends")
struct RogueParticipantTests {
    let trainers: [String: JumpTrainer] = [
        "a": JumpTrainer(target: [1, 2], samples: 1), "b": JumpTrainer(target: [3, 6], samples: 3),
    ]

    func agent(_ site: String, _ coordinator: Coordinator<ManualClock>, _ clock: ManualClock)
        -> SiteAgent<ManualClock>
    {
        SiteAgent(
            site: site, connection: InProcessConnection(coordinator: coordinator), trainer: trainers[site]!,
            clock: clock, chunkScalars: 1)
    }

    /// One round with honest a and b and the rogue r; the round closes at the deadline with a and b.
    fileprivate func roundWithRogue(_ attack: @escaping @Sendable (Rogue) async -> FederationError?) async throws
        -> (model: ParameterSet, error: FederationError?, rejected: [String])
    {
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "rogue", rounds: 1, sites: ["a", "b", "r"], minClients: 2,
            roundTimeout: .seconds(60), gracePeriod: .seconds(5))
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let rejected = Task {
            var reasons: [String] = []
            for await event in events {
                if case .resultRejected(_, let site, let reason) = event, site == "r" { reasons.append(reason) }
                if case .gracePeriodStarted = event { clock.advance(by: .seconds(5)) }
            }
            return reasons
        }
        async let final = coordinator.run()
        async let error = attack(Rogue(coordinator: coordinator, site: "r"))
        async let ra = agent("a", coordinator, clock).run()
        async let rb = agent("b", coordinator, clock).run()
        let model = try await final
        _ = try await (ra, rb)
        return (model, await error, await rejected.value)
    }

    /// (1·[1,2] + 3·[3,6]) / 4 = [2.5, 5]: the honest sites' FedAvg, untouched by the rogue.
    let honest: [Float] = [2.5, 5]

    @Test("A chunk at offset Int.max is refused without trapping")
    func overflowingOffset() async throws {
        let (model, error, rejected) = try await roundWithRogue { rogue in
            await rogue.send { _ in [ParameterChunk(tensor: "w", shape: [2], offset: Int.max, values: [1])] }
        }
        #expect(error?.code == .shapeMismatch)
        #expect(rejected.contains { $0.contains("does not fit") })
        #expect(model["w"]?.values == honest)
    }

    @Test("A well-formed int8 chunk whose values decode past max_update_value is refused as float32 values are")
    func hugeEncodedScale() async throws {
        let (model, error, rejected) = try await roundWithRogue { rogue in
            await rogue.send { _ in
                // One block of 2 values, scale 10³⁰ (finite): codes ±127 decode to ±1.27·10³².
                var bytes: [UInt8] = withUnsafeBytes(of: Float(1e30).bitPattern.littleEndian, Array.init)
                bytes += [127, UInt8(bitPattern: -127)]
                guard
                    let encoded = try? EncodedValues(
                        encoding: .int8Blocks(blockSize: 16), count: 2, bytes: bytes[...], maxCount: 16)
                else { return [] }
                return [ParameterChunk(tensor: "w", shape: [2], offset: 0, encoded: encoded)]
            }
        }
        #expect(error?.code == .tooLarge)
        #expect(rejected.contains { $0.contains("max_update_value") }, "\(rejected)")
        #expect(model["w"]?.values == honest)
    }

    @Test("A NaN metric is refused at the header; the job completes with the honest sites")
    func nanMetric() async throws {
        let (model, error, _) = try await roundWithRogue { rogue in
            await rogue.send(metrics: ["dice": .nan]) { _ in
                [ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [0, 0])]
            }
        }
        #expect(error?.code == .nonFinite)
        #expect(model["w"]?.values == honest)
    }

    @Test("A huge sample count with near-max floats cannot make the global model infinite")
    func hugeWeightNearMaxFloats() async throws {
        let (model, error, _) = try await roundWithRogue { rogue in
            await rogue.send(samples: 1 << 62) { _ in
                [ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [3e38, -3e38])]
            }
        }
        #expect(error?.code == .tooLarge)
        #expect(model["w"]?.values == honest)
        #expect(model["w"]?.values.allSatisfy(\.isFinite) == true)
    }

    @Test("The same values sent twice (a chunk repeated instead of the next) are refused")
    func repeatedChunk() async throws {
        let (model, error, _) = try await roundWithRogue { rogue in
            await rogue.send { _ in
                [
                    ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [1]),
                    ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [1]),
                ]
            }
        }
        #expect(error?.code == .shapeMismatch)
        #expect(model["w"]?.values == honest)
    }

    @Test("A sample count above the job's cap weighs as the cap")
    func sampleCountCapped() async throws {
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "cap", rounds: 1, sites: ["a", "r"], minClients: 2)
        job.maxSampleCount = 3
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        async let final = coordinator.run()
        async let ra = agent("a", coordinator, clock).run()
        let error = await Rogue(coordinator: coordinator, site: "r").send(samples: 1_000_000) { _ in
            [ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [5, 6])]
        }
        #expect(error == nil)
        // (1·[1,2] + 3·[5,6]) / 4 = [4, 5]
        #expect(try await final["w"]?.values == [4, 5])
        _ = try await ra
    }

    @Test("A checkpoint that cannot be saved fails the job with its reason; the event stream ends")
    func failingStoreEndsTheJob() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "disk", rounds: 2, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(
            configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock,
            store: FailingStore())
        let events = await coordinator.observe()
        async let ra = agent("a", coordinator, clock).run()
        await #expect(throws: FederationError.self) { try await coordinator.run() }
        var last: JobEvent?
        for await event in events { last = event }  // ends: the stream is finished with the job
        guard case .jobFailed(let reason) = last else {
            Issue.record("the last event is \(String(describing: last)), not jobFailed")
            return
        }
        #expect(reason.contains("disk full"))
        #expect(await coordinator.failure?.contains("disk full") == true)
        _ = try? await ra  // the site is told "no task" and ends
    }

    @Test("An abort before the first round ends the job at once; an abort during a round ends that round")
    func abortAnywhere() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "abort", rounds: 3, sites: ["a", "b"], minClients: 2)
        let early = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        await early.abort(reason: "stopped by the admin")
        await #expect(throws: FederationError.self) { try await early.run() }
        #expect(await early.failure == "stopped by the admin")

        let waiting = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await waiting.observe()
        let run = Task { try await waiting.run() }
        var it = events.makeAsyncIterator()
        while let event = await it.next() { if case .roundStarted = event { break } }
        // a polls and waits (b never comes); the abort releases the poll and ends the job.
        async let poll = waiting.nextTask(site: "a")
        await waiting.abort(reason: "shutting down")
        await #expect(throws: FederationError.self) { try await run.value }
        _ = try await poll
        #expect(try await waiting.nextTask(site: "a") == nil)
        #expect(await waiting.failure == "shutting down")
    }

    @Test("A job listing a site twice is refused")
    func duplicateSites() {
        let job = JobConfiguration(jobID: "dup", rounds: 1, sites: ["a", "a"], minClients: 1)
        #expect(throws: FederationError.self) { try job.validate() }
    }

    @Test("FedAdam resumed from a checkpoint continues exactly as an uninterrupted run")
    func fedAdamResumes() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-fedadam-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let strategy = FedOpt(optimizer: ServerOptimizer(kind: .fedAdam, learningRate: 0.1))
        func run(rounds: Int, store: (any CheckpointStore)?) async throws -> ParameterSet {
            let clock = ManualClock()
            let job = JobConfiguration(jobID: "adam", rounds: rounds, sites: ["a", "b"], minClients: 2)
            let coordinator = Coordinator(
                configuration: job, initialModel: initial, strategy: strategy, clock: clock,
                store: store)
            async let final = coordinator.run()
            async let ra = agent("a", coordinator, clock).run()
            async let rb = agent("b", coordinator, clock).run()
            _ = try await (ra, rb)
            return try await final
        }
        let straight = try await run(rounds: 3, store: nil)
        let store = try SQLiteCheckpointStore(folder: folder)
        _ = try await run(rounds: 2, store: store)
        let saved = try await store.load(jobID: "adam")
        #expect(saved?.serverState.tensors.map(\.name).sorted() == ["m/w", "v/w"])
        let resumed = try await run(rounds: 3, store: store)  // rounds 1-2 from the checkpoint, then round 3
        #expect(resumed["w"]?.values == straight["w"]?.values)
        // Without the moments, round 3 would start Adam afresh and land elsewhere.
        var fresh = strategy
        var model = try #require(saved?.model).reordered(like: initial)
        let diff = try ParameterSet([ParameterTensor(name: "w", shape: [2], values: [2.5, 5])]).subtracting(model)
        try fresh.updateGlobal(round: 3, global: &model, meanDiff: diff, updates: [])
        #expect(model["w"]?.values != straight["w"]?.values)
    }
}
