import FederationCore
import FederationMonitoring
import FederationTestSupport
import Foundation
import Synchronization
import Testing

/// A site's connection with its calls counted: what a known sequence of calls (one failing) leaves in the metrics.
@Suite("Site metrics")
struct SiteMetricsTests {
    /// A server that hands out one training task, a 6-value model, and refuses the first upload.
    final class Scripted: FederationConnection, Sendable {
        let uploads = Mutex(0)
        let task = TaskAssignment(jobID: "job-0001", round: 1, kind: .train, site: "a")

        func register(site: String) async throws(FederationError) -> String? { "job-0001" }
        func nextTask(site: String) async throws(FederationError) -> TaskAssignment? { task }
        func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
            -> [ParameterChunk]
        {
            [
                ParameterChunk(tensor: "w", shape: [6], offset: 0, values: [1, 2, 3, 4]),
                ParameterChunk(tensor: "w", shape: [6], offset: 4, values: [5, 6]),
            ]
        }
        func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
            let first = uploads.withLock { n in
                n += 1
                return n == 1
            }
            if first { throw FederationError(.transient, "the stream broke") }
        }
        func heartbeat(site: String) async throws(FederationError) {}
    }

    @Test("A download for a held model goes through the metered connection and counts the bytes that came")
    func heldModelDownload() async throws {
        let metrics = SiteMetrics()
        let connection = metrics.connection(Scripted())
        let task = try #require(try await connection.nextTask(site: "a"))
        var held: HeldModel?
        let model = try await connection.downloadModel(for: task, maxScalars: 4, holding: &held)
        #expect(model.parameters.scalarCount == 6 && model.receivedBytes == 24)
        #expect(LoopbackHTTP.samples(metrics.render())[#"tessera_site_model_bytes_total{direction="in"}"#] == 24)
    }

    @Test("Tasks by kind, model bytes in and out, failed calls by call, and the last contact are counted")
    func counts() async throws {
        let metrics = SiteMetrics(now: { Date(timeIntervalSince1970: 1_800_000_123) })
        let connection = metrics.connection(Scripted())
        _ = try await connection.register(site: "a")
        let task = try #require(try await connection.nextTask(site: "a"))
        let model = try await connection.downloadParameters(for: task, maxScalars: 4)
        #expect(model.scalarCount == 6)
        let header = ResultHeader(jobID: "job-0001", round: 1, site: "a", sampleCount: 3, payload: [1, 2])
        let diff = [ParameterChunk(tensor: "w", shape: [6], offset: 0, values: [0, 0, 0, 0, 0, 0])]
        await #expect(throws: FederationError.self) { try await connection.uploadResult(header, chunks: diff) }
        try await connection.uploadResult(header, chunks: diff)
        try await connection.heartbeat(site: "a")

        let values = LoopbackHTTP.samples(metrics.render())
        #expect(values[#"tessera_site_tasks_total{kind="train"}"#] == 1)
        #expect(values[#"tessera_site_model_bytes_total{direction="in"}"#] == 24)
        #expect(values[#"tessera_site_model_bytes_total{direction="out"}"#] == 26)
        #expect(values["tessera_site_results_sent_total"] == 1)
        #expect(values[#"tessera_site_call_failures_total{call="upload_result"}"#] == 1)
        #expect(values["tessera_site_last_contact_timestamp_seconds"] == 1_800_000_123)
    }
}
