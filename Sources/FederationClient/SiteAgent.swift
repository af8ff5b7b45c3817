import FederationCore

/// The site's local work for a task: train from the global model on the site's own data.
public protocol LocalTrainer: Sendable {
    /// - Returns: the locally trained weights (same structure as `global`), the number of training samples, metrics.
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
}

/// The site's answer to a task that carries a payload instead of a model (a statistics query's phase).
public protocol PayloadTaskHandler: Sendable {
    /// - Returns: the result payload and metrics for the server.
    func respond(to task: TaskAssignment) async throws(FederationError) -> (payload: [UInt8], metrics: [String: Double])
}

/// Exponential backoff with full jitter (AWS architecture blog, 2015): wait uniform(0, min(cap, base·2ⁿ)).
public struct RetryPolicy: Sendable {
    public var base: Duration
    public var cap: Duration
    /// Attempts before a transient error is given up (nil: never, as a site client should).
    public var maxAttempts: Int?

    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(30), maxAttempts: Int? = nil) {
        self.base = base
        self.cap = cap
        self.maxAttempts = maxAttempts
    }

    public func delay(attempt: Int, unit: Double) -> Duration {
        let exponent = min(attempt, 30)
        let ceiling = min(cap, base * (1 << exponent))
        return ceiling * unit
    }
}

/// A site client: registers, long-polls for tasks, trains, and sends weight diffs through the site's filter chain,
/// in chunks. Retries transient errors with backoff and jitter; never exits on them.
public struct SiteAgent<C: Clock>: Sendable where C.Duration == Duration {
    public var site: String
    public var connection: any FederationConnection
    public var trainer: any LocalTrainer
    public var filters: FilterChain
    public var clock: C
    public var retry: RetryPolicy
    public var chunkScalars: Int
    /// Answers statistics tasks; nil: this site takes part in training only.
    public var statistics: (any PayloadTaskHandler)?

    public init(site: String, connection: any FederationConnection, trainer: any LocalTrainer, filters: FilterChain = FilterChain([]),
                clock: C, retry: RetryPolicy = RetryPolicy(), chunkScalars: Int = 1 << 20,
                statistics: (any PayloadTaskHandler)? = nil) {
        self.site = site
        self.connection = connection
        self.trainer = trainer
        self.filters = filters
        self.clock = clock
        self.retry = retry
        self.chunkScalars = chunkScalars
        self.statistics = statistics
    }

    /// Runs until the job finishes.
    /// - Returns: the rounds this site contributed to.
    public func run() async throws(FederationError) -> [Int] {
        var jitter = SystemRandomNumberGenerator()
        func retrying<T: Sendable>(_ what: String, _ body: () async throws(FederationError) -> T) async throws(FederationError) -> T {
            var attempt = 0
            while true {
                do { return try await body() } catch where error.code == .transient {
                    attempt += 1
                    if let max = retry.maxAttempts, attempt >= max { throw error }
                    let unit = Double(jitter.next() >> 11) * 0x1p-53
                    try? await clock.sleep(for: retry.delay(attempt: attempt - 1, unit: unit))
                }
            }
        }
        _ = try await retrying("register") { () async throws(FederationError) in try await connection.register(site: site) }
        var rounds: [Int] = []
        while true {
            guard let task = try await retrying("next task", { () async throws(FederationError) in
                try await connection.nextTask(site: site)
            }) else { return rounds }
            if task.kind == .statistics {
                guard let statistics else {
                    throw FederationError(.invalidConfiguration, "the server asks \(site) for statistics, but this client "
                                          + "was started without a statistics handler")
                }
                let (payload, metrics) = try await statistics.respond(to: task)
                let header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: 1,
                                          metrics: metrics, payload: payload)
                do {
                    try await retrying("upload") { () async throws(FederationError) in
                        try await connection.uploadResult(header, chunks: [])
                    }
                    rounds.append(task.round)
                } catch where error.code == .staleRound {
                    continue
                }
                continue
            }
            let chunks = try await retrying("download") { () async throws(FederationError) in
                try await connection.downloadModel(for: task, maxScalars: chunkScalars)
            }
            let global = try ParameterSet(assembling: chunks)
            let (weights, samples, metrics) = try await trainer.train(global: global, task: task)
            let diff = try weights.subtracting(global)
            var update = ModelUpdate(jobID: task.jobID, round: task.round, site: site, sampleCount: samples, diff: diff, metrics: metrics)
            update = try await filters.process(update, context: FilterContext(site: site, jobID: task.jobID, round: task.round))
            let header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: update.sampleCount,
                                      metrics: update.metrics)
            let outgoing = update.diff.chunks(maxScalars: chunkScalars)
            do {
                try await retrying("upload") { () async throws(FederationError) in
                    try await connection.uploadResult(header, chunks: outgoing)
                }
                rounds.append(task.round)
            } catch where error.code == .staleRound {
                continue  // the round closed without us: take the next task
            }
        }
    }
}
