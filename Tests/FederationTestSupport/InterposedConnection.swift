import FederationCore
import Synchronization

/// A site's connection with a test standing between it and the server: `tamper` rewrites each task the site gets
/// (a misbehaving server), `dropAt` makes the site leave at a secure-aggregation stage (its answer never arrives; the
/// server hears it go, as a decline "connection lost"), and the masked vectors the site uploads are recorded.
public final class InterposedConnection: FederationConnection {
    public let inner: any FederationConnection
    public let tamper: @Sendable (inout TaskAssignment) -> Void
    public let dropAt: SecureAggregationStage?
    /// The last masked vector each site uploaded, as it went to the server.
    public let maskedUploads = Mutex<[String: [ParameterChunk]]>([:])

    public init(
        _ inner: any FederationConnection, dropAt: SecureAggregationStage? = nil,
        tamper: @escaping @Sendable (inout TaskAssignment) -> Void = { _ in }
    ) {
        self.inner = inner
        self.dropAt = dropAt
        self.tamper = tamper
    }

    public func register(site: String) async throws(FederationError) -> String? {
        try await inner.register(site: site)
    }

    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        guard var task = try await inner.nextTask(site: site) else { return nil }
        tamper(&task)
        return task
    }

    public func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
        -> [ParameterChunk]
    {
        try await inner.downloadModel(for: task, maxScalars: maxScalars)
    }

    public func downloadParameters(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
        -> ParameterSet
    {
        try await inner.downloadParameters(for: task, maxScalars: maxScalars)
    }

    public func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        try await inner.downloadModel(for: task, maxScalars: maxScalars, holding: &held)
    }

    public func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        let stage = header.metrics[SecureAggregationStage.configKey]
        if let dropAt, stage == Double(dropAt.number) {
            let gone = ResultHeader(
                jobID: header.jobID, round: header.round, site: header.site, sampleCount: 1,
                payload: Array("connection lost".utf8))
            try await inner.uploadResult(gone, chunks: [])
            return
        }
        if stage == Double(SecureAggregationStage.mask.number) { maskedUploads.withLock { $0[header.site] = chunks } }
        try await inner.uploadResult(header, chunks: chunks)
    }

    public func heartbeat(site: String) async throws(FederationError) { try await inner.heartbeat(site: site) }
}
