import FederationClient
import FederationCore
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// The address of the first value of `values`' storage, as a number (holding no reference to it).
func address(_ values: ArraySlice<Float>) -> Int { values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }
func address(_ values: [Float]) -> Int { values.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } }

/// Files in `folder`: none ever, spill files are anonymous.
func spillFiles(_ folder: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
}

@Suite("Coordinator memory bound: downloads from a snapshot, uploads spilled, rounds closed in place")
struct CoordinatorMemoryTests {
    /// Dyadic values: every sum and difference below is exact in float32, so "exact" means bit for bit.
    static let model = ParameterSet([ParameterTensor(name: "w", shape: [6], values: [0, 0.5, 1, 1.5, 2, 2.5]),
                                     ParameterTensor(name: "b", shape: [2], values: [4, -4])])

    func diff(_ w: [Float], _ b: [Float]) -> ParameterSet {
        ParameterSet([ParameterTensor(name: "w", shape: [6], values: w), ParameterTensor(name: "b", shape: [2], values: b)])
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
        let w = try #require(global["w"]), b = try #require(global["b"])
        #expect(address(chunks[0].values) == address(w.values))
        #expect(address(chunks[1].values) == address(w.values) + 4 * MemoryLayout<Float>.size)
        #expect(address(chunks[2].values) == address(b.values))
        try await connection.uploadResult(ResultHeader(jobID: "m1", round: 1, site: "a", sampleCount: 1),
                                          chunks: diff([1, 1, 1, 1, 1, 1], [1, 1]).chunks(maxScalars: 3))
        _ = try await run.value
        clock.advance(by: .seconds(100_000))
    }

    @Test("A received chunk is added and spilled, not kept: the coordinator holds no reference to its values")
    func chunksAreNotRetained() async throws {
        let clock = ManualClock(), work = folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let job = JobConfiguration(jobID: "m2", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
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
        #expect(await coordinator.inFlightSpillBytes["a"] == 20 + 6 * 4)
        #expect(await coordinator.spillFileCount == 1)
        #expect(spillFiles(work).isEmpty)  // anonymous: nothing to leave behind
        try await coordinator.resultChunk(site: "a", ParameterChunk(tensor: "b", shape: [2], offset: 0, values: [8, 8]))
        try await coordinator.endResult(site: "a")
        #expect(await coordinator.inFlightSpillBytes.isEmpty)
        let model = try await run.value
        #expect(await coordinator.spillFileCount == 0)
        #expect(model["w"]?.values == [1, 2.5, 4, 5.5, 7, 8.5])
        #expect(model["b"]?.values == [12, 4])
        clock.advance(by: .seconds(100_000))
    }

    @Test("A stream that breaks after spilling is taken back out exactly; spill files are voided, then closed",
          arguments: [1, 4, 8])
    func abandonRestoresExactSum(chunkScalars: Int) async throws {
        let clock = ManualClock(), work = folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let job = JobConfiguration(jobID: "m3", rounds: 1, sites: ["a", "b", "c"], minClients: 3)
        let coordinator = Coordinator(configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
                                      workDirectory: work)
        let events = await coordinator.observe()
        let connection = InProcessConnection(coordinator: coordinator)
        let run = Task { try await coordinator.run() }
        for site in ["a", "b", "c"] { _ = try #require(try await connection.nextTask(site: site)) }
        let da = diff([1, 2, 3, 4, 5, 6], [0.5, -0.5]), db = diff([-8, 0.25, 16, 2, -2, 0], [1, 1])
        let dc = diff([0.75, 0.75, -0.75, 32, 1, 1], [-2, 2])
        try await connection.uploadResult(ResultHeader(jobID: "m3", round: 1, site: "a", sampleCount: 1),
                                          chunks: da.chunks(maxScalars: chunkScalars))
        // b streams most of a result, then its connection breaks (the transport reports it).
        try await coordinator.beginResult(ResultHeader(jobID: "m3", round: 1, site: "b", sampleCount: 3))
        let partial = diff([64, 64, 64, 64, 64, 64], [64, 64]).chunks(maxScalars: chunkScalars).dropLast()
        for chunk in partial { try await coordinator.resultChunk(site: "b", chunk) }
        #expect(await coordinator.inFlightSpillBytes["b"] == partial.reduce(0) { $0 + 20 + 4 * $1.values.count })
        #expect(await coordinator.spillFileCount == 2)
        await coordinator.abandonResult(site: "b", reason: "connection reset")
        #expect(await coordinator.inFlightSpillBytes["b"] == nil)
        // c's stream starts and then restarts from scratch (a new header abandons the old stream).
        try await coordinator.beginResult(ResultHeader(jobID: "m3", round: 1, site: "c", sampleCount: 2))
        for chunk in diff([9, 9, 9, 9, 9, 9], [9, 9]).chunks(maxScalars: chunkScalars).prefix(1) {
            try await coordinator.resultChunk(site: "c", chunk)
        }
        try await connection.uploadResult(ResultHeader(jobID: "m3", round: 1, site: "c", sampleCount: 2),
                                          chunks: dc.chunks(maxScalars: chunkScalars))
        try await connection.uploadResult(ResultHeader(jobID: "m3", round: 1, site: "b", sampleCount: 3),
                                          chunks: db.chunks(maxScalars: chunkScalars))
        let model = try await run.value
        #expect(spillFiles(work).isEmpty)
        #expect(await coordinator.spillFileCount == 0)
        // Bit for bit the result of the three complete uploads alone.
        let mean = try weightedAverage([(da, 1), (db, 3), (dc, 2)])
        #expect(model == (try Self.model.adding(mean)))
        var rejected: [String] = []
        for await event in events {
            if case let .resultRejected(_, site, reason) = event { rejected.append("\(site): \(reason)") }
        }
        #expect(rejected == ["b: connection reset"])
        clock.advance(by: .seconds(100_000))
    }

    @Test("Closing a round updates the global model in its own storage")
    func closeRoundInPlace() async throws {
        let clock = ManualClock()
        let big = ParameterSet([ParameterTensor(name: "w", shape: [1 << 16], values: [Float](repeating: 1, count: 1 << 16))])
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
            let update = ParameterSet([ParameterTensor(name: "w", shape: [1 << 16], values: [Float](repeating: 0.5, count: 1 << 16))])
            try await connection.uploadResult(ResultHeader(jobID: "m4", round: round, site: "a", sampleCount: 1),
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

    @Test("An unusable work directory refuses the result with a transient error that names it")
    func unusableWorkDirectory() async throws {
        let clock = ManualClock()
        let file = folder()
        try Data("not a folder".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let job = JobConfiguration(jobID: "m5", rounds: 1, sites: ["a"], minClients: 1, roundTimeout: .seconds(60),
                                   maxRoundRetries: 0)
        let coordinator = Coordinator(configuration: job, initialModel: Self.model, strategy: FedAvg(), clock: clock,
                                      workDirectory: file + "/work")
        let run = Task { try await coordinator.run() }
        _ = try #require(try await coordinator.nextTask(site: "a"))
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
