import FederationCore
import Synchronization

/// Wraps a `FederationService` and records, server-side, what reached it through the transport: the sites seen and
/// the largest chunk (in values) of any result message.
final class RecordingService: FederationService {
    private struct State {
        var sites: [String] = []
        var largestChunk = 0
        var chunkCount = 0
        var scalarsReceived = 0
        var modelCalls = 0
    }

    let inner: any FederationService
    private let state = Mutex(State())

    init(_ inner: any FederationService) { self.inner = inner }

    var sites: [String] { state.withLock { $0.sites } }
    var largestChunk: Int { state.withLock { $0.largestChunk } }
    var chunkCount: Int { state.withLock { $0.chunkCount } }
    var scalarsReceived: Int { state.withLock { $0.scalarsReceived } }
    /// Calls of `model(for:)`: one per DownloadModel call (a range of the model each).
    var modelCalls: Int { state.withLock { $0.modelCalls } }

    private func saw(_ site: String) { state.withLock { $0.sites.append(site) } }

    func register(site: String) async throws(FederationError) -> String {
        saw(site)
        return try await inner.register(site: site)
    }

    func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        saw(site)
        return try await inner.nextTask(site: site)
    }

    func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        saw(task.site)
        state.withLock { $0.modelCalls += 1 }
        return try await inner.model(for: task, maxScalars: maxScalars)
    }

    func beginResult(_ header: ResultHeader) async throws(FederationError) {
        saw(header.site)
        try await inner.beginResult(header)
    }

    func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError) {
        state.withLock {
            $0.largestChunk = max($0.largestChunk, chunk.valueCount)
            $0.chunkCount += 1
            $0.scalarsReceived += chunk.valueCount
        }
        try await inner.resultChunk(site: site, chunk)
    }

    func endResult(site: String) async throws(FederationError) { try await inner.endResult(site: site) }
    func abandonResult(site: String, reason: String) async { await inner.abandonResult(site: site, reason: reason) }
    func heartbeat(site: String) async {
        saw(site)
        await inner.heartbeat(site: site)
    }
}
