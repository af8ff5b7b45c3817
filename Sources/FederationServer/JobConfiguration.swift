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
    /// Entries added to every task's configuration (e.g. `pipeline`: the pipeline YAML the sites run). The
    /// strategy's own entries win on a clash.
    public var taskConfig: [String: ConfigValue] = [:]

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

/// The record of one closed round.
public struct RoundRecord: Sendable, Equatable, Codable {
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

/// Where a running job is (for the admin's status).
public struct JobProgress: Sendable, Equatable {
    public var completedRounds: Int
    /// The round under way (0 when none).
    public var currentRound: Int
    public var siteStates: [SiteState]

    public init(completedRounds: Int, currentRound: Int, siteStates: [SiteState]) {
        self.completedRounds = completedRounds
        self.currentRound = currentRound
        self.siteStates = siteStates
    }
}
