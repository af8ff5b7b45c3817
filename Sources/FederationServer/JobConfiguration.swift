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
    /// A result's weight in the mean is its reported sample count, capped here (pipeline key
    /// `federation.max_sample_count`): one site cannot outweigh the others by claiming 2^62 samples.
    public var maxSampleCount: Int = JobConfiguration.defaultMaxSampleCount
    /// Every value of a weight diff must be finite and within ±this (pipeline key `federation.max_update_value`):
    /// with the capped weights, the round's float32 sums cannot overflow (16 sites × 10^6 × 10^6 ≪ 3.4·10^38).
    public var maxUpdateMagnitude: Float = JobConfiguration.defaultMaxUpdateMagnitude

    /// Client-level differential privacy (pipeline `federation.client_dp`): results count with equal weights; with
    /// `server` noise placement every result must have an L2 norm of at most `clipNorm` (a larger one is refused)
    /// and the server adds Gaussian noise to the mean before it updates the model (with `sites` placement each
    /// result already carries its share, which also hides its norm). Nil: none.
    public var clientDP: ClientDPSettings?
    /// Secure aggregation of the updates (`federation.secure_aggregation`); nil: results arrive in the clear (inside
    /// TLS) and are summed as they stream in.
    public var secureAggregation: SecureAggregationSettings?

    /// How a round's diffs become one (pipeline `federation.robust_aggregation`): the rule (mean, median, trimmed
    /// mean, Krum), a norm bound on each diff, the weighting and the declared sample counts. The default is FedAvg's
    /// sample-weighted mean, streamed. See `RobustAggregation` for what each setting costs the server.
    public var robustAggregation = RobustAggregation()
    /// Largest size of the diffs a rule that holds every site's diff may keep (sites × model parameters × 4 bytes),
    /// checked when the job starts (pipeline limit `max_held_update_bytes`).
    public var maxHeldUpdateBytes = RobustAggregation.defaultMaxHeldUpdateBytes
    /// How the sites download the model after the first round (`federation.download_compression`): float32, the
    /// default, sends the whole model every round; fp16, bf16 or int8 blocks send the encoded change from the model
    /// a site holds, with error feedback on the server (`ModelBroadcast`).
    public var downloadEncoding = UpdateEncoding.float32

    public static let defaultMaxSampleCount = 1_000_000
    public static let defaultMaxUpdateMagnitude: Float = 1e6
    /// The safetensors `__metadata__` of every model file the job writes (each round's checkpoint, the downloaded
    /// `global.safetensors`, the sites' local models of the cross-site evaluation): what rebuilds the model from the
    /// file alone (architecture, channels, classes, patch and window, preprocessing; the job factory fills it from
    /// the pipeline). The server adds `job` and `round` (or `site`); it never reads these keys back.
    public var modelMetadata: [String: String] = [:]
    /// Entries added to every task's configuration (e.g. `pipeline`: the pipeline YAML the sites run). The
    /// strategy's own entries win on a clash.
    public var taskConfig: [String: ConfigValue] = [:]

    public init(
        jobID: String, rounds: Int, sites: [String], minClients: Int, roundTimeout: Duration = .seconds(600),
        gracePeriod: Duration = .seconds(5), maxRoundRetries: Int = 2, maxUpdateBytes: Int = 1 << 30
    ) {
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
        if case .int8Blocks(let b) = downloadEncoding, !UpdateEncoding.blockSizes.contains(b) {
            throw FederationError(
                .invalidConfiguration,
                "the download encoding's int8 block size is \(b); it must be within \(UpdateEncoding.blockSizes)")
        }
        guard rounds >= 1 else {
            throw FederationError(.invalidConfiguration, "rounds must be at least 1, is \(rounds)")
        }
        guard !sites.isEmpty else { throw FederationError(.invalidConfiguration, "the job lists no sites") }
        if let twice = Dictionary(grouping: sites, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw FederationError(.invalidConfiguration, "federation.sites lists '\(twice)' more than once")
        }
        guard minClients >= 1, minClients <= sites.count else {
            throw FederationError(
                .invalidConfiguration,
                "min_clients must be between 1 and the \(sites.count) sites, is \(minClients)")
        }
        guard maxRoundRetries >= 0, maxUpdateBytes > 0 else {
            throw FederationError(
                .invalidConfiguration,
                "max_round_retries must be at least 0 and the update limit "
                    + "positive")
        }
        guard maxSampleCount >= 1, maxUpdateMagnitude.isFinite, maxUpdateMagnitude > 0 else {
            throw FederationError(
                .invalidConfiguration,
                "max_sample_count must be at least 1 and max_update_value "
                    + "positive and finite")
        }
        if let dp = clientDP {
            guard dp.clipNorm.isFinite, dp.clipNorm > 0, dp.noiseMultiplier.isFinite, dp.noiseMultiplier > 0 else {
                throw FederationError(
                    .invalidConfiguration,
                    "client_dp.clip_norm and noise_multiplier must be positive "
                        + "and finite")
            }
        }
        if let secure = secureAggregation {
            try secure.validate()
            guard clientDP?.noise != .server else {
                throw FederationError(
                    .invalidConfiguration,
                    "client_dp.noise: server needs each site's clipped update, which secure aggregation hides; use "
                        + "noise: sites (each site adds its share before masking)")
            }
            guard sites.count >= 2, minClients >= 2 else {
                throw FederationError(
                    .invalidConfiguration, "secure aggregation needs at least 2 sites and min_clients ≥ 2")
            }
            let threshold = secure.threshold(participants: sites.count)
            let holders = secure.holders(participants: sites.count)
            guard threshold <= holders, 2 * threshold > holders else {
                throw FederationError(
                    .invalidConfiguration,
                    "secure_aggregation.threshold \(threshold) with \(holders) share holders per site: need "
                        + "holders/2 < threshold ≤ holders")
            }
        }
        try robustAggregation.validate(minClients: minClients, sites: sites, clientDP: clientDP != nil)
        try robustAggregation.checkCompatible(secureAggregation: secureAggregation != nil)
        guard roundTimeout > .zero, gracePeriod >= .zero else {
            throw FederationError(.invalidConfiguration, "round_timeout must be positive and grace_period not negative")
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
    /// Saves the state after `completedRound`: the global model, the strategy's own state (server-optimiser moments;
    /// empty for most strategies) and the round records. `modelMetadata` goes into the model file's `__metadata__`
    /// (`JobConfiguration.modelMetadata`).
    func save(
        jobID: String, completedRound: Int, model: ParameterSet, serverState: ParameterSet,
        records: [RoundRecord], modelMetadata: [String: String]) async throws(FederationError)
    /// The last saved state, nil when there is none.
    func load(jobID: String) async throws(FederationError) -> SavedCheckpoint?
}

/// What a `CheckpointStore` gives back: a job's state after its last checkpointed round.
public struct SavedCheckpoint: Sendable {
    public var completedRound: Int
    public var model: ParameterSet
    public var serverState: ParameterSet
    public var records: [RoundRecord]

    public init(
        completedRound: Int, model: ParameterSet, serverState: ParameterSet = ParameterSet(),
        records: [RoundRecord]
    ) {
        self.completedRound = completedRound
        self.model = model
        self.serverState = serverState
        self.records = records
    }
}

/// A checkpoint store in memory (tests, simulations without disk).
public actor InMemoryCheckpointStore: CheckpointStore {
    var saved: [String: SavedCheckpoint] = [:]
    public init() {}
    public func save(
        jobID: String, completedRound: Int, model: ParameterSet, serverState: ParameterSet,
        records: [RoundRecord], modelMetadata: [String: String]
    ) async throws(FederationError) {
        saved[jobID] = SavedCheckpoint(
            completedRound: completedRound, model: model, serverState: serverState,
            records: records)
    }
    public func load(jobID: String) async throws(FederationError) -> SavedCheckpoint? { saved[jobID] }
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
