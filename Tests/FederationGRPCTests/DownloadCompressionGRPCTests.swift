import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Synchronization
import Testing

@testable import FederationGRPC

/// Adds a step of its own to the model it received, and records the digest of what it received each round.
private final class StepRecorder: LocalTrainer {
    let site: Int
    let received = Mutex<[ModelDigest]>([])

    init(site: Int) { self.site = site }

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        received.withLock { $0.append(ModelDigest(of: global)) }
        var weights = global
        try weights.updateValues { _, v in
            for i in v.indices { v[i] += Float((i * 5 + site * 11 + task.round * 3) % 23 - 11) * 0.002 }
        }
        return (weights, 1 + site, [:])
    }
}

@Suite("Download compression over gRPC + mutual TLS")
struct DownloadCompressionGRPCTests {
    static let initial = ParameterSet([
        ParameterTensor(name: "w", shape: [700], values: (0..<700).map { Float($0 % 19) * 0.01 - 0.09 }),
        ParameterTensor(name: "b", shape: [3], values: [0.5, -0.5, 0]),
    ])

    /// Three rounds with int8 downloads; the final model and what each site received each round.
    static func run(grpc: Bool) async throws -> (ParameterSet, [[ModelDigest]]) {
        let clock = ManualClock()
        var job = JobConfiguration(jobID: "jd", rounds: 3, sites: ["a", "b"], minClients: 2)
        job.downloadEncoding = .int8Blocks(blockSize: 32)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        defer { clock.advance(by: .seconds(100_000)) }
        let trainers = [StepRecorder(site: 0), StepRecorder(site: 1)]
        func agents(_ connections: [any FederationConnection]) async throws {
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for (i, site) in ["a", "b"].enumerated() {
                    let agent = SiteAgent(
                        site: site, connection: connections[i], trainer: trainers[i], clock: clock,
                        retry: RetryPolicy(maxAttempts: 1), chunkScalars: 100)
                    group.addTask { try await agent.run() }
                }
                for try await rounds in group { #expect(rounds == [1, 2, 3]) }
            }
        }
        let model: ParameterSet
        if grpc {
            model = try await Federation.with(coordinator) { federation in
                let connections = try ["a", "b"].map { try federation.site($0) }
                async let final = coordinator.run()
                try await agents(connections)
                let model = try await final
                for connection in connections { await connection.close() }
                return model
            }
        } else {
            async let final = coordinator.run()
            try await agents(Array(repeating: InProcessConnection(coordinator: coordinator), count: 2))
            model = try await final
        }
        return (model, trainers.map { t in t.received.withLock { $0 } })
    }

    @Test(
        "Sites build the server's model from the changes over gRPC, bit for bit as over the in-process transport",
        .timeLimit(.minutes(2)))
    func sameAsInProcess() async throws {
        let (viaGRPC, receivedGRPC) = try await Self.run(grpc: true)
        let (inProcess, receivedInProcess) = try await Self.run(grpc: false)
        #expect(receivedGRPC == receivedInProcess)
        #expect(receivedGRPC.allSatisfy { $0.count == 3 } && receivedGRPC[0] == receivedGRPC[1])
        #expect(receivedGRPC[0][0] == ModelDigest(of: Self.initial))
        #expect(Set(receivedGRPC[0]).count == 3)  // a new model every round
        #expect(
            viaGRPC.tensors.map { $0.values.map(\.bitPattern) } == inProcess.tensors.map { $0.values.map(\.bitPattern) }
        )
    }

    @Test(
        "Over gRPC a site asking again for the model it holds gets an empty answer and keeps its model",
        .timeLimit(.minutes(2)))
    func emptyAnswerForHeldModel() async throws {
        let clock = ManualClock()
        let job = JobConfiguration(jobID: "je", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: Self.initial, strategy: FedAvg(), clock: clock)
        defer { clock.advance(by: .seconds(100_000)) }
        try await Federation.with(coordinator) { federation in
            let connection = try federation.site("a")
            let run = Task { try await coordinator.run() }
            _ = try await connection.register(site: "a")
            let task = try #require(try await connection.nextTask(site: "a"))
            var none: HeldModel?
            let first = try await connection.downloadModel(for: task, maxScalars: 100, holding: &none)
            #expect(first.changed == nil && first.digest == ModelDigest(of: Self.initial))
            #expect(first.parameters == Self.initial)
            var held: HeldModel? = first
            let again = try await connection.downloadModel(for: task, maxScalars: 100, holding: &held)
            #expect(held == nil)  // taken, and built on
            #expect(again.changed == first.digest && again.digest == first.digest)
            #expect(again.parameters == Self.initial)
            await coordinator.abort(reason: "test over")
            _ = await run.result
            await connection.close()
        }
    }

    @Test("A download request offering a malformed or unknown digest gets the whole model with its digest")
    func heldMetadata() {
        #expect(FederationHandler.heldModel(["tessera-model-held": "00000000000000ff"]) == ModelDigest(value: 255))
        #expect(FederationHandler.heldModel(["tessera-model-held": "ff"]) == nil)
        #expect(FederationHandler.heldModel(["tessera-model-held": "zzzzzzzzzzzzzzzz"]) == nil)
        #expect(FederationHandler.heldModel([:]) == nil)
    }
}
