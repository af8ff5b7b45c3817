import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Testing

@Suite("Compressed updates end to end over the in-process transport: sites encode, the server decodes and averages")
struct CompressedUpdateTests {
    static let count = 300
    static let targets: [String: (values: [Float], samples: Int)] = [
        "a": ((0..<count).map { Float($0 % 23) * 0.011 - 0.1 }, 1),
        "b": ((0..<count).map { Float(($0 * 7) % 31) * -0.003 + 0.02 }, 2),
        "c": ((0..<count).map { Float(($0 * 13) % 17) * 0.05 }, 1),
    ]

    @Test(
        "One round: the global model is the sample-weighted mean of what the sites' encodings decode to",
        arguments: [UpdateEncoding.float16, .bfloat16, .int8Blocks(blockSize: 16)])
    func roundTrip(encoding: UpdateEncoding) async throws {
        let clock = ManualClock()
        let zero = ParameterSet([
            ParameterTensor(name: "w", shape: [Self.count], values: .init(repeating: 0, count: Self.count))
        ])
        var job = JobConfiguration(jobID: "jc", rounds: 1, sites: ["a", "b", "c"], minClients: 3)
        job.taskConfig = encoding.taskConfig
        let coordinator = Coordinator(configuration: job, initialModel: zero, strategy: FedAvg(), clock: clock)
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        var agents: [Task<[Int], any Error>] = []
        for (site, target) in Self.targets {
            var agent = SiteAgent(
                site: site, connection: connection,
                trainer: JumpTrainer(target: target.values, samples: target.samples), clock: clock,
                chunkScalars: 100, log: { _ in })
            agent.heartbeatInterval = nil
            let frozen = agent
            agents.append(Task { try await frozen.run() })
        }
        let model = try await run.value
        for a in agents { #expect(try await a.value == [1]) }
        // The naive reference: each target encoded and decoded on its own (zero residual in round 1), weighted.
        var expected = [Double](repeating: 0, count: Self.count)
        for (_, target) in Self.targets {
            var decoded: [Float] = []
            for start in stride(from: 0, to: Self.count, by: 96) {  // chunks of whole blocks of 16 (≤ 100)
                let piece = Array(target.values[start..<min(start + 96, Self.count)])
                decoded += piece.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }.decoded()
            }
            for i in 0..<Self.count { expected[i] += Double(target.samples) * Double(decoded[i]) / 4 }
        }
        let got = try #require(model["w"]?.values)
        for i in 0..<Self.count { #expect(abs(Double(got[i]) - expected[i]) <= 1e-6, "value \(i)") }
        clock.advance(by: .seconds(100_000))
    }
}
