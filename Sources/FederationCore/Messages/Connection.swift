/// A site's view of the federation server, whatever carries it: gRPC over mutual TLS in production, a direct call
/// in tests (`InProcessConnection` in FederationServer). Sites open every exchange (hospital firewalls allow
/// outbound connections only).
public protocol FederationConnection: Sendable {
    /// Announces the site; returns the job it takes part in, or nil when there is none yet.
    func register(site: String) async throws(FederationError) -> String?
    /// Long-poll: returns the site's next task as soon as there is one, or nil when the job has finished.
    func nextTask(site: String) async throws(FederationError) -> TaskAssignment?
    /// The global model of a task, as chunks (at most `maxScalars` values each).
    func downloadModel(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk]
    /// The global model of a task, assembled as its chunks arrive (what `SiteAgent` uses: a transport that decodes
    /// each chunk straight into place never holds the model twice). The default assembles `downloadModel`'s chunks.
    func downloadParameters(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> ParameterSet
    /// The same, built in `storage`'s arrays where the names match (a previous model the site no longer uses:
    /// no fresh model-sized pages to fault in every round). The default ignores `storage`.
    func downloadParameters(
        for task: TaskAssignment, maxScalars: Int, reusing storage: consuming ParameterSet?
    ) async throws(FederationError) -> ParameterSet
    /// The model of a task, for a site holding `held` (the last model it downloaded, untouched): the server sends
    /// the change from it when it can, else the whole model, built in `held`'s arrays either way (`ModelReceiver`);
    /// returned with its digest, checked against the server's. `held` is taken (nil afterwards), and given back
    /// when the download fails before anything changed it (`ModelReceiver.reclaim`). The default downloads the
    /// whole model (`downloadParameters(reusing:)`) and computes its digest.
    /// - Throws: `.transient` when the model built does not have the digest the server announced (the site asks
    ///   again, for the whole model when `held` is spent).
    func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel
    /// Streams a result: header, chunks, end. The server validates as chunks arrive.
    func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError)
    func heartbeat(site: String) async throws(FederationError)
}

extension FederationConnection {
    public func downloadParameters(for task: TaskAssignment, maxScalars: Int) async throws(FederationError)
        -> ParameterSet
    {
        try ParameterSet(assembling: try await downloadModel(for: task, maxScalars: maxScalars))
    }

    public func downloadParameters(
        for task: TaskAssignment, maxScalars: Int, reusing storage: consuming ParameterSet?
    ) async throws(FederationError) -> ParameterSet {
        try await downloadParameters(for: task, maxScalars: maxScalars)
    }

    public func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        let model = try await downloadParameters(for: task, maxScalars: maxScalars, reusing: held.take()?.parameters)
        return HeldModel(parameters: model, digest: ModelDigest(of: model), receivedBytes: model.byteCount)
    }
}

/// What precedes a streamed result: who, for which task, its weight and metrics.
public struct ResultHeader: Sendable, Equatable {
    public var jobID: String
    public var round: Int
    public var site: String
    public var sampleCount: Int
    public var metrics: [String: Double]
    /// Opaque result data (a statistics phase response, JSON); empty for training, whose diff follows as chunks.
    public var payload: [UInt8]

    public init(
        jobID: String, round: Int, site: String, sampleCount: Int, metrics: [String: Double] = [:],
        payload: [UInt8] = []
    ) {
        self.jobID = jobID
        self.round = round
        self.site = site
        self.sampleCount = sampleCount
        self.metrics = metrics
        self.payload = payload
    }
}

extension FederationError.Code {
    /// A network or server hiccup: the site retries with backoff.
    public static let transient = FederationError.Code("transient")
    /// The job was aborted or failed.
    public static let jobFailed = FederationError.Code("job-failed")
}
