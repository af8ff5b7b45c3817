import FederationClient
import FederationCore
import FederationServer
import FederationTestSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

@testable import FederationGRPC

/// A trainer that moves the model to the site's own optimum (as in FederationRuntimeTests' CoordinatorTests).
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

/// A project CA, the server's certificate and a running server on 127.0.0.1 with an ephemeral port.
struct Federation {
    let pki: TemporaryPKI
    let server: GRPCFederationServer
    let port: Int
    /// The server's certificate, key and CA.
    let serverTLS: MutualTLSFiles

    /// Starts a server for `service` (and `admin`), runs `body`, then shuts the server down and removes the
    /// certificates. With `checksRevocation`, the server checks every client against `pki.revocationListPath`.
    static func with<T: Sendable>(
        _ service: any FederationService, admin: (any AdminService)? = nil, limits: TransportLimits = .defaults,
        checksRevocation: Bool = false, _ body: (Federation) async throws -> T
    ) async throws -> T {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        var tls = try pki.issue("server", role: "server")
        if checksRevocation { tls.revocationList = pki.revocationListPath }
        let server = GRPCFederationServer(
            service: service, admin: admin, host: "127.0.0.1", port: 0, tls: tls, limits: limits)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let federation = Federation(
                pki: pki, server: server, port: try await server.listeningPort(), serverTLS: tls)
            do {
                let result = try await body(federation)
                server.beginGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                server.beginGracefulShutdown()
                group.cancelAll()
                throw error
            }
        }
    }

    /// A connection presenting `files` (a site certificate unless the test says otherwise).
    func connect(_ files: MutualTLSFiles, limits: TransportLimits = .defaults) throws -> GRPCFederationConnection {
        try GRPCFederationConnection(host: "127.0.0.1", port: port, tls: files, serverName: "localhost", limits: limits)
    }

    func site(_ name: String) throws -> GRPCFederationConnection { try connect(try pki.issue(name, role: "site")) }

    /// An admin connection presenting `files`.
    func admin(_ files: MutualTLSFiles) throws -> GRPCAdminConnection {
        try GRPCAdminConnection(host: "127.0.0.1", port: port, tls: files, serverName: "localhost")
    }
}

/// The code a call fails with, or nil when it succeeds.
func failure(_ body: () async throws -> Void) async -> FederationError.Code? {
    do {
        try await body()
        return nil
    } catch let error as FederationError {
        return error.code
    } catch {
        Issue.record("not a FederationError: \(error)")
        return nil
    }
}

let initial = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [0, 0])])

@Suite("gRPC + mutual TLS transport over loopback sockets")
struct GRPCTransportTests {
    @Test("Three sites, three rounds of FedAvg over gRPC + mTLS give the in-process result", .timeLimit(.minutes(2)))
    func threeSites() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "j1", rounds: 3, sites: ["a", "b", "c"], minClients: 2)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let trainers = [
            "a": JumpTrainer(target: [1, 2], samples: 1), "b": JumpTrainer(target: [3, 6], samples: 2),
            "c": JumpTrainer(target: [-1, 10], samples: 1),
        ]
        let (model, rounds) = try await Federation.with(coordinator) { federation in
            let connections = try ["a", "b", "c"].map { ($0, try federation.site($0)) }
            async let final = coordinator.run()
            let rounds = try await withThrowingTaskGroup(of: (String, [Int]).self) { group in
                for (site, connection) in connections {
                    // One attempt: a transient error fails the test instead of backing off on the manual clock.
                    let agent = SiteAgent(
                        site: site, connection: connection, trainer: trainers[site]!, clock: clock,
                        retry: RetryPolicy(maxAttempts: 1), chunkScalars: 1)
                    group.addTask { (site, try await agent.run()) }
                }
                return try await group.reduce(into: [String: [Int]]()) { $0[$1.0] = $1.1 }
            }
            let model = try await final
            for (_, connection) in connections { await connection.close() }
            return (model, rounds)
        }
        #expect(rounds == ["a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]])
        // (1·[1,2] + 2·[3,6] + 1·[-1,10]) / 4 = [1.5, 6], as over the in-process transport.
        #expect(model["w"]?.values == [1.5, 6])
        let records = await coordinator.records
        #expect(records.map(\.closedBy) == Array(repeating: "every site answered", count: 3))
        #expect(records[2].metrics["b"]?["dice"] == 0.3)
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "int8-compressed results cut into messages at block boundaries give the model of whole-chunk messages",
        .timeLimit(.minutes(2)))
    func compressedOverGRPC() async throws {
        let count = 1000
        let trainers = [
            "a": JumpTrainer(target: (0..<count).map { Float($0 % 29) * 0.01 }, samples: 1),
            "b": JumpTrainer(target: (0..<count).map { Float($0 % 13) * -0.02 }, samples: 3),
        ]
        let zero = ParameterSet([ParameterTensor(name: "w", shape: [count], values: .init(repeating: 0, count: count))])
        func run(limits: TransportLimits) async throws -> ParameterSet {
            let clock = ManualClock()
            var job = JobConfiguration(jobID: "jz", rounds: 2, sites: ["a", "b"], minClients: 2)
            job.taskConfig = UpdateEncoding.int8Blocks(blockSize: 64).taskConfig
            let coordinator = Coordinator(configuration: job, initialModel: zero, strategy: FedAvg(), clock: clock)
            defer { clock.advance(by: .seconds(100_000)) }
            return try await Federation.with(coordinator) { federation in
                let connections = try ["a", "b"].map {
                    ($0, try federation.connect(try federation.pki.issue($0, role: "site"), limits: limits))
                }
                async let final = coordinator.run()
                try await withThrowingTaskGroup(of: [Int].self) { group in
                    for (site, connection) in connections {
                        let agent = SiteAgent(
                            site: site, connection: connection, trainer: trainers[site]!, clock: clock,
                            retry: RetryPolicy(maxAttempts: 1), chunkScalars: count)
                        group.addTask { try await agent.run() }
                    }
                    for try await rounds in group { #expect(rounds == [1, 2]) }
                }
                let model = try await final
                for (_, connection) in connections { await connection.close() }
                return model
            }
        }
        let whole = try await run(limits: .defaults)
        // Messages of at most 256 values: each site's chunk of 960 values (15 blocks) goes out as four pieces.
        let cut = try await run(limits: TransportLimits(maxMessageBytes: 64 << 10, chunkScalars: 256))
        #expect(cut["w"]?.values.map(\.bitPattern) == whole["w"]?.values.map(\.bitPattern))
        // After two rounds the model is (1·a + 3·b) / 4 plus the weighted mean of each site's e₁ − e₂ (error feedback:
        // Σ sent = Σ diffs − e₂), each |e| ≤ s/2 with s = max|y|/127 and |y| < 0.6 here.
        let bound: Float = 0.6 / 127
        for (i, got) in (cut["w"]?.values ?? []).enumerated() {
            let a = Float(i % 29) * 0.01
            let b = Float(i % 13) * -0.02
            #expect(abs(got - (a + 3 * b) / 4) <= bound)
        }
    }

    @Test(
        "No certificate, another CA's certificate, an admin or server certificate as a site: all refused",
        .timeLimit(.minutes(2)))
    func refusedClients() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "j2", rounds: 1, sites: ["a", "admin1", "server"], minClients: 1)
        let recorder = RecordingService(
            Coordinator(
                configuration: job, initialModel: initial, strategy: FedAvg(),
                clock: clock))
        try await Federation.with(recorder) { federation in
            // Another CA's site certificate: the server refuses it in the TLS handshake (alert: unknown CA). No retry
            // can fix that: the error ends a site (`.unknownSite`), as does the client refusing the server.
            let otherCA = try TemporaryPKI(name: "Another CA")
            defer { otherCA.remove() }
            var foreign = try otherCA.issue("a", role: "site")
            foreign.trustRoots = federation.pki.caPath
            let stranger = try federation.connect(foreign)
            #expect(await failure { _ = try await stranger.register(site: "a") } == .unknownSite)
            await stranger.close()
            // Our certificate but the other CA as trust root: the client refuses the server.
            foreign = try federation.pki.issue("a", role: "site")
            foreign.trustRoots = otherCA.caPath
            let distrustful = try federation.connect(foreign)
            #expect(await failure { _ = try await distrustful.register(site: "a") } == .unknownSite)
            await distrustful.close()

            // No client certificate at all: TLS that trusts the CA but presents nothing.
            let bare = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: federation.port),
                transportSecurity: .tls { config in
                    config.trustRoots = .certificates([.file(path: federation.pki.caPath, format: .pem)])
                },
                config: .defaults { $0.http2.authority = "localhost" })
            try await withGRPCClient(transport: bare) { client in
                let stub = Tessera_Federation_V1_Federation.Client(wrapping: client)
                var request = Tessera_Federation_V1_RegisterRequest()
                request.site = "a"
                await #expect(throws: RPCError.self) { _ = try await stub.register(request) }
            }

            // An admin certificate (valid, our CA, client EKU) naming itself as a site: refused after the handshake.
            let admin = try federation.connect(try federation.pki.issue("admin1", role: "admin"))
            #expect(await failure { _ = try await admin.register(site: "admin1") } == .unknownSite)
            #expect(await failure { _ = try await admin.nextTask(site: "admin1") } == .unknownSite)
            await admin.close()
            // The server's own certificate used by a client: refused (by the TLS purpose check or the role check).
            let impostor = try federation.connect(try federation.pki.issue("server", role: "server"))
            #expect(await failure { _ = try await impostor.register(site: "server") } != nil)
            await impostor.close()
        }
        // Nothing reached the coordinator.
        #expect(recorder.sites.isEmpty)
    }

    @Test("A request or result naming another site than the certificate's CN is refused", .timeLimit(.minutes(2)))
    func siteMustMatchCertificate() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "j3", rounds: 1, sites: ["a", "b"], minClients: 2)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let model = try await Federation.with(coordinator) { federation in
            let a = try federation.site("a")
            let b = try federation.site("b")
            let run = Task { try await coordinator.run() }
            #expect(try await a.register(site: "a") == "j3")
            let task = try #require(try await a.nextTask(site: "a"))
            let update = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [1, 1])]).chunks(maxScalars: 1)
            // a's certificate speaking for b: refused before anything reaches the coordinator.
            #expect(await failure { _ = try await a.register(site: "b") } == .unknownSite)
            #expect(await failure { _ = try await a.nextTask(site: "b") } == .unknownSite)
            #expect(
                await failure {
                    try await a.uploadResult(
                        ResultHeader(jobID: "j3", round: task.round, site: "b", sampleCount: 1),
                        chunks: update)
                } == .unknownSite)
            // Errors of the coordinator keep their code across the wire.
            #expect(
                await failure {
                    try await a.uploadResult(
                        ResultHeader(jobID: "j3", round: 7, site: "a", sampleCount: 1), chunks: update)
                } == .staleRound)
            // The honest results still count.
            try await a.uploadResult(ResultHeader(jobID: "j3", round: 1, site: "a", sampleCount: 1), chunks: update)
            _ = try #require(try await b.nextTask(site: "b"))
            try await b.uploadResult(
                ResultHeader(jobID: "j3", round: 1, site: "b", sampleCount: 3),
                chunks: ParameterSet([ParameterTensor(name: "w", shape: [2], values: [5, 5])])
                    .chunks(maxScalars: 2))
            let model = try await run.value
            #expect(try await a.nextTask(site: "a") == nil)
            await a.close()
            await b.close()
            return model
        }
        // Only a's and b's own results: (1·1 + 3·5) / 4 = 4; nothing from the result a sent in b's name.
        #expect(model["w"]?.values == [4, 4])
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A 25M-parameter result (100 MB) streams in chunks no larger than the wire chunk",
        .timeLimit(.minutes(6)))
    func largeUpload() async throws {
        let clock = ManualClock()
        let count = 25_000_000
        let zeros = ParameterSet([
            ParameterTensor(
                name: "w", shape: [count],
                values: [Float](repeating: 0, count: count))
        ])
        let job = JobConfiguration(jobID: "j4", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let recorder = RecordingService(coordinator)
        let limits = TransportLimits.defaults
        let model = try await Federation.with(recorder, limits: limits) { federation in
            let a = try federation.site("a")
            let run = Task { try await coordinator.run() }
            let task = try #require(try await a.nextTask(site: "a"))
            let download = try await a.downloadModel(for: task, maxScalars: 1 << 30)
            #expect(download.count == count / limits.chunkScalars + 1)
            // Pulled a range per call.
            #expect(
                recorder.modelCalls == (download.count + limits.downloadChunksPerCall - 1)
                    / limits.downloadChunksPerCall)
            #expect(download.allSatisfy { $0.values.count <= limits.chunkScalars })
            // Chunks of 4M values are handed to the connection; it splits them to the wire chunk size.
            let ramp = ParameterSet([
                ParameterTensor(
                    name: "w", shape: [count],
                    values: (0..<count).map { Float($0 % 1000) / 1000 })
            ])
            try await a.uploadResult(
                ResultHeader(jobID: "j4", round: 1, site: "a", sampleCount: 10),
                chunks: ramp.chunks(maxScalars: 4 << 20))
            let model = try await run.value
            await a.close()
            return model
        }
        #expect(recorder.scalarsReceived == count)
        #expect(recorder.largestChunk == limits.chunkScalars)
        #expect(recorder.chunkCount >= count / limits.chunkScalars)
        let w = try #require(model["w"])
        #expect(w.values[999] == 0.999 && w.values[count - 1] == Float((count - 1) % 1000) / 1000)
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "Downloads are pulled range by range: a call gets at most downloadChunksPerCall chunks, whatever it asks",
        .timeLimit(.minutes(2)))
    func downloadsArePulledInRanges() async throws {
        let clock = ManualClock()
        let model = ParameterSet([
            ParameterTensor(name: "w", shape: [100, 100], values: (0..<10_000).map { Float($0) / 7 }),
            ParameterTensor(name: "b", shape: [5], values: [1, 2, 3, 4, 5]),
        ])
        let job = JobConfiguration(jobID: "j7", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: model, strategy: FedAvg(), clock: clock)
        let recorder = RecordingService(coordinator)
        // 1024 values per chunk: w in 10 chunks, b in 1; 3 chunks per call: 4 calls.
        let limits = TransportLimits(maxMessageBytes: 64 << 10, chunkScalars: 1 << 10, downloadChunksPerCall: 3)
        try await Federation.with(recorder, limits: limits) { federation in
            let files = try federation.pki.issue("a", role: "site")
            let a = try federation.connect(files, limits: limits)
            let run = Task { try await coordinator.run() }
            let task = try #require(try await a.nextTask(site: "a"))
            #expect(try await a.downloadParameters(for: task, maxScalars: 1 << 30) == model)
            #expect(recorder.modelCalls == 4)
            let chunks = try await a.downloadModel(for: task, maxScalars: 1 << 30)
            #expect(chunks.map(\.values.count) == Array(repeating: 1024, count: 9) + [784, 5])
            #expect(recorder.modelCalls == 8)
            // A client asking for everything in one call gets one range, and the model's chunk count.
            let client = try ClientTransport.makeClient(
                host: "127.0.0.1", port: federation.port, tls: files,
                serverName: "localhost", limits: limits)
            let connections = Task { try? await client.runConnections() }
            var request = Tessera_Federation_V1_DownloadModelRequest()
            request.task = task.wire
            request.firstChunk = 2
            request.chunkCount = 1000
            let (count, announced) = try await Tessera_Federation_V1_Federation.Client(wrapping: client)
                .downloadModel(request) { response in
                    var count = 0
                    for try await _ in response.messages { count += 1 }
                    return (
                        count,
                        response.metadata[stringValues: FederationHandler.chunkCountKey].first(where: { _ in true })
                    )
                }
            #expect(count == 3 && announced == "11")
            request.firstChunk = -1
            await #expect(throws: RPCError.self) {
                _ = try await Tessera_Federation_V1_Federation.Client(wrapping: client).downloadModel(request) {
                    response in
                    for try await _ in response.messages {}
                }
            }
            client.beginGracefulShutdown()
            await connections.value
            try await a.uploadResult(
                ResultHeader(jobID: "j7", round: 1, site: "a", sampleCount: 1),
                chunks: model.zeros().chunks(maxScalars: 1 << 10))
            _ = try await run.value
            await a.close()
        }
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A message over the server's size limit is refused; the partial result is dropped, a retry counts once",
        .timeLimit(.minutes(2)))
    func oversizedMessage() async throws {
        let clock = ManualClock()
        let count = 100_000
        let zeros = ParameterSet([
            ParameterTensor(
                name: "w", shape: [count],
                values: [Float](repeating: 0, count: count))
        ])
        let job = JobConfiguration(jobID: "j5", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let small = TransportLimits(maxMessageBytes: 64 << 10, chunkScalars: 8 << 10)
        let model = try await Federation.with(coordinator, limits: small) { federation in
            let files = try federation.pki.issue("a", role: "site")
            // A client configured for 1M-value messages against a server that takes 64 KiB.
            let greedy = try federation.connect(files, limits: .defaults)
            let run = Task { try await coordinator.run() }
            let task = try #require(try await greedy.nextTask(site: "a"))
            let ones = ParameterSet([
                ParameterTensor(
                    name: "w", shape: [count],
                    values: [Float](repeating: 1, count: count))
            ])
            let header = ResultHeader(jobID: task.jobID, round: task.round, site: "a", sampleCount: 1)
            // grpc-swift's server resets the stream (RST_STREAM) on an oversized message, with no status. The server
            // still answers, so the client reports a final error (not worth resending) rather than a transient one.
            let chunks = ones.chunks(maxScalars: count)
            do {
                try await greedy.uploadResult(header, chunks: chunks)
                Issue.record("the oversized message should be refused")
            } catch let error as FederationError {
                #expect(error.code == .tooLarge)
                #expect(error.message.contains("size limit") && error.message.contains("\(count * 4) bytes"))
            }
            await greedy.close()
            // The same result in messages the server accepts.
            let polite = try federation.connect(files, limits: small)
            try await polite.uploadResult(header, chunks: ones.chunks(maxScalars: count))
            let model = try await run.value
            await polite.close()
            return model
        }
        #expect(model["w"]?.values.allSatisfy { $0 == 1 } == true)
        clock.advance(by: .seconds(100_000))
    }

    @Test(
        "A site whose messages exceed the server's limit logs why and lets the round go on without it",
        .timeLimit(.minutes(2)))
    func oversizedSiteSkipsRound() async throws {
        let clock = ManualClock()
        let count = 100_000
        let zeros = ParameterSet([
            ParameterTensor(
                name: "w", shape: [count],
                values: [Float](repeating: 0, count: count))
        ])
        let job = JobConfiguration(
            jobID: "j6", rounds: 1, sites: ["a", "b"], minClients: 1,
            gracePeriod: .seconds(5))
        let coordinator = Coordinator(configuration: job, initialModel: zeros, strategy: FedAvg(), clock: clock)
        let events = await coordinator.observe()
        let small = TransportLimits(maxMessageBytes: 64 << 10, chunkScalars: 8 << 10)
        let (logged, logs) = AsyncStream.makeStream(of: String.self)
        let (model, roundsA, roundsB) = try await Federation.with(coordinator, limits: small) { federation in
            // a sends 400 KB messages; b uses the server's settings.
            let a = try federation.connect(try federation.pki.issue("a", role: "site"), limits: .defaults)
            let b = try federation.connect(try federation.pki.issue("b", role: "site"), limits: small)
            let run = Task { try await coordinator.run() }
            // Transient errors are not retried (one attempt) and waiting for the round to move on takes no time.
            let greedy = SiteAgent(
                site: "a", connection: a, trainer: JumpTrainer(target: [Float](repeating: 1, count: count), samples: 1),
                clock: clock, retry: RetryPolicy(base: .zero, maxAttempts: 1),
                chunkScalars: count, log: { logs.yield($0) })
            let agentA = Task { try await greedy.run() }
            var lines = logged.makeAsyncIterator()
            let line = try #require(await lines.next())
            #expect(line.contains("round 1") && line.contains("refused") && line.contains("size limit"))
            let polite = SiteAgent(
                site: "b", connection: b, trainer: JumpTrainer(target: [Float](repeating: 3, count: count), samples: 1),
                clock: clock, retry: RetryPolicy(maxAttempts: 1), chunkScalars: small.chunkScalars)
            let agentB = Task { try await polite.run() }
            var it = events.makeAsyncIterator()
            while let event = await it.next() { if case .gracePeriodStarted = event { break } }
            clock.advance(by: .seconds(5))
            let model = try await run.value
            let result = (model, try await agentA.value, try await agentB.value)
            await a.close()
            await b.close()
            return result
        }
        #expect(roundsA.isEmpty && roundsB == [1])
        #expect(model["w"]?.values.allSatisfy { $0 == 3 } == true)
        #expect(await coordinator.records.first?.participants == ["b"])
        clock.advance(by: .seconds(100_000))
    }

    @Test("A stream reset (RST_STREAM) is told apart from other unavailability")
    func streamReset() {
        #expect(
            StatusMapping.isStreamReset(
                RPCError(
                    code: .unavailable, message: "Stream unexpectedly closed: received RST_STREAM frame (0x8: cancel).")
            ))
        #expect(
            !StatusMapping.isStreamReset(
                RPCError(
                    code: .unavailable,
                    message: "Stream unexpectedly closed: received RST_STREAM frame (0x7: refused stream).")))
        #expect(!StatusMapping.isStreamReset(RPCError(code: .unavailable, message: "Stream unexpectedly closed.")))
        #expect(!StatusMapping.isStreamReset(RPCError(code: .resourceExhausted, message: "RST_STREAM")))
    }

    @Test("Federation errors map to gRPC statuses and back; transport failures become transient")
    func statusMapping() {
        for code in StatusMapping.knownCodes {
            let rpc = StatusMapping.rpcError(FederationError(code, "x"))
            #expect(StatusMapping.federationError(rpc, during: "test").code == code)
        }
        #expect(StatusMapping.statusCode(for: .transient) == .unavailable)
        #expect(StatusMapping.statusCode(for: .unknownSite) == .permissionDenied)
        #expect(
            StatusMapping.federationError(RPCError(code: .unavailable, message: "reset"), during: "t").code
                == .transient)
        #expect(
            StatusMapping.federationError(RPCError(code: .deadlineExceeded, message: "late"), during: "t").code
                == .transient)
        #expect(
            StatusMapping.federationError(RPCError(code: .permissionDenied, message: "no"), during: "t").code
                == .unknownSite)
        // A handshake refused over a certificate is final; one cut short (server restarting) is not.
        struct Cause: Error, CustomStringConvertible { var description: String }
        let refused = RPCError(
            code: .unavailable, message: "closed before the preface",
            cause: Cause(description: "sslError([error:10000418:TLSV1_ALERT_UNKNOWN_CA])"))
        #expect(StatusMapping.federationError(refused, during: "t").code == .unknownSite)
        let cut = RPCError(
            code: .unavailable, message: "closed before the preface",
            cause: Cause(description: "sslError([error:UNEXPECTED_EOF])"))
        #expect(StatusMapping.federationError(cut, during: "t").code == .transient)
    }

    @Test("Chunks round-trip through the wire format bit for bit")
    func chunkWire() throws {
        let chunk = ParameterChunk(
            tensor: "enc.0.conv1.weight", shape: [2, 3], offset: 2,
            values: [1.5, -.infinity, .leastNonzeroMagnitude, -0.0])
        let back = try ParameterChunk(wire: chunk.wire)
        #expect(back.values.map(\.bitPattern) == chunk.values.map(\.bitPattern))
        #expect(back.tensor == chunk.tensor && back.shape == chunk.shape && back.offset == chunk.offset)
        var broken: WireChunk = chunk.wire
        broken.values.removeLast()
        #expect(throws: FederationError.self) { try ParameterChunk(wire: broken) }
    }
}
