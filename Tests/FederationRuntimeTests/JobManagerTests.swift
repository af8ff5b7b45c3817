import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// A factory for tests: the "pipeline" is `rounds=<n> sites=<a,b,...>`; the model is `initial`, the strategy FedAvg.
struct LineFactory: JobFactory {
    let clock: ManualClock

    func parse(_ pipeline: String) throws(FederationError) -> (rounds: Int, sites: [String]) {
        var rounds: Int?
        var sites: [String] = []
        for part in pipeline.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "rounds" { rounds = Int(kv[1]) }
            if kv[0] == "sites" { sites = kv[1].split(separator: ",").map(String.init) }
        }
        guard let rounds, rounds > 0, !sites.isEmpty else {
            throw FederationError(.invalidConfiguration, "pipeline needs rounds=<n> sites=<a,b>")
        }
        return (rounds, sites)
    }

    func plan(pipeline: String) throws(FederationError) -> JobPlan {
        let (rounds, sites) = try parse(pipeline)
        return JobPlan(kind: .training, rounds: rounds, sites: sites)
    }

    /// With `cross-site` in the pipeline: a `TrainingJob` (rounds, then cross-site evaluation) on a two-tensor model.
    func makeRunner(jobID: String, pipeline: String, submittedBy: String, store: SQLiteCheckpointStore)
        async throws(FederationError) -> any JobRunner
    {
        let (rounds, sites) = try parse(pipeline)
        var configuration = JobConfiguration(jobID: jobID, rounds: rounds, sites: sites, minClients: sites.count)
        guard pipeline.contains("cross-site") else {
            return Coordinator(
                configuration: configuration, initialModel: initial, strategy: FedAvg(), clock: clock, store: store)
        }
        configuration.taskConfig = ["cross_site_evaluation": .bool(true)]
        let model = ParameterSet([
            ParameterTensor(name: "w", shape: [2], values: [0, 0]),
            ParameterTensor(name: "bias", shape: [1], values: [0]),
        ])
        return TrainingJob(
            coordinator: Coordinator(
                configuration: configuration, initialModel: model, strategy: FedAvg(),
                clock: clock, store: store),
            evaluation: try CrossSiteEvaluation(
                jobID: jobID, sites: sites, firstRound: rounds + 1,
                timeout: .seconds(600), clock: clock,
                folder: store.jobFolder(jobID) + "/cross-site",
                taskConfig: configuration.taskConfig))
    }
}

/// Trains like `JumpTrainer` in round 1 and never finishes a later round (until its task is cancelled): the job
/// is caught between rounds 1 and 2.
struct FirstRoundOnlyTrainer: LocalTrainer {
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        if task.round > 1 {
            for await _ in AsyncStream<Void> { _ in } {}
            throw FederationError(.transient, "cancelled")
        }
        return try await JumpTrainer(target: [2, 2], samples: 1).train(global: global, task: task)
    }
}

/// The job scheduler behind `tessera server`, over the in-process transport (the same calls the gRPC handlers
/// make): queueing, sites waiting between jobs, abort, restart with the queue and the running job kept.
@Suite("Job manager: queue, sites between jobs, abort, resume")
struct JobManagerTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-jobs-\(UUID().uuidString)").path

    func agent(_ site: String, _ manager: JobManager, _ clock: ManualClock, target: [Float]) -> SiteAgent<ManualClock> {
        SiteAgent(
            site: site, connection: InProcessConnection(coordinator: manager),
            trainer: JumpTrainer(target: target, samples: 1), clock: clock, chunkScalars: 1)
    }

    @Test(
        "Two jobs queue and run in turn; sites polling before any job wait, then take part; files are kept",
        .timeLimit(.minutes(1)))
    func queue() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = ManualClock()
        let manager = JobManager(store: try SQLiteCheckpointStore(folder: folder), factory: LineFactory(clock: clock))
        // Sites first: they poll with no job on the server.
        let a = Task { try await agent("a", manager, clock, target: [1, 1]).run() }
        let b = Task { try await agent("b", manager, clock, target: [3, 3]).run() }
        #expect(try await manager.register(site: "a") == "")
        let first = try await manager.submit(pipeline: "rounds=2 sites=a,b", name: "one", by: "lead")
        let second = try await manager.submit(pipeline: "rounds=1 sites=a,b", name: "two", by: "lead")
        #expect((first, second) == ("job-0001", "job-0002"))
        await #expect(throws: FederationError.self) {
            _ = try await manager.submit(pipeline: "rounds=0", name: "", by: "lead")
        }
        #expect(try await manager.status(jobID: nil).map(\.state) == [.queued, .queued])
        let loop = Task { await manager.run() }
        let done = try await manager.events(jobID: first)
        var events: [JobEvent] = []
        for await e in done { events.append(e) }
        #expect(events.last == .jobFinished)
        let (raa, rba) = (try await a.value, try await b.value)
        #expect(raa == [1, 2] && rba == [1, 2])
        // The same sites take part in the second job (a new agent run each, as `tessera client` loops).
        let a2 = Task { try await agent("a", manager, clock, target: [5, 5]).run() }
        let b2 = Task { try await agent("b", manager, clock, target: [7, 7]).run() }
        for await _ in try await manager.events(jobID: second) {}
        let (raa2, rba2) = (try await a2.value, try await b2.value)
        #expect(raa2 == [1] && rba2 == [1])
        let jobs = try await manager.status(jobID: nil)
        #expect(jobs.map(\.state) == [.finished, .finished] && jobs.map(\.completedRounds) == [2, 1])
        #expect(jobs[0].submittedBy == "lead" && jobs[0].name == "one")
        let files = try await manager.files(jobID: first).map(\.name)
        #expect(files == ["global.safetensors", "metrics.json", "round-0001.safetensors", "round-0002.safetensors"])
        // The job's log (the audit log's job entries): its states, then each site's results as events.
        let log = try await manager.log(jobID: first)
        #expect(log.filter { $0.kind == .jobState }.map(\.detail) == ["queued", "running", "finished"])
        let accepted = log.filter { $0.kind == .jobEvent && $0.detail.contains("accepted") }
        #expect(accepted.map(\.site).sorted() == ["a", "a", "b", "b"])
        // The sites as last heard from (the in-process twin reports its version as gRPC clients do), idle now.
        let sites = await manager.sites()
        #expect(sites.map(\.site) == ["a", "b"])
        #expect(sites.allSatisfy { $0.version == TesseraVersion.current && $0.currentTask.isEmpty })
        await #expect(throws: FederationError.self) { _ = try await manager.status(jobID: "job-9999") }
        await manager.stop()
        await loop.value
        clock.advance(by: .seconds(100_000))
    }

    @Test("Abort: a running job stops, its sites are released; a queued job is never started", .timeLimit(.minutes(1)))
    func abort() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = ManualClock()
        let manager = JobManager(store: try SQLiteCheckpointStore(folder: folder), factory: LineFactory(clock: clock))
        let running = try await manager.submit(pipeline: "rounds=3 sites=a,b", name: "", by: "lead")
        let queued = try await manager.submit(pipeline: "rounds=1 sites=a,b", name: "", by: "lead")
        let loop = Task { await manager.run() }
        // Only site a answers: round 1 waits for b.
        let a = Task { try await agent("a", manager, clock, target: [1, 1]).run() }
        var events = try await manager.events(jobID: running).makeAsyncIterator()
        while let e = await events.next() { if case .resultAccepted = e { break } }
        try await manager.abort(jobID: queued, by: "lead")
        try await manager.abort(jobID: running, by: "lead")
        var last: JobEvent?
        while let e = await events.next() { last = e }
        #expect(last == .jobFailed(reason: "aborted by lead"))
        #expect(try await a.value == [1])
        let jobs = try await manager.status(jobID: nil)
        #expect(jobs.map(\.state) == [.aborted, .aborted])
        await #expect(throws: FederationError.self) { try await manager.abort(jobID: running, by: "lead") }
        await manager.stop()
        await loop.value
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A restarted manager resumes the running job after its last checkpoint and keeps the queue",
        .timeLimit(.minutes(1)))
    func resume() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = ManualClock()
        let store = try SQLiteCheckpointStore(folder: folder)
        let before = JobManager(store: store, factory: LineFactory(clock: clock))
        let job = try await before.submit(pipeline: "rounds=3 sites=a,b", name: "", by: "lead")
        let loop = Task { await before.run() }
        let stuck = { @Sendable (site: String) in
            SiteAgent(
                site: site, connection: InProcessConnection(coordinator: before), trainer: FirstRoundOnlyTrainer(),
                clock: clock, retry: RetryPolicy(maxAttempts: 1), chunkScalars: 1)
        }
        let a = Task { try await stuck("a").run() }
        let b = Task { try await stuck("b").run() }
        var events = try await before.events(jobID: job).makeAsyncIterator()
        while let e = await events.next() { if case .roundClosed(1, _, _) = e { break } }
        // "Crash" the server after round 1: its loop stops; the job stays running in the store.
        await before.stop()
        await loop.value
        a.cancel()
        b.cancel()
        let stored = try await store.jobs().first
        #expect(stored?.state == .running)
        #expect(stored?.completedRounds == 1)

        let after = JobManager(store: try SQLiteCheckpointStore(folder: folder), factory: LineFactory(clock: clock))
        let loop2 = Task { await after.run() }
        let a2 = Task { try await agent("a", after, clock, target: [2, 2]).run() }
        let b2 = Task { try await agent("b", after, clock, target: [4, 4]).run() }
        var seen: [JobEvent] = []
        for await e in try await after.events(jobID: job) { seen.append(e) }
        #expect(seen.last == .jobFinished)
        #expect(!seen.contains { if case .roundStarted(1, _, _) = $0 { true } else { false } })
        let (raa2, rba2) = (try await a2.value, try await b2.value)
        #expect(raa2 == [2, 3] && rba2 == [2, 3])
        #expect(try await after.status(jobID: job).first?.completedRounds == 3)
        await after.stop()
        await loop2.value
        clock.advance(by: .seconds(100_000))
    }
}

/// Evaluates like `ScoringTrainer` but never finishes evaluating a site's local model (until cancelled): the job is
/// caught in the middle of its cross-site evaluation.
struct GlobalOnlyEvaluator: LocalTrainer {
    var scoring: ScoringTrainer

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        try await scoring.train(global: global, task: task)
    }

    func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String: Double] {
        if task.config["model"] != .string("global") {
            for await _ in AsyncStream<Void> { _ in } {}
            throw FederationError(.transient, "cancelled")
        }
        return try await scoring.evaluate(weights, task: task)
    }
}

@Suite("Job manager: a training job with cross-site evaluation")
struct CrossSiteJobTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-xsite-\(UUID().uuidString)")
        .path

    @Test(
        "A server stopped during the cross-site evaluation resumes it: no training round, no submit step and no model evaluated twice; the job's files hold the matrix and the local models",
        .timeLimit(.minutes(1)))
    func resumeDuringEvaluation() async throws {
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clock = ManualClock()
        let a = ScoringTrainer(target: [1, 2], bias: 1, samples: 1, offset: 0)
        let b = ScoringTrainer(target: [3, 6], bias: 3, samples: 1, offset: 0.5)
        let before = JobManager(store: try SQLiteCheckpointStore(folder: folder), factory: LineFactory(clock: clock))
        let job = try await before.submit(pipeline: "rounds=1 sites=a,b cross-site", name: "", by: "lead")
        let loop = Task { await before.run() }
        func agent(_ site: String, _ manager: JobManager, _ trainer: any LocalTrainer) -> SiteAgent<ManualClock> {
            var agent = SiteAgent(
                site: site, connection: InProcessConnection(coordinator: manager), trainer: trainer,
                clock: clock, retry: RetryPolicy(maxAttempts: 1), chunkScalars: 1, log: { _ in })
            agent.heartbeatInterval = nil
            return agent
        }
        let sa = Task { try await agent("a", before, GlobalOnlyEvaluator(scoring: a)).run() }
        let sb = Task { try await agent("b", before, GlobalOnlyEvaluator(scoring: b)).run() }
        var events = try await before.events(jobID: job).makeAsyncIterator()
        // Round 1 trains, round 2 gathers the local models, round 3 evaluates the global model, round 4 (a's model)
        // never finishes: the server stops there.
        while let e = await events.next() { if case .roundStarted(4, _, _) = e { break } }
        await before.stop()
        await loop.value
        sa.cancel()
        sb.cancel()
        _ = try? await sa.value
        _ = try? await sb.value

        let after = JobManager(store: try SQLiteCheckpointStore(folder: folder), factory: LineFactory(clock: clock))
        let loop2 = Task { await after.run() }
        // New client processes: they no longer hold their local models, which the server already has.
        let ra = Task { try await agent("a", after, a).run() }
        let rb = Task { try await agent("b", after, b).run() }
        var seen: [JobEvent] = []
        for await e in try await after.events(jobID: job) { seen.append(e) }
        #expect(seen.last == .jobFinished)
        let started = seen.compactMap { e -> Int? in if case .roundStarted(let r, _, _) = e { r } else { nil } }
        #expect(started == [4, 5], "only the two local models are left to evaluate: \(started)")
        _ = try await (ra.value, rb.value)
        let files = try await after.files(jobID: job)
        #expect(
            files.map(\.name) == [
                "cross-site.json", "global.safetensors", "local-a.safetensors", "local-b.safetensors",
                "metrics.json", "round-0001.safetensors",
            ])
        let matrix = try JSONDecoder().decode(
            CrossSiteMatrix.self, from: Data(contentsOf: URL(fileURLWithPath: files[0].path)))
        // One FedAvg round of equal weights: w = [2, 4], bias = 2 → Σ 8; a = [1, 2, 1] → Σ 4; b = [3, 6, 3] → Σ 12.
        let expected: [String: Double] = ["global": 0.08, "a": 0.04, "b": 0.12]
        let offsets: [String: Double] = ["a": 0, "b": 0.5]
        #expect(matrix.models == ["global", "a", "b"] && matrix.missing.isEmpty)
        for (model, sum) in expected {
            for (site, offset) in offsets {
                let dice = try #require(matrix.results[model]?[site]?["dice"], "\(model)@\(site)")
                #expect(abs(dice - (sum + offset)) < 1e-12, "\(model)@\(site)")
            }
        }
        await after.stop()
        await loop2.value
        clock.advance(by: .seconds(100_000))
    }
}

/// Counts heartbeats on their way to the in-process connection.
final class CountingConnection: FederationConnection {
    let inner: InProcessConnection
    let beats = Mutex(0)

    init(inner: InProcessConnection) { self.inner = inner }

    func register(site: String) async throws(FederationError) -> String? { try await inner.register(site: site) }
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await inner.nextTask(site: site)
    }
    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        try await inner.downloadModel(for: task, maxScalars: maxScalars)
    }
    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        try await inner.uploadResult(header, chunks: chunks)
    }
    func heartbeat(site: String) async throws(FederationError) {
        beats.withLock { $0 += 1 }
        try await inner.heartbeat(site: site)
    }
}

@Suite("Site heartbeats")
struct HeartbeatTests {
    @Test("A site waiting for its task sends a heartbeat each interval on its clock", .timeLimit(.minutes(1)))
    func heartbeats() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "hb", rounds: 1, sites: ["a", "b"], minClients: 2)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let connection = CountingConnection(inner: InProcessConnection(coordinator: coordinator))
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: JumpTrainer(target: [1, 1], samples: 1),
            clock: clock, chunkScalars: 1)
        agent.heartbeatInterval = .seconds(30)
        let frozen = agent
        // The coordinator is not running: the site registers and long-polls; only heartbeats pass while it waits.
        let run = Task { try await frozen.run() }
        for _ in 0..<10_000 where connection.beats.withLock({ $0 }) < 3 {
            clock.advance(by: .seconds(30))
            await Task.yield()
        }
        #expect(connection.beats.withLock { $0 } >= 3)
        #expect(await coordinator.lastSeen["a"] != nil)
        run.cancel()
        clock.advance(by: .seconds(100_000))
    }
}
