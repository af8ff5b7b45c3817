/// What a running job tells observers (progress display, tests, the admin's `watch`) as it runs.
public enum JobEvent: Sendable, Equatable {
    case roundStarted(round: Int, attempt: Int, sites: [String])
    case resultAccepted(round: Int, site: String, sampleCount: Int, metrics: [String: Double])
    case resultRejected(round: Int, site: String, reason: String)
    /// The site declined its task of `round`: its own policy or privacy budget refuses it (`reason`, in the site's
    /// words). It does not answer that round.
    case siteDeclined(round: Int, site: String, reason: String)
    /// `min_clients` results are in: the round closes when the grace period has passed (or every site answered).
    case gracePeriodStarted(round: Int, results: Int)
    case roundClosed(round: Int, participants: [String], reason: String)
    case roundRetried(round: Int, attempt: Int, reason: String)
    /// Training is over; every site is asked for its last local model, then each model is evaluated at every site.
    case crossSiteStarted(sites: [String])
    /// A site's local model arrived and is stored for the evaluations.
    case localModelReceived(site: String)
    /// `site` evaluated `model` ("global" or the site that trained it) on its held-out data.
    case crossSiteEvaluated(model: String, site: String, metrics: [String: Double])
    case jobFinished
    case jobFailed(reason: String)

    /// True for the last event of a job.
    public var isTerminal: Bool {
        switch self {
        case .jobFinished, .jobFailed: true
        default: false
        }
    }
}

/// What a job does: train a model round by round, or answer a cohort-statistics query.
public enum JobKind: String, Sendable, Codable, Equatable { case training, statistics }

/// Where a job is in its life. `queued` → `running` → `finished` | `failed` | `aborted`.
public enum JobState: String, Sendable, Codable, Equatable {
    case queued, running, finished, failed, aborted

    public var isOver: Bool { self == .finished || self == .failed || self == .aborted }
}

/// What the server knows of one site during a job.
public struct SiteState: Sendable, Equatable, Codable {
    public var site: String
    /// Seconds since the server last heard from the site; nil when never.
    public var secondsSinceSeen: Double?
    /// Round of the site's last accepted result (0: none yet).
    public var lastRound: Int
    public var lastMetrics: [String: Double]

    public init(site: String, secondsSinceSeen: Double?, lastRound: Int, lastMetrics: [String: Double]) {
        self.site = site
        self.secondsSinceSeen = secondsSinceSeen
        self.lastRound = lastRound
        self.lastMetrics = lastMetrics
    }
}

/// One job as the admin sees it (`tessera admin status`).
public struct JobSummary: Sendable, Equatable, Codable {
    public var jobID: String
    public var name: String
    public var kind: JobKind
    public var state: JobState
    public var rounds: Int
    public var completedRounds: Int
    public var sites: [String]
    /// Why the job failed or was aborted (empty otherwise).
    public var reason: String
    /// The admin (certificate CN) who submitted it.
    public var submittedBy: String
    /// ISO 8601, UTC.
    public var submittedAt: String
    public var finishedAt: String
    public var siteStates: [SiteState]

    public init(
        jobID: String, name: String, kind: JobKind, state: JobState, rounds: Int, completedRounds: Int,
        sites: [String], reason: String = "", submittedBy: String, submittedAt: String, finishedAt: String = "",
        siteStates: [SiteState] = []
    ) {
        self.jobID = jobID
        self.name = name
        self.kind = kind
        self.state = state
        self.rounds = rounds
        self.completedRounds = completedRounds
        self.sites = sites
        self.reason = reason
        self.submittedBy = submittedBy
        self.submittedAt = submittedAt
        self.finishedAt = finishedAt
        self.siteStates = siteStates
    }
}

/// A file a job produced (global model, metrics, statistics result), by plain name and local path on the server.
public struct JobFile: Sendable, Equatable {
    public var name: String
    public var path: String

    public init(name: String, path: String) {
        self.name = name
        self.path = path
    }
}

/// The admin side of the server, whatever carries it. The gRPC `Admin` service decides first whether the caller's
/// certificate allows the call (`AdminPolicy`) and records every call with `audit`. `JobManager` (FederationServer)
/// implements it.
public protocol AdminService: Sendable {
    /// Validates and queues a job from a pipeline YAML. Returns its id.
    /// - Throws: `.invalidConfiguration` naming what is wrong with the pipeline.
    func submit(pipeline: String, name: String, by admin: String) async throws(FederationError) -> String
    /// One job, or all (nil), oldest first. Throws `.unknownJob` for an id the server does not know.
    func status(jobID: String?) async throws(FederationError) -> [JobSummary]
    /// Stops a queued or running job. Throws `.unknownJob`, or `.invalidConfiguration` for a job that is over.
    func abort(jobID: String, by admin: String) async throws(FederationError)
    /// The job's files so far (the latest global model, metrics, results).
    func files(jobID: String) async throws(FederationError) -> [JobFile]
    /// The job's events from now on, ending with the job (at once for a job that is over).
    func events(jobID: String) async throws(FederationError) -> AsyncStream<JobEvent>
    /// The sites heard from since the server started, by name.
    func sites() async -> [SiteStatus]
    /// The job's entries in the audit log (its admin calls, states and events), oldest first.
    /// Throws `.unknownJob` for an id the server does not know.
    func log(jobID: String) async throws(FederationError) -> [AuditEntry]
    /// Appends an admin call's entry to the audit log. A log that cannot be written is said in the server's log; the
    /// call itself is not undone.
    func audit(_ entry: AuditEntry) async
}

extension FederationError.Code {
    /// No job with that id on this server.
    public static let unknownJob = FederationError.Code("unknown-job")
}
