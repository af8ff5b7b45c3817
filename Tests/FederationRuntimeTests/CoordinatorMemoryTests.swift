import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// The address of the first value of `values`' storage, as a number (holding no reference to it).
func address(_ values: ArraySlice<Float>) -> Int { values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }
func address(_ values: [Float]) -> Int { values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }

/// Files in `folder`: none ever, spill files are anonymous.
func spillFiles(_ folder: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
}

@Suite("Coordinator memory bound: downloads from a snapshot, uploads added as they come, rounds closed in place")
struct CoordinatorMemoryTests {
    /// Dyadic values: every sum and difference below is exact in float32, so "exact" means bit for bit.
    static let model = ParameterSet([
        ParameterTensor(name: "w", shape: [6], values: [0, 0.5, 1, 1.5, 2, 2.5]),
        ParameterTensor(name: "b", shape: [2], values: [4, -4]),
    ])

    func diff(_ w: [Float], _ b: [Float]) -> ParameterSet {
        ParameterSet([
            ParameterTensor(name: "w", shape: [6], values: w), ParameterTensor(name: "b", shape: [2], values: b),
        ])
    }

    func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tessera-spill-\(UUID().uuidString)").path
    }

    @Test("A download's chunks are views into the global model: no copy per download")
    func downloadIsASnapshot() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "m1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock)
        let run = Task { try await coordinator.run() }
        let connection = InProcessConnection(coordinator: coordinator)
        let task = try #require(try await connection.nextTask(site: "a"))
        let chunks = try await coordinator.model(for: task, maxScalars: 4)
        let global = await coordinator.global
        #expect(chunks.map(\.values.count) == [4, 2, 2])
        let w = try #require(global["w"])
        let b = try #require(global["b"])
        #expect(address(chunks[0].values) == address(w.values))
        #expect(address(chunks[1].values) == address(w.values) + 4 * MemoryLayout<Float>.size)
        #expect(address(chunks[2].values) == address(b.values))
        try await connection.uploadResult(
            ResultHeader(jobID: "m1", round: 1, site: "a", sampleCount: 1),
            chunks: diff([1, 1, 1, 1, 1, 1], [1, 1]).chunks(maxScalars: 3))
        _ = try await run.value
        clock.advance(by: .seconds(100_000))
    }

    @Test("A received chunk is added, not kept nor spilled: the coordinator holds no reference to its values")
    func chunksAreNotRetained() async throws {
        let clock = ManualClock()
        let work = folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let job = JobConfiguration(jobID: "m2", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(
            configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
            workDirectory: work)
        let run = Task { try await coordinator.run() }
        _ = try #require(try await coordinator.nextTask(site: "a"))
        try await coordinator.beginResult(ResultHeader(jobID: "m2", round: 1, site: "a", sampleCount: 2))
        var values: [Float] = [1, 2, 3, 4, 5, 6]
        let before = address(values)
        try await coordinator.resultChunk(site: "a", ParameterChunk(tensor: "w", shape: [6], offset: 0, values: values))
        // Had the coordinator kept the chunk, its storage would be shared and this write would copy it first.
        values[0] = 100
        #expect(address(values) == before)
        // Not on probation: nothing written.
        #expect(await coordinator.inFlightSpillBytes.isEmpty)
        #expect(await coordinator.spillFileCount == 0)
        #expect(spillFiles(work).isEmpty)
        try await coordinator.resultChunk(
            site: "a", ParameterChunk(tensor: "b", shape: [2], offset: 0, values: [8, 8]))
        try await coordinator.endResult(site: "a")
        #expect(await coordinator.inFlightSpillBytes.isEmpty)
        let model = try await run.value
        #expect(await coordinator.spillFileCount == 0)
        #expect(model["w"]?.values == [1, 2.5, 4, 5.5, 7, 8.5])
        #expect(model["b"]?.values == [12, 4])
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A stream that breaks part-way: the sums are rebuilt from the results sent again, exactly; streams in flight are voided (transient), committed sites get their task again",
        arguments: [1, 4, 8])
    func brokenStreamRebuildsSums(chunkScalars: Int) async throws {
        let clock = ManualClock()
        let work = folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let job = JobConfiguration(jobID: "m3", rounds: 1, sites: ["a", "b", "c"], minClients: 3)
        let coordinator = Coordinator(
            configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
            workDirectory: work)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        var tasks: [String: TaskAssignment] = [:]
        for site in ["a", "b", "c"] { tasks[site] = try #require(try await connection.nextTask(site: site)) }
        let da = diff([1, 2, 3, 4, 5, 6], [0.5, -0.5])
        let db = diff([-8, 0.25, 16, 2, -2, 0], [1, 1])
        let dc = diff([0.75, 0.75, -0.75, 32, 1, 1], [-2, 2])
        try await connection.uploadResult(
            ResultHeader(jobID: "m3", round: 1, site: "a", sampleCount: 1),
            chunks: da.chunks(maxScalars: chunkScalars))
        // c is streaming when b's stream breaks.
        try await coordinator.beginResult(ResultHeader(jobID: "m3", round: 1, site: "c", sampleCount: 2))
        let cChunks = diff([9, 9, 9, 9, 9, 9], [9, 9]).chunks(maxScalars: chunkScalars)
        try await coordinator.resultChunk(site: "c", cChunks[0])
        // b streams most of a result (huge values, all added to the sums), then its connection breaks.
        try await coordinator.beginResult(ResultHeader(jobID: "m3", round: 1, site: "b", sampleCount: 3))
        for chunk in diff([64, 64, 64, 64, 64, 64], [64, 64]).chunks(maxScalars: chunkScalars).dropLast() {
            try await coordinator.resultChunk(site: "b", chunk)
        }
        #expect(await coordinator.inFlightSpillBytes.isEmpty)
        await coordinator.abandonResult(site: "b", reason: "connection reset")
        #expect(await coordinator.sumRebuilds == 1)
        #expect(await coordinator.probation == ["b"])
        // c's stream was voided: its next chunk is refused as transient (the site resends).
        do {
            try await coordinator.resultChunk(site: "c", cChunks[cChunks.count - 1])
            Issue.record("a voided stream should be refused")
        } catch {
            #expect(error.code == .transient)
        }
        // a was counted, then uncounted: it is asked again (its task is handed out at once).
        #expect(try await connection.nextTask(site: "a") == tasks["a"])
        try await connection.uploadResult(
            ResultHeader(jobID: "m3", round: 1, site: "a", sampleCount: 1),
            chunks: da.chunks(maxScalars: chunkScalars))
        try await connection.uploadResult(
            ResultHeader(jobID: "m3", round: 1, site: "c", sampleCount: 2),
            chunks: dc.chunks(maxScalars: chunkScalars))
        // b, now on probation, is spilled while it streams.
        try await coordinator.beginResult(ResultHeader(jobID: "m3", round: 1, site: "b", sampleCount: 3))
        let bChunks = db.chunks(maxScalars: chunkScalars)
        try await coordinator.resultChunk(site: "b", bChunks[0])
        #expect(await coordinator.inFlightSpillBytes["b"] == 20 + 4 * bChunks[0].values.count)
        for chunk in bChunks.dropFirst() { try await coordinator.resultChunk(site: "b", chunk) }
        try await coordinator.endResult(site: "b")
        let model = try await run.value
        #expect(spillFiles(work).isEmpty)
        #expect(await coordinator.spillFileCount == 0)
        #expect(await coordinator.sumRebuilds == 1)
        // Bit for bit the result of the three complete uploads alone.
        let mean = try weightedAverage([(da, 1), (db, 3), (dc, 2)])
        #expect(model == (try Self.model.adding(mean)))
        #expect(await coordinator.records.first?.participants == ["a", "b", "c"])
        var rejected: [String] = []
        for await event in events {
            if case .resultRejected(_, let site, let reason) = event { rejected.append("\(site): \(reason)") }
        }
        #expect(rejected.count == 2)
        #expect(rejected.first == "b: connection reset")
        #expect(rejected.last?.hasPrefix("a: counted, then taken out with the round's sums") == true)
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A site on probation whose stream breaks again is taken back out of its spill file exactly: no rebuild, the others stay counted",
        arguments: [1, 4, 8])
    func probationSiteTakenBackFromSpill(chunkScalars: Int) async throws {
        let clock = ManualClock()
        let work = folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let job = JobConfiguration(jobID: "m6", rounds: 2, sites: ["a", "b"], minClients: 2)
        let coordinator = Coordinator(
            configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
            workDirectory: work)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        let da = diff([1, 2, 3, 4, 5, 6], [0.5, -0.5])
        let db = diff([-8, 0.25, 16, 2, -2, 0], [1, 1])
        let junk = diff([64, 64, 64, 64, 64, 64], [64, 64]).chunks(maxScalars: chunkScalars)
        // Round 1: b breaks part-way with nothing else in the sums (a rebuild of nothing), then both answer.
        for site in ["a", "b"] { _ = try #require(try await connection.nextTask(site: site)) }
        try await coordinator.beginResult(ResultHeader(jobID: "m6", round: 1, site: "b", sampleCount: 3))
        try await coordinator.resultChunk(site: "b", junk[0])
        await coordinator.abandonResult(site: "b", reason: "connection reset")
        #expect(await coordinator.probation == ["b"])
        #expect(await coordinator.sumRebuilds == 1)
        for (site, d, n) in [("a", da, 1), ("b", db, 3)] {
            try await connection.uploadResult(
                ResultHeader(jobID: "m6", round: 1, site: site, sampleCount: n),
                chunks: d.chunks(maxScalars: chunkScalars))
        }
        var it = events.makeAsyncIterator()
        while let event = await it.next() { if case .roundClosed = event { break } }
        let after1 = try Self.model.adding(try weightedAverage([(da, 1), (db, 3)]))
        #expect(await coordinator.global == after1)
        // Round 2: a is counted; b (spilled) streams most of a result, then breaks, then sends it again.
        for site in ["a", "b"] { _ = try #require(try await connection.nextTask(site: site)) }
        try await connection.uploadResult(
            ResultHeader(jobID: "m6", round: 2, site: "a", sampleCount: 1),
            chunks: da.chunks(maxScalars: chunkScalars))
        try await coordinator.beginResult(ResultHeader(jobID: "m6", round: 2, site: "b", sampleCount: 3))
        for chunk in junk.dropLast() { try await coordinator.resultChunk(site: "b", chunk) }
        #expect(
            await coordinator.inFlightSpillBytes["b"] == junk.dropLast().reduce(0) { $0 + 20 + 4 * $1.values.count })
        #expect(await coordinator.spillFileCount == 1)
        await coordinator.abandonResult(site: "b", reason: "connection reset again")
        #expect(await coordinator.sumRebuilds == 1)  // taken out of its spill file: a stays counted
        #expect(await coordinator.inFlightSpillBytes["b"] == nil)
        try await connection.uploadResult(
            ResultHeader(jobID: "m6", round: 2, site: "b", sampleCount: 3),
            chunks: db.chunks(maxScalars: chunkScalars))
        let model = try await run.value
        #expect(model == (try after1.adding(try weightedAverage([(da, 1), (db, 3)]))))
        #expect(spillFiles(work).isEmpty)
        #expect(await coordinator.spillFileCount == 0)
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A result refused after some of its chunks were added (NaN half-way, oversized at the end, a tensor missing) leaves the global model exactly as if it never came; site agents resend on their own",
        arguments: ["nan", "oversized", "incomplete"])
    func rejectedAfterAddingLeavesNoTrace(fault: String) async throws {
        let clock = ManualClock()
        let job = JobConfiguration(
            jobID: "m7", rounds: 1, sites: ["a", "b", "r"], minClients: 2,
            roundTimeout: .seconds(600), gracePeriod: .seconds(5))
        let coordinator = Coordinator(configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        var it = events.makeAsyncIterator()
        // a and b are site agents (retries without waiting); a answers before the rogue, b after.
        func agent(_ site: String, _ target: ParameterSet) -> SiteAgent<ManualClock> {
            SiteAgent(
                site: site, connection: connection,
                trainer: FixedTrainer(weights: target, samples: site == "a" ? 1 : 3),
                clock: clock, retry: RetryPolicy(base: .zero), chunkScalars: 2)
        }
        let ta = diff([1, 2, 3, 4, 5, 6], [0.5, -0.5])
        let tb = diff([-8, 0.25, 16, 2, -2, 0], [1, 1])
        let agentA = Task { try await agent("a", ta).run() }
        while let event = await it.next() { if case .resultAccepted(_, "a", _, _) = event { break } }
        let task = try #require(try await connection.nextTask(site: "r"))
        #expect(task.round == 1)
        let header = ResultHeader(jobID: "m7", round: 1, site: "r", sampleCount: 100)
        let big = diff([64, 64, 64, 64, 64, 64], [64, 64])
        var chunks = big.chunks(maxScalars: 2)
        switch fault {
        case "nan": chunks[2] = ParameterChunk(tensor: "w", shape: [6], offset: 4, values: [1, .nan])
        case "oversized": chunks.append(ParameterChunk(tensor: "b", shape: [2], offset: 0, values: [64, 64]))
        default: chunks.remove(at: 1)  // w arrives with a hole
        }
        do {
            try await connection.uploadResult(header, chunks: chunks)
            Issue.record("the rogue result should be refused")
        } catch {
            #expect(error.code == ["nan": .nonFinite, "oversized": .tooLarge, "incomplete": .shapeMismatch][fault])
        }
        #expect(await coordinator.sumRebuilds == 1)
        let agentB = Task { try await agent("b", tb).run() }
        // a resends on its own (its task came back); both count; the grace period closes the round.
        while let event = await it.next() { if case .gracePeriodStarted = event { break } }
        clock.advance(by: .seconds(5))
        let model = try await run.value
        #expect(
            model
                == (try Self.model.adding(
                    try weightedAverage([
                        (ta.subtracting(Self.model), 1),
                        (tb.subtracting(Self.model), 3),
                    ]))))
        #expect(await coordinator.records.first?.participants == ["a", "b"])
        #expect(try await agentA.value == [1, 1])  // counted, uncounted, counted again
        #expect(try await agentB.value == [1])
        clock.advance(by: .seconds(100_000))
    }

    @Test("Closing a round updates the global model in its own storage")
    func closeRoundInPlace() async throws {
        let clock = ManualClock()
        let big = ParameterSet([
            ParameterTensor(name: "w", shape: [1 << 16], values: [Float](repeating: 1, count: 1 << 16))
        ])
        let job = JobConfiguration(jobID: "m4", rounds: 3, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: big, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        var it = events.makeAsyncIterator()
        var addresses: [Int] = []
        for round in 1...3 {
            let task = try #require(try await connection.nextTask(site: "a"))
            #expect(task.round == round)
            addresses.append(address(try #require(await coordinator.global["w"]).values))
            let update = ParameterSet([
                ParameterTensor(name: "w", shape: [1 << 16], values: [Float](repeating: 0.5, count: 1 << 16))
            ])
            try await connection.uploadResult(
                ResultHeader(jobID: "m4", round: round, site: "a", sampleCount: 1),
                chunks: update.chunks(maxScalars: 4096))
            while let event = await it.next() { if case .roundClosed = event { break } }
        }
        let model = try await run.value
        #expect(model["w"]?.values.allSatisfy { $0 == 2.5 } == true)
        // Round 1 copies the initial model (this test still holds it); from then on the global model is updated in
        // its own storage: no model-sized copy when a round closes.
        #expect(addresses[0] != addresses[1])
        #expect(addresses[1] == addresses[2])
        clock.advance(by: .seconds(100_000))
    }

    @Test("An unusable work directory refuses a probation site's result with a transient error that names it")
    func unusableWorkDirectory() async throws {
        let clock = ManualClock()
        let file = folder()
        try Data("not a folder".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let job = JobConfiguration(
            jobID: "m5", rounds: 1, sites: ["a"], minClients: 1, roundTimeout: .seconds(60),
            maxRoundRetries: 0)
        let coordinator = Coordinator(
            configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
            workDirectory: file + "/work")
        let run = Task { try await coordinator.run() }
        _ = try #require(try await coordinator.nextTask(site: "a"))
        // A stream that breaks part-way puts the site on probation: its next result is spilled.
        try await coordinator.beginResult(ResultHeader(jobID: "m5", round: 1, site: "a", sampleCount: 1))
        try await coordinator.resultChunk(
            site: "a", ParameterChunk(tensor: "b", shape: [2], offset: 0, values: [1, 1]))
        await coordinator.abandonResult(site: "a", reason: "connection reset")
        do {
            try await coordinator.beginResult(ResultHeader(jobID: "m5", round: 1, site: "a", sampleCount: 1))
            Issue.record("the result should be refused")
        } catch {
            #expect(error.code == .transient)
            #expect(error.message.contains(file + "/work"))
        }
        clock.advance(by: .seconds(60))
        await #expect(throws: FederationError.self) { try await run.value }
        clock.advance(by: .seconds(100_000))
    }
}

/// Returns fixed weights (not a diff): the agent sends weights − global.
struct FixedTrainer: LocalTrainer {
    var weights: ParameterSet
    var samples: Int
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        (weights, samples, [:])
    }
}

/// A connection whose first model download fails as stale (the round closed part-way through a pulled download).
final class StaleOnceConnection: FederationConnection {
    let inner: InProcessConnection
    let failed = Mutex(false)

    init(inner: InProcessConnection) { self.inner = inner }

    func register(site: String) async throws(FederationError) -> String? { try await inner.register(site: site) }
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await inner.nextTask(site: site)
    }
    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        let first = failed.withLock { failed in
            defer { failed = true }
            return !failed
        }
        if first { throw FederationError(.staleRound, "task of round \(task.round) is not current") }
        return try await inner.downloadModel(for: task, maxScalars: maxScalars)
    }
    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        try await inner.uploadResult(header, chunks: chunks)
    }
    func heartbeat(site: String) async throws(FederationError) { try await inner.heartbeat(site: site) }
}

@Suite("Site agent and pulled downloads")
struct PulledDownloadTests {
    @Test("A download that turns stale part-way (the round closed) is dropped: the agent takes its next task")
    func staleDownloadIsSkipped() async throws {
        let clock = ManualClock()
        let model = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [0, 0])])
        let job = JobConfiguration(jobID: "p1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: model, strategy: FedAvg(), clock: clock)
        let connection = StaleOnceConnection(inner: InProcessConnection(coordinator: coordinator))
        let run = Task { try await coordinator.run() }
        let agent = SiteAgent(
            site: "a", connection: connection,
            trainer: FixedTrainer(
                weights: ParameterSet([ParameterTensor(name: "w", shape: [2], values: [2, 4])]),
                samples: 1),
            clock: clock, chunkScalars: 1)
        // The first download fails as stale; the agent polls again, gets the (still current) task and answers it.
        #expect(try await agent.run() == [1])
        #expect(try await run.value["w"]?.values == [2, 4])
        clock.advance(by: .seconds(100_000))
    }
}
