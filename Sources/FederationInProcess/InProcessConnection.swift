import FederationCore

/// The in-memory twin of the gRPC transport: a site talks to a coordinator in the same process through the same
/// `FederationConnection` protocol, so the runtime's logic is tested without sockets. Production never uses it. Like
/// the gRPC transport's interceptors, it tells the service of each call (`noteContact`) with this build's version.
public struct InProcessConnection: FederationConnection {
    public let coordinator: any FederationService

    public init(coordinator: any FederationService) { self.coordinator = coordinator }

    public func register(site: String) async throws(FederationError) -> String? {
        await coordinator.noteContact(site: site, version: TesseraVersion.current)
        return try await coordinator.register(site: site)
    }

    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        await coordinator.noteContact(site: site, version: TesseraVersion.current)
        return try await coordinator.nextTask(site: site)
    }

    public func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
        -> [ParameterChunk]
    {
        await coordinator.noteContact(site: task.site, version: TesseraVersion.current)
        return try await coordinator.model(for: task, maxScalars: maxScalars)
    }

    public func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        await coordinator.noteContact(site: task.site, version: TesseraVersion.current)
        var receiver = ModelReceiver(holding: held.take())
        do {
            let download = try await coordinator.modelDownload(
                for: task, maxScalars: maxScalars, held: receiver.offered)
            try receiver.begin(base: download.base, digest: download.digest)
            for chunk in download.chunks { try receiver.append(chunk) }
        } catch {
            held = receiver.reclaim()
            throw error
        }
        return try receiver.finish()
    }

    public func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        await coordinator.noteContact(site: header.site, version: TesseraVersion.current)
        try await coordinator.beginResult(header)
        for chunk in chunks { try await coordinator.resultChunk(site: header.site, chunk) }
        try await coordinator.endResult(site: header.site)
    }

    public func heartbeat(site: String) async throws(FederationError) {
        await coordinator.noteContact(site: site, version: TesseraVersion.current)
        await coordinator.heartbeat(site: site)
    }
}
