import FederationCore

/// How a job runs: who takes part, how many rounds, when a round closes.
public struct JobConfiguration: Sendable {
    public var jobID: String
    public var rounds: Int
    /// Expected participants (site names = certificate common names).
    public var sites: [String]
    /// A round needs at least this many valid results.
    public var minClients: Int
    /// A round closes at this deadline with ≥ minClients results, or is retried.
    public var roundTimeout: Duration
    /// Once minClients results are in, wait this long for stragglers before closing.
    public var gracePeriod: Duration
    /// Retries of a round that misses minClients; then the job fails with a clear status.
    public var maxRoundRetries: Int
    /// Largest accepted result payload, bytes.
    public var maxUpdateBytes: Int

    public init(jobID: String, rounds: Int, sites: [String], minClients: Int, roundTimeout: Duration = .seconds(600),
                gracePeriod: Duration = .seconds(5), maxRoundRetries: Int = 2, maxUpdateBytes: Int = 1 << 30) {
        self.jobID = jobID
        self.rounds = rounds
        self.sites = sites
        self.minClients = minClients
        self.roundTimeout = roundTimeout
        self.gracePeriod = gracePeriod
        self.maxRoundRetries = maxRoundRetries
        self.maxUpdateBytes = maxUpdateBytes
    }

    public func validate() throws(FederationError) {
        guard rounds >= 1 else { throw FederationError(.invalidConfiguration, "rounds must be at least 1, is \(rounds)") }
        guard !sites.isEmpty, Set(sites).count == sites.count else {
            throw FederationError(.invalidConfiguration, "the job needs a list of distinct sites")
        }
        guard minClients >= 1, minClients <= sites.count else {
            throw FederationError(.invalidConfiguration, "min_clients must be between 1 and the \(sites.count) sites, is \(minClients)")
        }
    }
}

/// What the coordinator tells observers (progress display, tests, the admin API) as the job runs.
public enum JobEvent: Sendable, Equatable {
    case roundStarted(round: Int, attempt: Int, sites: [String])
    case resultAccepted(round: Int, site: String, sampleCount: Int, metrics: [String: Double])
    case resultRejected(round: Int, site: String, reason: String)
    /// `min_clients` results are in: the round closes when the grace period has passed (or every site answered).
    case gracePeriodStarted(round: Int, results: Int)
    case roundClosed(round: Int, participants: [String], reason: String)
    case roundRetried(round: Int, attempt: Int, reason: String)
    case jobFinished
    case jobFailed(reason: String)
}

/// The record of one closed round.
public struct RoundRecord: Sendable, Equatable {
    public var round: Int
    public var attempt: Int
    public var participants: [String]
    public var metrics: [String: [String: Double]]
    public var closedBy: String
}

/// Where the coordinator keeps its state so a restarted server resumes (SQLite + safetensors in production).
public protocol CheckpointStore: Sendable {
    func save(jobID: String, completedRound: Int, model: ParameterSet, records: [RoundRecord]) async throws(FederationError)
    func load(jobID: String) async throws(FederationError) -> (completedRound: Int, model: ParameterSet, records: [RoundRecord])?
}

/// A checkpoint store in memory (tests, simulations without disk).
public actor InMemoryCheckpointStore: CheckpointStore {
    var saved: [String: (Int, ParameterSet, [RoundRecord])] = [:]
    public init() {}
    public func save(jobID: String, completedRound: Int, model: ParameterSet, records: [RoundRecord]) async throws(FederationError) {
        saved[jobID] = (completedRound, model, records)
    }
    public func load(jobID: String) async throws(FederationError) -> (completedRound: Int, model: ParameterSet, records: [RoundRecord])? {
        saved[jobID].map { ($0.0, $0.1, $0.2) }
    }
}
