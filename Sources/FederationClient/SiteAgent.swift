import FederationCore
import Foundation

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
/// in chunks. Retries transient errors with backoff and jitter; never exits on them. A result the server refuses
/// for good (too large, wrong shape, NaN/Inf) is not resent: the site logs why and waits for the next round.
public struct SiteAgent<C: Clock>: Sendable where C.Duration == Duration {
    public var site: String
    public var connection: any FederationConnection
    public var trainer: any LocalTrainer
    public var filters: FilterChain
    public var clock: C
    public var retry: RetryPolicy
    public var chunkScalars: Int
    /// Where the agent says what it could not do (a refused result); standard error by default.
    public var log: @Sendable (String) -> Void
    /// Answers statistics tasks; nil: this site takes part in training only.
    public var statistics: (any PayloadTaskHandler)?
    /// How often the site tells the server it is alive while it trains or waits (nil: never). The admin's status
    /// shows the time since the last contact.
    public var heartbeatInterval: Duration? = .seconds(30)

    public init(site: String, connection: any FederationConnection, trainer: any LocalTrainer, filters: FilterChain = FilterChain([]),
                clock: C, retry: RetryPolicy = RetryPolicy(), chunkScalars: Int = 1 << 20,
                log: @escaping @Sendable (String) -> Void = SiteLog.standardError,
                statistics: (any PayloadTaskHandler)? = nil) {
        self.site = site
        self.connection = connection
        self.trainer = trainer
        self.filters = filters
        self.clock = clock
        self.retry = retry
        self.chunkScalars = chunkScalars
        self.log = log
        self.statistics = statistics
    }

    /// Upload failures that resending the same result cannot fix.
    static var finalRefusals: Set<FederationError.Code> { [.tooLarge, .shapeMismatch, .nonFinite, .invalidConfiguration] }

    /// Runs until the job finishes.
    /// - Returns: the rounds this site contributed to.
    public func run() async throws(FederationError) -> [Int] {
        // Heartbeats beside the work, until it ends; a failed heartbeat is not an error (the next call retries).
        let beating: Task<Void, Never>? = heartbeatInterval.map { interval in
            Task { [connection, site, clock] in
                while !Task.isCancelled {
                    do { try await clock.sleep(for: interval) } catch { return }
                    try? await connection.heartbeat(site: site)
                }
            }
        }
        defer { beating?.cancel() }
        return try await work()
    }

    private func work() async throws(FederationError) -> [Int] {
        var jitter = SystemRandomNumberGenerator()
        func retrying<T: Sendable>(_ what: String, _ body: () async throws(FederationError) -> T) async throws(FederationError) -> T {
            var attempt = 0
            while true {
                do { return try await body() } catch where error.code == .transient {
                    attempt += 1
                    if let max = retry.maxAttempts, attempt >= max { throw error }
                    let unit = Double(jitter.next() >> 11) * 0x1p-53
                    let wait = retry.delay(attempt: attempt - 1, unit: unit)
                    // Said on attempts 1, 2, 4, 8, …: a site that cannot reach the server says so, without flooding.
                    if attempt & (attempt - 1) == 0 {
                        log("\(site): \(what) failed (attempt \(attempt)): \(error.message); retrying in "
                            + "\(wait.components.seconds) s. If this goes on, check that the server runs and that "
                            + "the address in the kit (or --server) reaches it")
                    }
                    try? await clock.sleep(for: wait)
                }
            }
        }
        _ = try await retrying("register") { () async throws(FederationError) in try await connection.register(site: site) }
        var rounds: [Int] = []
        // The task whose result the server refused for good: until the round moves on, the server still lists it.
        var refused: (jobID: String, round: Int)?
        var waits = 0
        while true {
            guard let task = try await retrying("next task", { () async throws(FederationError) in
                try await connection.nextTask(site: site)
            }) else { return rounds }
            if let refused, refused == (task.jobID, task.round) {
                let unit = 0.5 + Double(jitter.next() >> 11) * 0x1p-54
                try? await clock.sleep(for: retry.delay(attempt: waits, unit: unit))
                waits += 1
                continue
            }
            refused = nil
            waits = 0
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
                } catch where Self.finalRefusals.contains(error.code) {
                    log("\(site): phase \(task.round) of statistics job \(task.jobID) goes on without this site's answer, "
                        + "which the server refused: \(error)")
                    refused = (task.jobID, task.round)
                }
                continue
            }
            let global: ParameterSet
            do {
                global = try await retrying("download") { () async throws(FederationError) in
                    try await connection.downloadParameters(for: task, maxScalars: chunkScalars)
                }
            } catch where error.code == .staleRound {
                // The round closed while the model was coming (downloads are pulled range by range): next task.
                continue
            }
            let samples: Int, metrics: [String: Double]
            var diff: ParameterSet
            (diff, samples, metrics) = try await trainer.train(global: global, task: task)
            try diff.subtract(global)  // in place: the weights become the diff
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
            } catch where Self.finalRefusals.contains(error.code) {
                log("\(site): round \(task.round) of job \(task.jobID) goes on without this site's result, which the "
                    + "server refused: \(error)")
                refused = (task.jobID, task.round)
            }
        }
    }
}

/// Default destinations for `SiteAgent.log`.
public enum SiteLog {
    /// One line per message on standard error.
    public static let standardError: @Sendable (String) -> Void = { message in
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
