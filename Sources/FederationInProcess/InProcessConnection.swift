import FederationCore

/// The in-memory twin of the gRPC transport: a site talks to a coordinator in the same process through the same
/// `FederationConnection` protocol, so the runtime's logic is tested without sockets. Production never uses it.
public struct InProcessConnection: FederationConnection {
    public let coordinator: any FederationService

    public init(coordinator: any FederationService) { self.coordinator = coordinator }

    public func register(site: String) async throws(FederationError) -> String? {
        try await coordinator.register(site: site)
    }

    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await coordinator.nextTask(site: site)
    }

    public func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
        -> [ParameterChunk]
    {
        try await coordinator.model(for: task, maxScalars: maxScalars)
    }

    public func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        try await coordinator.beginResult(header)
        for chunk in chunks { try await coordinator.resultChunk(site: header.site, chunk) }
        try await coordinator.endResult(site: header.site)
    }

    public func heartbeat(site: String) async throws(FederationError) { await coordinator.heartbeat(site: site) }
}
