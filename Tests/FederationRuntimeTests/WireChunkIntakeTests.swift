import FederationCore
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// Results whose chunks are still in their messages (`ParameterChunk.inMessage`, as the gRPC server reads them) go
/// through the coordinator exactly as the same chunks copied out: same mean, bit for bit, and the same refusals.
@Suite("Coordinator intake of chunks in their message: same sums and refusals as decoded chunks")
struct WireChunkIntakeTests {
    static let count = 700

    static func target(_ seed: Int) -> [Float] {
        (0..<count).map { Float((($0 + 1) * (7 + seed)) % 61) * 0.0037 - 0.1 }
    }

    /// `x` as chunks of at most 256 values in `encoding`, each in a message of its own (values at an odd offset).
    static func wireChunks(_ x: [Float], _ encoding: UpdateEncoding) throws -> [ParameterChunk] {
        try stride(from: 0, to: x.count, by: 256).map { start in
            let piece = Array(x[start..<min(start + 256, x.count)])
            let bytes: [UInt8] =
                encoding == .float32
                ? piece.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                : Array(piece.withUnsafeBufferPointer { EncodedValues(encoding: encoding, values: $0) }.bytes)
            let message = [0x01] + bytes
            let wire = try WireValues(
                encoding: encoding, count: piece.count, storage: message, range: 1..<message.count, maxCount: 1 << 17)
            return ParameterChunk(tensor: "w", shape: [count], offset: start, inMessage: wire)
        }
    }

    /// One round with sites a (2 samples) and b (1 sample) sending `chunks(site)`; the global model, or the error
    /// of the first refused chunk.
    static func round(
        _ id: String, maxUpdate: Float = JobConfiguration.defaultMaxUpdateMagnitude,
        _ chunks: (String) throws -> [ParameterChunk]
    ) async throws -> Result<[Float], FederationError> {
        let clock = ManualClock()
        defer { clock.advance(by: .seconds(100_000)) }
        var job = JobConfiguration(jobID: id, rounds: 1, sites: ["a", "b"], minClients: 2)
        job.maxUpdateMagnitude = maxUpdate
        let zero = ParameterSet([ParameterTensor(name: "w", shape: [count], values: .init(repeating: 0, count: count))])
        let coordinator = Coordinator(configuration: job, initialModel: zero, strategy: FedAvg(), clock: clock)
        let run = Task { try await coordinator.run() }
        for (site, samples) in [("a", 2), ("b", 1)] {
            _ = try #require(try await coordinator.nextTask(site: site))
            try await coordinator.beginResult(ResultHeader(jobID: id, round: 1, site: site, sampleCount: samples))
            do {
                for chunk in try chunks(site) { try await coordinator.resultChunk(site: site, chunk) }
            } catch let error as FederationError {
                run.cancel()
                return .failure(error)
            }
            try await coordinator.endResult(site: site)
        }
        return .success(try #require(try await run.value["w"]?.values))
    }

    @Test(
        "The mean of results in their messages equals that of the same values copied out, bit for bit",
        arguments: [UpdateEncoding.float32, .float16, .bfloat16, .int8Blocks(blockSize: 16)])
    func sameMean(encoding: UpdateEncoding) async throws {
        let seeds = ["a": 1, "b": 2]
        let inPlace = try await Self.round("w1") { try Self.wireChunks(Self.target(seeds[$0]!), encoding) }
        let copied = try await Self.round("w2") {
            try Self.wireChunks(Self.target(seeds[$0]!), encoding).map { $0.materialized() }
        }
        let got = try inPlace.get()
        #expect(got.map(\.bitPattern) == (try copied.get()).map(\.bitPattern))
        // And the naive reference: decoded values weighted 2:1.
        let a = try Self.wireChunks(Self.target(1), encoding).flatMap { try #require($0.inMessage).decoded() }
        let b = try Self.wireChunks(Self.target(2), encoding).flatMap { try #require($0.inMessage).decoded() }
        for i in 0..<Self.count {
            #expect(abs(Double(got[i]) - (2 * Double(a[i]) + Double(b[i])) / 3) <= 1e-7, "value \(i)")
        }
    }

    @Test(
        "A value beyond max_update_value or not finite is refused with the same error in its message or copied out",
        arguments: [UpdateEncoding.float32, .float16, .bfloat16, .int8Blocks(blockSize: 16)])
    func sameRefusals(encoding: UpdateEncoding) async throws {
        for bad: Float in [0.75, .infinity, .nan] {
            var x = Self.target(1)
            x[300] = bad  // in the second chunk, after a first one was added
            if encoding.name == "int8", !bad.isFinite { continue }  // a site's int8 never encodes NaN or Inf
            let inPlace = try await Self.round("r1", maxUpdate: 0.5) {
                try Self.wireChunks($0 == "a" ? x : Self.target(2), encoding)
            }
            let copied = try await Self.round("r2", maxUpdate: 0.5) {
                try Self.wireChunks($0 == "a" ? x : Self.target(2), encoding).map { $0.materialized() }
            }
            guard case .failure(let e1) = inPlace, case .failure(let e2) = copied else {
                Issue.record("\(encoding) \(bad) accepted")
                continue
            }
            // fp16 and bf16 saturate ±Inf to their largest finite value: too large rather than not finite.
            let sent = try #require(try Self.wireChunks(x, encoding)[1].inMessage).decoded()[300 - 256]
            #expect(e1.code == e2.code && e1.code == (sent.isFinite ? .tooLarge : .nonFinite), "\(e1)")
            #expect(e1.message.replacingOccurrences(of: "r1", with: "r2") == e2.message)
            #expect(e1.message.contains("element 300"), "\(e1.message)")
        }
    }
}
