import Crypto
import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// Forwards to the in-process server and keeps every result the server accepted, as it received it.
final class RecordingConnection: FederationConnection {
    let inner: InProcessConnection
    let accepted = Mutex<[(header: ResultHeader, chunks: [ParameterChunk])]>([])

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
        accepted.withLock { $0.append((header, chunks)) }
    }
    func heartbeat(site: String) async throws(FederationError) { try await inner.heartbeat(site: site) }
}

/// SHA-256 of float32 values (little-endian) then payload bytes, written out here independently of `EgressLog`.
func referenceDigest(_ values: [Float], payload: [UInt8] = []) -> String {
    var bytes: [UInt8] = []
    for v in values {
        let bits = v.bitPattern
        bytes += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
    }
    return SHA256.hash(data: bytes + payload).map { String(format: "%02x", $0) }.joined()
}

@Suite("The site's egress log")
struct EgressLogTests {
    @Test("After a round the site's log holds one record whose SHA-256 is that of what the server received")
    func oneRound() async throws {
        let clock = ManualClock()
        let initial = ParameterSet([ParameterTensor(name: "w", shape: [3], values: [0.5, -0.25, 1])])
        let job = JobConfiguration(jobID: "egress-1", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let connection = RecordingConnection(inner: InProcessConnection(coordinator: coordinator))
        let run = Task { try await coordinator.run() }
        struct Trainer: LocalTrainer {
            func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
                -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
            {
                (
                    ParameterSet([ParameterTensor(name: "w", shape: [3], values: [2, 4, 0.125])]), 1,
                    [
                        "dice": 0.5, "dp_sgd_noise_multiplier": 1.1, "dp_clip_norm": 1, "dp_epsilon_charged": 0.25,
                        "dp_delta": 1e-5,
                    ]
                )
            }
        }
        let log = try EgressLog(path: nil)
        var agent = SiteAgent(site: "a", connection: connection, trainer: Trainer(), clock: clock, chunkScalars: 2)
        agent.heartbeatInterval = nil
        agent.egressLog = log
        agent.now = { Date(timeIntervalSince1970: 1_800_000_000.25) }
        #expect(try await agent.run() == [1])
        let model = try await run.value
        clock.advance(by: .seconds(100_000))

        let received = connection.accepted.withLock { $0 }
        #expect(received.count == 1)
        let chunks = try #require(received.first?.chunks)
        #expect(chunks.count == 2)  // 3 values in chunks of at most 2
        let records = try log.records()
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record.sha256 == referenceDigest(chunks.flatMap { Array($0.values) }))
        // The same from the server's side: with one site of weight 1, the new global is initial + the diff.
        let diff = zip(model["w"]?.values ?? [], initial["w"]?.values ?? []).map { $0 - $1 }
        #expect(diff == [1.5, 4.25, -0.875])
        #expect(record.sha256 == referenceDigest(diff))
        #expect(record.job == "egress-1" && record.round == 1 && record.site == "a" && record.kind == .trainUpdate)
        let metricBytes = ["dice", "dp_sgd_noise_multiplier", "dp_clip_norm", "dp_epsilon_charged", "dp_delta"]
            .reduce(0) { $0 + $1.utf8.count + 8 }
        #expect(record.scalars == 3 && record.payloadBytes == 0 && record.bytes == 3 * 4 + metricBytes)
        #expect(record.metrics["dice"] == 0.5)
        #expect(
            record.privacy
                == EgressPrivacy(
                    mechanism: "dp-sgd", noiseMultiplier: 1.1, clipNorm: 1,
                    epsilonCharged: 0.25, delta: 1e-5))
        #expect(record.sentAt == Date(timeIntervalSince1970: 1_800_000_000.25))
    }

    @Test("An upload the server did not accept is not recorded; the same result sent again and accepted is")
    func onlyAcceptedUploads() async throws {
        /// The server turns the first upload away as stale (as after a restart); the site is asked again.
        final class StaleFirstUpload: FederationConnection {
            let inner: RecordingConnection
            let turnedAway = Mutex(false)
            init(inner: RecordingConnection) { self.inner = inner }
            func register(site: String) async throws(FederationError) -> String? {
                try await inner.register(site: site)
            }
            func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
                try await inner.nextTask(site: site)
            }
            func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
                -> [ParameterChunk]
            {
                try await inner.downloadModel(for: task, maxScalars: maxScalars)
            }
            func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
                let first = turnedAway.withLock { done in
                    defer { done = true }
                    return !done
                }
                if first { throw FederationError(.staleRound, "round \(header.round) is not current") }
                try await inner.uploadResult(header, chunks: chunks)
            }
            func heartbeat(site: String) async throws(FederationError) { try await inner.heartbeat(site: site) }
        }
        let clock = ManualClock()
        let initial = ParameterSet([ParameterTensor(name: "w", shape: [2], values: [0, 0])])
        let job = JobConfiguration(jobID: "egress-2", rounds: 1, sites: ["a"], minClients: 1)
        let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
        let recording = RecordingConnection(inner: InProcessConnection(coordinator: coordinator))
        let run = Task { try await coordinator.run() }
        let log = try EgressLog(path: nil)
        var agent = SiteAgent(
            site: "a", connection: StaleFirstUpload(inner: recording),
            trainer: FixedTrainer(
                weights: ParameterSet([
                    ParameterTensor(name: "w", shape: [2], values: [3, -1])
                ]), samples: 1),
            clock: clock, chunkScalars: 8, log: { _ in })
        agent.heartbeatInterval = nil
        agent.egressLog = log
        #expect(try await agent.run() == [1])
        _ = try await run.value
        clock.advance(by: .seconds(100_000))
        let records = try log.records()
        #expect(records.count == 1)
        #expect(recording.accepted.withLock { $0.count } == 1)
        #expect(records.first?.sha256 == referenceDigest([3, -1]))
    }

    @Test("Records persist in order, filter by job, and carry nullable privacy fields")
    func persistence() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("egress-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/site/" + EgressLog.fileName
        let chunks = [
            ParameterChunk(tensor: "w", shape: [3], offset: 0, values: [1, -2] as [Float]),
            ParameterChunk(tensor: "w", shape: [3], offset: 2, values: [0.5] as [Float]),
        ]
        do {
            let log = try EgressLog(path: path)
            let header = ResultHeader(
                jobID: "j1", round: 2, site: "a", sampleCount: 4, metrics: ["loss": 0.5],
                payload: [7, 8])
            try log.append(EgressRecord(header: header, chunks: chunks, kind: .localModel, sentAt: Date()))
            let answer = ResultHeader(
                jobID: "j2", round: 1, site: "a", sampleCount: 1,
                metrics: ["dp_mechanism_laplace": 1, "dp_epsilon_charged": 0.5],
                payload: Array("{}".utf8))
            try log.append(EgressRecord(header: answer, chunks: [], kind: .statisticsAnswer, sentAt: Date()))
        }
        let log = try EgressLog(path: path)
        let all = try log.records()
        #expect(all.map(\.job) == ["j1", "j2"])
        #expect(all[0].sha256 == referenceDigest([1, -2, 0.5], payload: [7, 8]))
        #expect(all[0].sha256 == EgressLog.digest(chunks: chunks, payload: [7, 8]))
        #expect(all[0].bytes == 3 * 4 + 2 + "loss".utf8.count + 8)
        #expect(all[0].privacy == EgressPrivacy())
        #expect(all[1].privacy == EgressPrivacy(mechanism: "laplace", epsilonCharged: 0.5))
        #expect(all[1].sha256 == referenceDigest([], payload: Array("{}".utf8)))
        #expect(try log.records(job: "j2").map(\.kind) == [.statisticsAnswer])
        #expect(try log.records(limit: 1).map(\.job) == ["j2"])
        #expect(try log.records(job: "none").isEmpty)
    }

    @Test("An egress log that cannot be opened is an error naming its path")
    func unwritable() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("egress-\(UUID().uuidString)").path
        try Data("not a folder".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        do {
            _ = try EgressLog(path: file + "/egress-log.sqlite")
            Issue.record("opened a log under a file")
        } catch {
            #expect(error.code == .egressLog && error.message.contains(file), "\(error)")
        }
    }
}
