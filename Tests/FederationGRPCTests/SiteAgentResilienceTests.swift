import FederationClient
import FederationCore
import FederationGRPC
import FederationServer
import FederationTestSupport
import Synchronization
import Testing

/// A connection that plays back a script of answers to `nextTask` and `uploadResult`, in memory: what a site sees
/// when the server fails a phase, restarts in the middle of a query, or forgets a job.
final class ScriptedConnection: FederationConnection {
    enum Poll: Sendable {
        case task(TaskAssignment)
        case none
        case error(FederationError)
    }

    private struct State {
        var polls: [Poll]
        var uploads: [Result<Void, FederationError>]
        var uploaded: [ResultHeader] = []
    }

    private let state: Mutex<State>

    init(polls: [Poll], uploads: [Result<Void, FederationError>] = []) {
        state = Mutex(State(polls: polls, uploads: uploads))
    }

    /// The headers of every upload attempted, in order.
    var uploaded: [ResultHeader] { state.withLock { $0.uploaded } }

    func register(site: String) async throws(FederationError) -> String? { "q1" }

    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        let next = state.withLock { s -> Poll in s.polls.isEmpty ? .none : s.polls.removeFirst() }
        switch next {
        case .task(let task): return task
        case .none: return nil
        case .error(let error): throw error
        }
    }

    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        throw FederationError(.invalidConfiguration, "no model in this script")
    }

    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        let outcome = state.withLock { s -> Result<Void, FederationError> in
            s.uploaded.append(header)
            return s.uploads.isEmpty ? .success(()) : s.uploads.removeFirst()
        }
        try outcome.get()
    }

    func heartbeat(site: String) async throws(FederationError) {}
}

struct NoTrainer: LocalTrainer {
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        throw FederationError(.invalidConfiguration, "this site does not train")
    }
}

/// A trainer that says when it starts and finishes only when released: the test restarts the server meanwhile.
final class GatedTrainer: LocalTrainer {
    let target: [Float]
    let starts: AsyncStream<Void>
    private let start: AsyncStream<Void>.Continuation
    private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    init(target: [Float]) {
        self.target = target
        (starts, start) = AsyncStream.makeStream(of: Void.self)
    }

    func release() {
        let waiting = gate.withLock { g in
            g.open = true
            defer { g.waiting = [] }
            return g.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        start.yield()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = gate.withLock { g in
                if !g.open { g.waiting.append(continuation) }
                return g.open
            }
            if open { continuation.resume() }
        }
        return (ParameterSet([ParameterTensor(name: "w", shape: [target.count], values: target)]), 1, [:])
    }
}

/// Collects log lines.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var sink: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
}

@Suite("A site client outlives failed tasks and server restarts")
struct SiteAgentResilienceTests {
    static func statistics(_ round: Int, job: String = "q1") -> ScriptedConnection.Poll {
        .task(TaskAssignment(jobID: job, round: round, kind: .statistics, site: "a"))
    }

    @Test(
        "A failed statistics phase, a job gone mid-upload and a refused poll: the site logs each and goes on",
        .timeLimit(.minutes(1)))
    func failuresDoNotEndTheSite() async throws {
        let connection = ScriptedConnection(
            polls: [
                Self.statistics(1),  // the handler fails: the site sits the phase out
                Self.statistics(1),  // still listed: the site waits for the phase to move on
                Self.statistics(2),  // answered, but the server restarted: the job is gone
                .error(FederationError(.invalidConfiguration, "the server is starting")),  // said, asked again
                Self.statistics(1, job: "q2"),  // the query again after the restart: answered, counted
                .none,  // the job is over
            ],
            uploads: [.failure(FederationError(.unknownJob, "job q1 is not running on this server")), .success(())])
        let log = LogLines()
        // Backoff of zero on a clock that never moves: no waiting; no heartbeats.
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: NoTrainer(), clock: ManualClock(),
            retry: RetryPolicy(base: .zero), log: log.sink, statistics: FailingOnce())
        agent.heartbeatInterval = nil
        let rounds = try await agent.run()
        #expect(rounds == [1])
        #expect(connection.uploaded.map { "\($0.jobID)/\($0.round)" } == ["q1/2", "q2/1"])
        let lines = log.all
        #expect(lines.contains { $0.contains("phase 1 of statistics job q1 goes on without this site") })
        #expect(lines.contains { $0.contains("next task failed") && $0.contains("asking again") })
    }

    @Test("A statistics task reaching a site started without a handler does not end it", .timeLimit(.minutes(1)))
    func noStatisticsHandler() async throws {
        let connection = ScriptedConnection(polls: [Self.statistics(1), .none])
        let log = LogLines()
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: NoTrainer(), clock: ManualClock(),
            retry: RetryPolicy(base: .zero), log: log.sink)
        agent.heartbeatInterval = nil
        #expect(try await agent.run() == [])
        #expect(log.all.contains { $0.contains("without a statistics handler") })
    }

    @Test(
        "The server restarts while the site trains: the site reconnects, and its result counts on the new server",
        .timeLimit(.minutes(2)))
    func serverRestartMidRound() async throws {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        let serverFiles = try pki.issue("server", role: "server")
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "r1", rounds: 1, sites: ["a"], minClients: 1)
        let first = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let serverA = GRPCFederationServer(service: first, host: "127.0.0.1", port: 0, tls: serverFiles)
        let servingA = Task { try await serverA.serve() }
        let port = try await serverA.listeningPort()
        let runA = Task { try await first.run() }
        let trainer = GatedTrainer(target: [1, 2])
        let connection = try GRPCFederationConnection(
            host: "127.0.0.1", port: port,
            tls: try pki.issue("a", role: "site"), serverName: "localhost")
        let log = LogLines()
        // Real time for the backoff: the site retries while the server is away.
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: trainer, clock: ContinuousClock(),
            retry: RetryPolicy(base: .milliseconds(50), cap: .milliseconds(500)), chunkScalars: 2,
            log: log.sink)
        agent.heartbeatInterval = nil
        let rounds = Task { try await agent.run() }
        var starts = trainer.starts.makeAsyncIterator()
        await starts.next()  // training round 1 of the first server's job
        serverA.beginGracefulShutdown()
        try await servingA.value
        runA.cancel()
        // The restarted server resumes the job at round 1 (as from its checkpoint), on the same port.
        let second = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let serverB = GRPCFederationServer(service: second, host: "127.0.0.1", port: port, tls: serverFiles)
        let servingB = Task { try await serverB.serve() }
        _ = try await serverB.listeningPort()
        let runB = Task { try await second.run() }
        trainer.release()
        #expect(try await rounds.value == [1])
        #expect(try await runB.value["w"]?.values == [1, 2])
        await connection.close()
        serverB.beginGracefulShutdown()
        try await servingB.value
        clock.advance(by: .seconds(100_000))
    }

    @Test("A certificate the server does not take as a participant ends the site", .timeLimit(.minutes(1)))
    func unknownSiteIsFatal() async throws {
        let connection = ScriptedConnection(polls: [.error(FederationError(.unknownSite, "not a participant"))])
        var agent = SiteAgent(
            site: "a", connection: connection, trainer: NoTrainer(), clock: ManualClock(),
            retry: RetryPolicy(base: .zero), log: { _ in })
        agent.heartbeatInterval = nil
        await #expect(throws: FederationError.self) { _ = try await agent.run() }
    }
}

/// Fails the first phase it is asked (its session is gone), answers every later one.
actor FailingOnce: PayloadTaskHandler {
    private var failed = false
    func respond(to task: TaskAssignment) async throws(FederationError)
        -> (payload: [UInt8], metrics: [String: Double])
    {
        if !failed {
            failed = true
            throw FederationError(.invalidConfiguration, "phase \(task.round) of a session this site does not know")
        }
        return (Array("answer \(task.round)".utf8), [:])
    }
}
