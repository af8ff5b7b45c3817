/// The server side of the federation protocol, whatever carries it: the gRPC service (FederationGRPC) and the
/// in-process connection both forward to it. `Coordinator` (FederationServer) implements it.
///
/// A result arrives as `beginResult`, then `resultChunk` for each chunk as it arrives (so the aggregator never holds a
/// whole update), then `endResult`; a broken stream is reported with `abandonResult`, which takes its partial
/// contribution back out.
public protocol FederationService: Sendable {
    /// Announces a site; returns the job it takes part in. Throws `.unknownSite` for a stranger.
    func register(site: String) async throws(FederationError) -> String
    /// Long-poll: the site's next task as soon as there is one; nil once the job has finished or failed.
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment?
    /// The global model of a current task, in chunks of at most `maxScalars` values.
    func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk]
    /// The model of a current task as the site asking should download it: the change from the model it holds
    /// (`held`, its digest) when the service has that change in the job's `download_compression`, else the whole
    /// model; with the digest of the model built either way (`ModelDownload`). The default sends the whole `model`
    /// without a digest.
    func modelDownload(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) async throws(FederationError) -> ModelDownload
    func beginResult(_ header: ResultHeader) async throws(FederationError)
    func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError)
    func endResult(site: String) async throws(FederationError)
    func abandonResult(site: String, reason: String) async
    func heartbeat(site: String) async
    /// A call from `site` arrived (any call, before it is handled), from a client reporting `version` (empty when it
    /// does not say): what `tessera admin sites` shows. The transport calls it; the default does nothing.
    func noteContact(site: String, version: String) async
}

extension FederationService {
    public func modelDownload(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) async throws(FederationError) -> ModelDownload {
        ModelDownload(chunks: try await model(for: task, maxScalars: maxScalars))
    }

    public func noteContact(site: String, version: String) async {}
}
