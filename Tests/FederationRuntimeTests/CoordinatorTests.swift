import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// A trainer that moves the model to the site's own optimum: after one round of FedAvg the global model is the
/// sample-weighted mean of the optima, which is easy to compute by hand.
struct JumpTrainer: LocalTrainer {
    var target: [Float]
    var samples: Int
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        (
            ParameterSet([ParameterTensor(name: "w", shape: [target.count], values: target)]), samples,
            ["dice": Double(task.round) / 10]
        )
    }
}

let initial = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [0, 0])])

/// Waits for the first event matching `predicate` (no sleeping: the stream delivers it).
func waitFor(_ events: AsyncStream<JobEvent>.Iterator, _ predicate: (JobEvent) -> Bool) async -> (
    JobEvent?, AsyncStream<JobEvent>.Iterator
) {
    var it = events
    while let e = await it.next() { if predicate(e) { return (e, it) } }
    return (nil, it)
}

@Suite("Coordinator and site agents over the in-process transport")
struct CoordinatorTests {
    let trainers: [String: JumpTrainer] = [
        "a": JumpTrainer(target: [1, 2], samples: 1), "b": JumpTrainer(target: [3, 6], samples: 2),
        "c": JumpTrainer(target: [-1, 10], samples: 1),
    ]

    func agent(_ site: String, _ connection: any FederationConnection, _ clock: ManualClock) -> SiteAgent<ManualClock> {
        SiteAgent(site: site, connection: connection, trainer: trainers[site]!, clock: clock, chunkScalars: 1)
    }

    @Test("Three sites, three rounds of FedAvg: every site answers, the global is the sample-weighted mean")
    func threeSites() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "j1", rounds: 3, sites: ["a", "b", "c"], minClients: 2)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let connection = InProcessConnection(coordinator: coordinator)
        async let final = coordinator.run()
        async let ra = agent("a", connection, clock).run()
        async let rb = agent("b", connection, clock).run()
        async let rc = agent("c", connection, clock).run()
        let model = try await final
        #expect(try await ra == [1, 2, 3])
        #expect(try await rb == [1, 2, 3])
        #expect(try await rc == [1, 2, 3])
        // (1·[1,2] + 2·[3,6] + 1·[-1,10]) / 4 = [1.5, 6]
        #expect(model["w"]?.values == [1.5, 6])
        let records = await coordinator.records
        #expect(records.map(\.closedBy) == Array(repeating: "every site answered", count: 3))
        #expect(records[2].metrics["b"]?["dice"] == 0.3)
        clock.advance(by: .seconds(100_000))
    }

    @Test("A silent site: the round closes at min_clients + grace with the others")
    func silentSite() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "j2", rounds: 2, sites: ["a", "b", "c"], minClients: 2,
            roundTimeout: .seconds(600), gracePeriod: .seconds(5))
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        async let final = coordinator.run()
        async let ra = agent("a", connection, clock).run()
        async let rb = agent("b", connection, clock).run()
        var it = events.makeAsyncIterator()
        for _ in 1...2 {
            // Both results in, c silent: the grace period starts and runs on the injected clock.
            let (started, next0) = await waitFor(it) {
                if case .gracePeriodStarted = $0 { return true }
                return false
            }
            it = next0
            #expect(started != nil)
            clock.advance(by: .seconds(5))
            let (closed, next) = await waitFor(it) {
                if case .roundClosed = $0 { return true }
                return false
            }
            it = next
            #expect(
                closed
                    == .roundClosed(
                        round: closed.flatMap {
                            if case .roundClosed(let r, _, _) = $0 { return r }
                            return nil
                        } ?? 0,
                        participants: ["a", "b"], reason: "min_clients and grace period"))
        }
        let model = try await final
        #expect(try await ra == [1, 2])
        #expect(try await rb == [1, 2])
        // (1·[1,2] + 2·[3,6]) / 3
        #expect(abs(model["w"]!.values[0] - 7.0 / 3) < 1e-6 && abs(model["w"]!.values[1] - 14.0 / 3) < 1e-6)
        clock.advance(by: .seconds(100_000))
    }

    @Test("A site whose local training fails sits that round out (it says why) and takes part in the next one")
    func failingTraining() async throws {
        struct FailsInRoundTwo: LocalTrainer {
            func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
                -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
            {
                if task.round == 2 { throw FederationError(.invalidConfiguration, "the DICOM folder cannot be read") }
                return try await JumpTrainer(target: [-1, 10], samples: 1).train(global: global, task: task)
            }
        }
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "j6", rounds: 3, sites: ["a", "b", "c"], minClients: 2,
            roundTimeout: .seconds(600), gracePeriod: .seconds(5))
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let lines = Mutex<[String]>([])
        // c waits out its failed round on a clock of its own, kept moving: it polls again until round 2 has closed
        // (the coordinator's clock moves only for round 2's grace period, so round 3 waits for c).
        let siteClock = ManualClock()
        var c = SiteAgent(
            site: "c", connection: connection, trainer: FailsInRoundTwo(), clock: siteClock, chunkScalars: 1,
            log: { line in lines.withLock { $0.append(line) } })
        c.heartbeatInterval = nil
        let frozen = c
        let pump = Task {
            while !Task.isCancelled {
                siteClock.advance(by: .seconds(1))
                await Task.yield()
            }
        }
        defer { pump.cancel() }
        async let final = coordinator.run()
        async let ra = agent("a", connection, clock).run()
        async let rb = agent("b", connection, clock).run()
        async let rc = frozen.run()
        var closed: [[String]] = []
        for await event in events {
            if case .gracePeriodStarted(2, _) = event { clock.advance(by: .seconds(5)) }
            if case .roundClosed(_, let participants, _) = event { closed.append(participants) }
        }
        _ = try await final
        #expect(closed == [["a", "b", "c"], ["a", "b"], ["a", "b", "c"]])
        #expect(try await ra == [1, 2, 3])
        #expect(try await rb == [1, 2, 3])
        #expect(try await rc == [1, 3])
        #expect(
            lines.withLock { $0 }.contains { $0.contains("round 2") && $0.contains("the DICOM folder cannot be read") })
        clock.advance(by: .seconds(100_000))
    }

    @Test("A round asked for again (retried at its deadline) gets the same result sent again, without training again")
    func resendWithoutRetraining() async throws {
        final class CountingTrainer: LocalTrainer {
            let calls = Mutex(0)
            func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
                -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
            {
                calls.withLock { $0 += 1 }
                return try await JumpTrainer(target: [1, 2], samples: 1).train(global: global, task: task)
            }
        }
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "j7", rounds: 1, sites: ["a", "b"], minClients: 2,
            roundTimeout: .seconds(60), gracePeriod: .seconds(5), maxRoundRetries: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let trainer = CountingTrainer()
        var a = SiteAgent(
            site: "a", connection: connection, trainer: trainer, clock: clock, chunkScalars: 1, log: { _ in })
        a.heartbeatInterval = nil
        let frozen = a
        let run = Task { try await coordinator.run() }
        async let ra = frozen.run()
        // b never answers: attempt 1 ends at its deadline, attempt 2 asks a again, then b arrives.
        var it = events.makeAsyncIterator()
        while let e = await it.next() { if case .resultAccepted = e { break } }
        clock.advance(by: .seconds(60))
        while let e = await it.next() { if case .resultAccepted = e { break } }
        let b = try #require(try await connection.nextTask(site: "b"))
        try await connection.uploadResult(
            ResultHeader(jobID: "j7", round: b.round, site: "b", sampleCount: 1),
            chunks: ParameterSet([ParameterTensor(name: "w", shape: [2], values: [3, 4])]).chunks(maxScalars: 2))
        let model = try await run.value
        #expect(try await ra == [1, 1], "two results sent")
        #expect(trainer.calls.withLock { $0 } == 1, "trained once")
        #expect(model["w"]?.values == [2, 3])
        clock.advance(by: .seconds(100_000))
    }

    @Test("Fewer than min_clients by the deadline: the round is retried, then the job fails with a reason")
    func notEnoughSites() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "j3", rounds: 2, sites: ["a", "b", "c"], minClients: 2,
            roundTimeout: .seconds(60), gracePeriod: .seconds(5), maxRoundRetries: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        async let ra = agent("a", connection, clock).run()
        var it = events.makeAsyncIterator()
        for attempt in 0...1 {
            let (_, n1) = await waitFor(it) {
                if case .resultAccepted = $0 { return true }
                return false
            }
            it = n1
            clock.advance(by: .seconds(60))
            if attempt == 0 {
                let (retried, n2) = await waitFor(it) {
                    if case .roundRetried = $0 { return true }
                    return false
                }
                it = n2
                #expect(retried == .roundRetried(round: 1, attempt: 1, reason: "fewer than 2 results by the deadline"))
            }
        }
        do {
            _ = try await run.value
            Issue.record("the job should fail")
        } catch let error as FederationError {
            #expect(error.code == .jobFailed)
            #expect(error.message.contains("1 of the 2"))
        }
        // The site answered both attempts of round 1; the job then failed and the agent exits cleanly.
        #expect(try await ra == [1, 1])
        #expect(await coordinator.failure != nil)
        clock.advance(by: .seconds(100_000))
    }

    @Test("Stale, unknown, duplicate and malformed results are rejected with a reason; the round goes on")
    func rejections() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "j4", rounds: 1, sites: ["a", "b"], minClients: 2, maxUpdateBytes: 64)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        let task = try #require(try await connection.nextTask(site: "a"))
        let good = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [1, 1])])
        func upload(_ header: ResultHeader, _ p: ParameterSet) async -> FederationError.Code? {
            do {
                try await connection.uploadResult(header, chunks: p.chunks(maxScalars: 1))
                return nil
            } catch { return error.code }
        }
        #expect(await upload(ResultHeader(jobID: "j4", round: 2, site: "a", sampleCount: 1), good) == .staleRound)
        #expect(await upload(ResultHeader(jobID: "other", round: 1, site: "a", sampleCount: 1), good) == .staleRound)
        #expect(await upload(ResultHeader(jobID: "j4", round: 1, site: "zz", sampleCount: 1), good) == .unknownSite)
        #expect(
            await upload(
                ResultHeader(jobID: "j4", round: 1, site: "a", sampleCount: 1),
                ParameterSet([ParameterTensor(name: "w", shape: [2], values: [.nan, 1])])) == .nonFinite)
        #expect(
            await upload(
                ResultHeader(jobID: "j4", round: 1, site: "a", sampleCount: 1),
                ParameterSet([ParameterTensor(name: "v", shape: [2], values: [1, 1])])) == .shapeMismatch)
        #expect(
            await upload(
                ResultHeader(jobID: "j4", round: 1, site: "a", sampleCount: 1),
                ParameterSet([ParameterTensor(name: "w", shape: [20], values: [Float](repeating: 0, count: 20))]))
                != nil)
        #expect(await upload(ResultHeader(jobID: task.jobID, round: 1, site: "a", sampleCount: 1), good) == nil)
        #expect(await upload(ResultHeader(jobID: task.jobID, round: 1, site: "a", sampleCount: 1), good) == .staleRound)
        #expect(
            await upload(
                ResultHeader(jobID: "j4", round: 1, site: "b", sampleCount: 3),
                ParameterSet([ParameterTensor(name: "w", shape: [2], values: [5, 5])])) == nil)
        let model = try await run.value
        // Only the two valid results count: (1·1 + 3·5) / 4 = 4, nothing from the rejected ones.
        #expect(model["w"]?.values == [4, 4])
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A restarted server resumes after the last checkpointed round, with no round lost or counted twice",
        arguments: ["memory", "sqlite"])
    func resume(storeKind: String) async throws {
        let clock = ManualClock()
        let folder = NSTemporaryDirectory() + "tessera-server-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store: any CheckpointStore =
            storeKind == "sqlite" ? try SQLiteCheckpointStore(folder: folder) : InMemoryCheckpointStore()
        let sites = ["a", "b"]
        let first = Coordinator(
            configuration: JobConfiguration(jobID: "j5", rounds: 1, sites: sites, minClients: 2),
            initialModel: initial, strategy: FedAvg(), clock: clock, store: store)
        let c1 = InProcessConnection(coordinator: first)
        async let m1 = first.run()
        async let a1 = agent("a", c1, clock).run()
        async let b1 = agent("b", c1, clock).run()
        _ = try await (m1, a1, b1)
        // "Restart": a new coordinator for the same job (3 rounds) on the same store.
        let second = Coordinator(
            configuration: JobConfiguration(jobID: "j5", rounds: 3, sites: sites, minClients: 2),
            initialModel: initial, strategy: FedAvg(), clock: clock, store: store)
        let c2 = InProcessConnection(coordinator: second)
        async let m2 = second.run()
        async let a2 = agent("a", c2, clock).run()
        async let b2 = agent("b", c2, clock).run()
        let (_, ra, rb) = try await (m2, a2, b2)
        #expect(ra == [2, 3] && rb == [2, 3])
        #expect(await second.records.map(\.round) == [1, 2, 3])
        #expect(await second.global["w"]?.values == [7.0 / 3, 14.0 / 3])
        if storeKind == "sqlite" {
            // The state survives the process: a third coordinator sees the finished job.
            let saved = try await SQLiteCheckpointStore(folder: folder).load(jobID: "j5")
            #expect(saved?.completedRound == 3)
            #expect(FileManager.default.fileExists(atPath: folder + "/j5/round-0003.safetensors"))
        }
        clock.advance(by: .seconds(100_000))
    }
}
