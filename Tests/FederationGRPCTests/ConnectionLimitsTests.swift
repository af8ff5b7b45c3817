import FederationClient
import FederationCore
import FederationServer
import FederationTestSupport
import Offload
import Synchronization
import Testing

@testable import FederationGRPC

#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to 127.0.0.1 that never sends a byte: what an attacker holding sockets open looks like.
final class SilentSocket: Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = try LoopbackHTTP.connect(port: port)
    }

    deinit { close(descriptor) }

    /// Waits (on a thread of its own, `Blocking.run`) until the server closes the connection or `limit` passes.
    /// - Returns: true when the server closed it (end of stream or reset), false when the wait ran out.
    func closedByServer(within limit: Duration) async -> Bool {
        let fd = descriptor
        return await Blocking.run {
            var timeout = timeval(
                tv_sec: Int(limit.components.seconds),
                tv_usec: Int(limit.components.attoseconds / 1_000_000_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var byte: UInt8 = 0
            while true {
                let count = recv(fd, &byte, 1, 0)
                if count == 0 { return true }
                if count < 0 {
                    if errno == EINTR { continue }
                    return errno == ECONNRESET
                }
            }
        }
    }
}

/// Forwards to a service and says each time a long-poll (`nextTask`) reaches it.
final class PollCountingService: FederationService {
    let inner: any FederationService
    let polls: AsyncStream<Void>
    private let poll: AsyncStream<Void>.Continuation
    private let count = Atomic<Int>(0)
    /// The long-polls that reached the service so far.
    var pollCount: Int { count.load(ordering: .relaxed) }

    init(_ inner: any FederationService) {
        self.inner = inner
        (polls, poll) = AsyncStream.makeStream(of: Void.self)
    }

    func register(site: String) async throws(FederationError) -> String { try await inner.register(site: site) }
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        _ = count.add(1, ordering: .relaxed)
        poll.yield()
        return try await inner.nextTask(site: site)
    }
    func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        try await inner.model(for: task, maxScalars: maxScalars)
    }
    func beginResult(_ header: ResultHeader) async throws(FederationError) { try await inner.beginResult(header) }
    func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError) {
        try await inner.resultChunk(site: site, chunk)
    }
    func endResult(site: String) async throws(FederationError) { try await inner.endResult(site: site) }
    func abandonResult(site: String, reason: String) async { await inner.abandonResult(site: site, reason: reason) }
    func heartbeat(site: String) async { await inner.heartbeat(site: site) }
}

/// A service whose model never comes: the server holds the DownloadModel stream open without a message.
struct StallingService: FederationService {
    func register(site: String) async throws(FederationError) -> String { "j" }
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? { nil }
    func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        // Until the handler is cancelled: the server must end it when the client gives up, or its shutdown (at the
        // end of the test) would wait for it.
        try? await Task.sleep(for: .seconds(3600))
        throw FederationError(.transient, "cancelled")
    }
    func beginResult(_ header: ResultHeader) async throws(FederationError) {}
    func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError) {}
    func endResult(site: String) async throws(FederationError) {}
    func abandonResult(site: String, reason: String) async {}
    func heartbeat(site: String) async {}
}

@Suite("Connection hygiene: timeouts, caps, deadlines, chunk floor")
struct ConnectionLimitsTests {
    @Test("The defaults are valid; each setting out of range is refused with its name")
    func validation() throws {
        try ConnectionLimits.defaults.validate()
        #expect(try ConnectionLimits() == .defaults)
        let refused: [(String, () throws(FederationError) -> ConnectionLimits)] = [
            ("maxPendingHandshakes", { () throws(FederationError) in try ConnectionLimits(maxPendingHandshakes: 0) }),
            (
                "maxConnectionsPerPeer",
                { () throws(FederationError) in
                    try ConnectionLimits(maxConnections: 4, maxConnectionsPerPeer: 8)
                }
            ),
            ("maxConcurrentStreams", { () throws(FederationError) in try ConnectionLimits(maxConcurrentStreams: 2) }),
            ("handshakeTimeout", { () throws(FederationError) in try ConnectionLimits(handshakeTimeout: .zero) }),
            ("idleTimeout", { () throws(FederationError) in try ConnectionLimits(idleTimeout: .seconds(-1)) }),
            (
                "keepaliveInterval",
                { () throws(FederationError) in
                    try ConnectionLimits(keepaliveInterval: .seconds(1))
                }
            ),
            ("longPollWait", { () throws(FederationError) in try ConnectionLimits(longPollWait: .zero) }),
        ]
        for (name, build) in refused {
            do {
                _ = try build()
                Issue.record("\(name) out of range was accepted")
            } catch {
                #expect(error.code == .invalidConfiguration && error.message.contains(name))
            }
        }
        #expect(try ConnectionLimits(idleTimeout: nil).idleTimeout == nil)
    }

    @Test("Download chunk sizes are clamped into [minChunkScalars, chunkScalars]")
    func chunkFloorArithmetic() {
        let limits = TransportLimits(chunkScalars: 1 << 17, minChunkScalars: 4096)
        #expect(limits.downloadChunkScalars(asked: 0) == 1 << 17)
        #expect(limits.downloadChunkScalars(asked: 1) == 4096)
        #expect(limits.downloadChunkScalars(asked: 5000) == 5000)
        #expect(limits.downloadChunkScalars(asked: 1 << 30) == 1 << 17)
        // A floor above the chunk size counts as the chunk size.
        #expect(TransportLimits(chunkScalars: 1024, minChunkScalars: 4096).downloadChunkScalars(asked: 1) == 1024)
    }

    @Test("A download asking for one value per chunk gets chunks of the floor", .timeLimit(.minutes(2)))
    func chunkFloorOverTheWire() async throws {
        let clock = ManualClock()
        let model = ParameterSet([ParameterTensor(name: "w", shape: [10_000], values: (0..<10_000).map(Float.init))])
        let job = JobConfiguration(jobID: "f1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: model, strategy: FedAvg(), clock: clock)
        let limits = TransportLimits(chunkScalars: 4096, downloadChunksPerCall: 64, minChunkScalars: 1000)
        try await Federation.with(coordinator, limits: limits) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            let run = Task { try await coordinator.run() }
            let task = try #require(try await a.nextTask(site: "a"))
            #expect(
                try await a.downloadModel(for: task, maxScalars: 1).map(\.values.count)
                    == Array(repeating: 1000, count: 10))
            #expect(
                try await a.downloadModel(for: task, maxScalars: 2500).map(\.values.count)
                    == [2500, 2500, 2500, 2500])
            #expect(try await a.downloadParameters(for: task, maxScalars: 1) == model)
            try await a.uploadResult(
                ResultHeader(jobID: "f1", round: 1, site: "a", sampleCount: 1),
                chunks: model.chunks(maxScalars: 4096))
            _ = try await run.value
            await a.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A silent TCP connection is closed after the handshake timeout; an authenticated one is not",
        .timeLimit(.minutes(1)))
    func handshakeTimeout() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "h1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(handshakeTimeout: .milliseconds(500))
        try await Federation.with(coordinator, limits: limits) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            #expect(try await a.register(site: "a") == "h1")
            let start = ContinuousClock.now
            let silent = try SilentSocket(port: federation.port)
            #expect(await silent.closedByServer(within: .seconds(20)))
            let waited = ContinuousClock.now - start
            #expect(waited >= .milliseconds(450) && waited < .seconds(20))
            // The site's connection, older than the timeout, still carries calls; no new connection was needed.
            try await a.heartbeat(site: "a")
            let statistics = federation.server.connectionStatistics
            #expect(statistics.handshakeTimeouts == 1)
            #expect(statistics.accepted == 2 && statistics.established == 1 && statistics.pendingHandshakes == 0)
            await a.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "300 silent connections on loopback do not lock a site out: it registers, polls, downloads and uploads",
        .timeLimit(.minutes(2)))
    func silentFlood() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "s1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        // A handshake timeout far beyond the test: only the cap on connections in their handshake (oldest closed
        // first) lets the site in.
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(handshakeTimeout: .seconds(600), maxPendingHandshakes: 64)
        let (rounds, model) = try await Federation.with(coordinator, limits: limits) { federation in
            var silent: [SilentSocket] = []
            for _ in 0..<300 { silent.append(try SilentSocket(port: federation.port)) }
            let start = ContinuousClock.now
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            var agent = SiteAgent(
                site: "a", connection: a, trainer: JumpTrainer(target: [1, 2], samples: 1),
                clock: clock, retry: RetryPolicy(maxAttempts: 1), chunkScalars: 2)
            agent.heartbeatInterval = nil
            async let model = coordinator.run()
            let rounds = try await agent.run()
            let took = ContinuousClock.now - start
            #expect(took < .seconds(30), "the site took \(took) to get through")
            // The oldest silent connections were closed to make room.
            #expect(await silent[0].closedByServer(within: .seconds(10)))
            let statistics = federation.server.connectionStatistics
            #expect(statistics.evicted >= 300 - 64)
            #expect(statistics.pendingHandshakes <= 64)
            await a.close()
            return (rounds, try await model)
        }
        #expect(rounds == [1])
        #expect(model["w"]?.values == [1, 2])
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A certificate may hold maxConnectionsPerPeer connections; one more is closed after its handshake",
        .timeLimit(.minutes(1)))
    func perPeerCap() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "p1", rounds: 1, sites: ["a", "b"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(maxConnectionsPerPeer: 1)
        try await Federation.with(coordinator, limits: limits) { federation in
            let files = try federation.pki.issue("a", role: "site")
            let first = try federation.connect(files, limits: limits)
            #expect(try await first.register(site: "a") == "p1")
            let second = try federation.connect(files, limits: limits)
            #expect(await failure { _ = try await second.register(site: "a") } == .transient)
            await second.close()
            #expect(federation.server.connectionStatistics.refused >= 1)
            // The first still works, and another site is not affected.
            try await first.heartbeat(site: "a")
            let b = try federation.site("b")
            #expect(try await b.register(site: "b") == "p1")
            await b.close()
            await first.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test("A long-poll is re-issued after longPollWait; the task still arrives", .timeLimit(.minutes(1)))
    func longPollIsReissued() async throws {
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(longPollWait: .milliseconds(300))
        // Three polls reach the server before there is a task: the first and two re-issued ones.
        try await Self.pollsThenTask("l1", server: limits, site: limits, polls: 3)
    }

    @Test(
        "The idle timeout closes a connection without calls, never one holding a long-poll",
        .timeLimit(.minutes(6)))
    func longPollIsNotIdle() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "i1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let service = PollCountingService(coordinator)
        var limits = TransportLimits()
        // The silent socket's handshake timeout is the test's clock: it fires well after the idle timeout. Both are
        // long enough that a loaded machine (the whole suite on 2 cores) does not turn scheduling delays into idleness.
        limits.connection = try ConnectionLimits(
            handshakeTimeout: .seconds(5),
            idleTimeout: .seconds(1))
        try await Federation.with(service, limits: limits) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            // On a loaded machine the new connection may go idle before the poll is sent (a whole second after its
            // handshake): the poll then fails as transient and is sent again, as a site agent does.
            let poll = Task { try await retryingTransient { try await a.nextTask(site: "a") } }
            var polls = service.polls.makeAsyncIterator()
            await polls.next()
            let silent = try SilentSocket(port: federation.port)
            #expect(await silent.closedByServer(within: .seconds(20)))
            // Five idle timeouts later the poll is still open on its first connection, and gets the task.
            let run = Task { try await coordinator.run() }
            let task = try #require(try await poll.value)
            #expect(task.jobID == "i1")
            // One poll reached the service: it was neither cut (the site would have failed) nor sent again.
            #expect(service.pollCount == 1)
            // Once the poll has returned, the connection holds no call: on a loaded machine it may go idle (GOAWAY)
            // before the upload starts, which is then refused as transient and sent again, as a site agent does.
            try await retryingTransient {
                try await a.uploadResult(
                    ResultHeader(jobID: "i1", round: 1, site: "a", sampleCount: 1),
                    chunks: initial.chunks(maxScalars: 2))
            }
            _ = try await run.value
            // With no call open, the connection is closed once idle (GOAWAY); the next call opens another.
            let later = try SilentSocket(port: federation.port)
            #expect(await later.closedByServer(within: .seconds(20)))
            #expect(federation.server.connectionStatistics.established == 0)
            // The new connection may itself go idle between its handshake and the call on a loaded machine.
            try await retryingTransient { try await a.heartbeat(site: "a") }
            #expect(federation.server.connectionStatistics.accepted >= 4)
            await a.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A long-poll waits in the service at most twice the server's longPollWait, whatever the site asked",
        .timeLimit(.minutes(1)))
    func longPollIsBoundedByTheServer() async throws {
        var server = TransportLimits()
        server.connection = try ConnectionLimits(longPollWait: .milliseconds(200))
        var site = TransportLimits()
        site.connection = try ConnectionLimits(longPollWait: .seconds(3600))
        // The server ends the first wait (deadlineExceeded) and the site asks again, long before its own hour.
        try await Self.pollsThenTask("o1", server: server, site: site, polls: 2)
    }

    /// Site "a" long-polls a one-round job that starts only once `polls` polls have reached the service; the poll
    /// still returns the task, and the site's result ends the job.
    static func pollsThenTask(_ jobID: String, server: TransportLimits, site: TransportLimits, polls count: Int)
        async throws
    {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: jobID, rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let service = PollCountingService(coordinator)
        try await Federation.with(service, limits: server) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: site)
            let poll = Task { try await a.nextTask(site: "a") }
            var polls = service.polls.makeAsyncIterator()
            for _ in 0..<count { await polls.next() }
            let run = Task { try await coordinator.run() }
            let task = try #require(try await poll.value)
            #expect(task.round == 1 && task.jobID == jobID)
            try await a.uploadResult(
                ResultHeader(jobID: jobID, round: 1, site: "a", sampleCount: 1), chunks: initial.chunks(maxScalars: 2))
            _ = try await run.value
            await a.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A graceful shutdown ends the long-polls waiting in the service: the server stops, the site sees transient",
        .timeLimit(.minutes(1)))
    func shutdownEndsLongPolls() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "d1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let service = PollCountingService(coordinator)
        // Nothing else would end the poll for an hour; the job never starts.
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(longPollWait: .seconds(3600))
        let (a, poll) = try await Federation.with(service, limits: limits) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            let poll = Task { try await a.nextTask(site: "a") }
            var polls = service.polls.makeAsyncIterator()
            await polls.next()
            return (a, poll)  // the server shuts down with the poll open
        }
        #expect(await failure { _ = try await poll.value } == .transient)
        await a.close()
        clock.advance(by: .seconds(100_000))
    }

    @Test("A stream with no message for streamProgressTimeout is abandoned as transient", .timeLimit(.minutes(1)))
    func stalledDownload() async throws {
        var limits = TransportLimits()
        limits.connection = try ConnectionLimits(streamProgressTimeout: .milliseconds(400))
        try await Federation.with(StallingService(), limits: limits) { federation in
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: limits)
            let task = TaskAssignment(jobID: "j", round: 1, kind: .train, site: "a")
            do {
                _ = try await a.downloadModel(for: task, maxScalars: 1024)
                Issue.record("a stalled download should be abandoned")
            } catch let error as FederationError {
                #expect(error.code == .transient && error.message.contains("stalled"))
            }
            await a.close()
        }
    }
}

/// Runs `body`, sending it again (at most `attempts` times in all) while it fails as transient, as a site agent does.
@discardableResult
private func retryingTransient<T: Sendable>(attempts: Int = 5, _ body: () async throws -> T) async throws -> T {
    for _ in 1..<attempts {
        do {
            return try await body()
        } catch let error as FederationError where error.code == .transient {
            continue
        }
    }
    return try await body()
}
