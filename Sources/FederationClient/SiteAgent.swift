import FederationCore
import Foundation
import Offload

/// The site's local work for a task: train from the global model on the site's own data.
public protocol LocalTrainer: Sendable {
    /// - Returns: the locally trained weights (same structure as `global`), the number of training samples, metrics.
    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    /// Cross-site evaluation: the metrics of `weights` (a model the server sent: the global model or another
    /// site's) on this site's held-out data, e.g. `dice`, `dice_class_1`, `validation_patients`.
    func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String: Double]
    /// The state-dict names of the normalisation layers of the task's model (`Module.normalizationVariables`): what
    /// the site keeps to itself when the job asks for FedBN (`config["personalization"] == "fedbn"`).
    func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String]
}

extension LocalTrainer {
    /// A trainer that cannot evaluate: the site says so in its answer (the matrix records why the cell is empty).
    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        throw FederationError(.invalidConfiguration, "this site's trainer cannot evaluate models")
    }

    /// A trainer that cannot name its normalisation layers: the site sits out FedBN jobs and says why.
    public func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        throw FederationError(
            .invalidConfiguration, "the job asks for FedBN and this site's trainer cannot name its normalisation layers"
        )
    }
}

/// The site's own say over the tasks it is given: its training policy and its privacy budget. Consulted before the
/// site works on a task, and as the last step before a model update leaves the site. A job cannot switch it off:
/// it belongs to the site's kit, not to the pipeline.
public protocol SiteGatekeeper: Sendable {
    /// Whether the site takes `task` (training, evaluation, sending its local model).
    /// - Throws: `.declined` with the reason (sent to the server, which shows it to the admin); any other error
    ///   makes the site sit the task out and log why.
    func admit(_ task: TaskAssignment) async throws(FederationError)
    /// The last step before `update` (already through the site's filters) leaves the site: the differential
    /// privacy the job or the site asks for (clipping, noise), charged to the site's privacy ledger before the update
    /// is returned. Metrics the site adds (ε spent) travel with it.
    /// - Throws: `.declined` when the release would take the site past its privacy budget.
    func release(_ update: ModelUpdate, task: TaskAssignment) async throws(FederationError) -> ModelUpdate
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

/// A site client: registers, long-polls for tasks, trains, and sends weight diffs through the site's filter chain, in
/// chunks; encoded as the task asks (`UpdateEncoding`, with the job's error-feedback residual kept in memory by
/// `UpdateCompressor`) as the very last step. Retries transient errors with backoff and jitter; never exits on them. A
/// result the server refuses for good (too large, wrong shape, NaN/Inf) is not resent: the site logs why and waits for
/// the next round; so does a site whose local training, filters or statistics answer fail (it sits the round or phase
/// out and says why; a statistics answer has no way to carry an error, so the server's phase deadline records the
/// missing answer). A job that ends or fails while the site works on it (a server restart in the middle of a query)
/// sends the site back to polling. Only `fatalErrors` end the agent: a certificate refused (`.unknownSite`: the server
/// does not take this site's certificate as a participant, or either side refused the other's certificate in the TLS
/// handshake — a kit of another project, an expired certificate), and transient errors past `retry.maxAttempts` when it
/// is set; everything else is logged and retried.
///
/// Cross-site evaluation: when the job asks for it (`config["cross_site_evaluation"]`), the site keeps its last
/// locally trained weights; a `submitModel` task sends them (through the filter chain) unless the site's policy keeps
/// local models at the site (`sharesLocalModel`), in which case it declines with the reason. An `evaluate` task
/// downloads the named model and answers with its metrics on the site's held-out data (no values leave the site).
///
/// Personalisation: the variables the site keeps to itself (its `exclude_variables`, and the model's normalisation
/// layers when the job asks for FedBN) never leave it, and the site puts its own values for them back into every
/// model of the job it downloads, before training and before evaluating (`LocalVariables`). When the job asks for
/// local fine-tuning (`config["fine_tune_epochs"]` = N > 0), the site's evaluation of the final global model also
/// fine-tunes it on the site's training data for N epochs and reports the fine-tuned (personalised) model's metrics
/// beside the global model's, under `personalized_<metric>` (`CrossSiteMatrix.personalizedPrefix`); the
/// fine-tuned model stays at the site.
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
    /// Whether this site sends its local model for cross-site evaluation (the site's `filters.yaml`:
    /// `share_local_model`); false: it declines, and the other sites never see its model.
    public var sharesLocalModel = true
    /// The site's training policy and privacy budget (nil: every task is taken and updates leave as the filters
    /// make them).
    public var gatekeeper: (any SiteGatekeeper)?
    /// Where the site records every result the server accepted (`EgressLog`); nil: not recorded. Recorded right
    /// after the upload is accepted: what the server refused for good, or that came too late, is not recorded; a
    /// result sent again is recorded again. A write that fails is said in `log` with the record's job, round,
    /// kind and SHA-256 (the result has left by then), and the agent goes on.
    public var egressLog: EgressLog?
    /// The site's certificate, key and CA for secure aggregation; nil: the site declines jobs that ask for it.
    public var secureAggregation: SecureAggregationCredentials?
    /// The wall clock of the egress records (tests inject a fixed one).
    public var now: @Sendable () -> Date = { Date() }
    /// Where the site writes the values of the variables it keeps to itself, one file per job (`LocalVariables`;
    /// `tessera client`: `<kit>/local-variables`); nil: kept in memory only, so a restarted client starts again from
    /// the global model's values for them.
    public var localVariablesFolder: String?

    public init(
        site: String, connection: any FederationConnection, trainer: any LocalTrainer,
        filters: FilterChain = FilterChain([]),
        clock: C, retry: RetryPolicy = RetryPolicy(), chunkScalars: Int = 1 << 20,
        log: @escaping @Sendable (String) -> Void = SiteLog.standardError,
        statistics: (any PayloadTaskHandler)? = nil
    ) {
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

    /// What became of a result sent: counted, a decline the server took, too late (the round closed), or refused
    /// for good.
    enum Delivery {
        case counted, declined, stale
        case refused(FederationError)
    }

    /// Upload failures that resending the same result cannot fix.
    static var finalRefusals: Set<FederationError.Code> {
        [.tooLarge, .shapeMismatch, .nonFinite, .invalidConfiguration]
    }

    /// Upload failures that mean the task is gone: the round closed, or the job ended or is unknown to the server
    /// (it restarted): the site takes its next task.
    static var goneTask: Set<FederationError.Code> { [.staleRound, .unknownJob, .jobFailed] }

    /// Errors that end the agent: no retry can fix them (a certificate refused in the TLS handshake or as a
    /// participant: another project's kit, an expired certificate, a site not in the job's list).
    public static var fatalErrors: Set<FederationError.Code> { [.unknownSite] }

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
        func retrying<T: Sendable>(_ what: String, _ body: () async throws(FederationError) -> T)
            async throws(FederationError) -> T
        {
            var attempt = 0
            while true {
                do { return try await body() } catch  where error.code == .transient {
                    attempt += 1
                    // A cancelled agent stops: its waits below would return at once and the loop would spin.
                    if Task.isCancelled { throw error }
                    if let max = retry.maxAttempts, attempt >= max { throw error }
                    let unit = Double(jitter.next() >> 11) * 0x1p-53
                    let wait = retry.delay(attempt: attempt - 1, unit: unit)
                    // Said on attempts 1, 2, 4, 8, …: a site that cannot reach the server says so, without flooding.
                    if attempt & (attempt - 1) == 0 {
                        log(
                            "\(site): \(what) failed (attempt \(attempt)): \(error.message); retrying in "
                                + "\(wait.components.seconds) s. If this goes on, check that the server runs and that "
                                + "the address in the kit (or --server) reaches it")
                    }
                    try? await clock.sleep(for: wait)
                }
            }
        }
        /// Retries transient errors (`retrying`), and any other error but a fatal one after saying it, with the same
        /// backoff: for the calls the agent cannot go on without (register, the long-poll).
        func persisting<T: Sendable>(
            _ what: String,
            _ body: () async throws(FederationError) -> T
        ) async throws(FederationError) -> T {
            var attempt = 0
            while true {
                do {
                    return try await retrying(what, body)
                } catch  where error.code != .transient && !Self.fatalErrors.contains(error.code) {
                    attempt += 1
                    if Task.isCancelled { throw error }
                    if let max = retry.maxAttempts, attempt >= max { throw error }
                    log("\(site): \(what) failed: \(error.message); asking again")
                    let unit = 0.5 + Double(jitter.next() >> 11) * 0x1p-54
                    try? await clock.sleep(for: retry.delay(attempt: attempt - 1, unit: unit))
                }
            }
        }
        _ = try await persisting("register") { () async throws(FederationError) in
            try await connection.register(site: site)
        }
        var rounds: [Int] = []
        // The task whose result the server refused for good: until the round moves on, the server still lists it.
        var refused: (jobID: String, round: Int)?
        var waits = 0
        /// The weights this site trained last (kept only when the job will ask for them: cross-site evaluation).
        var lastLocal: (jobID: String, weights: ParameterSet, sampleCount: Int)?
        /// The last training result sent (views into its diff), until the next training task: what the site sends
        /// again when the server asks for the same round again.
        var lastSent: (header: ResultHeader, chunks: [ParameterChunk])?
        /// The job's update compression with its error-feedback residual (`UpdateCompressor`): in memory only, for
        /// one job at a time (a new job starts from a zero residual); nil while the job sends float32.
        var compressor: UpdateCompressor?
        /// The last training round's global model as downloaded (untouched) and its digest: offered to the server as
        /// the base of the next download (a job with `download_compression` then sends only the change), and whose
        /// arrays the next download fills either way: one model's memory kept between rounds, none faulted in
        /// afresh every round.
        var previousGlobal: HeldModel?
        /// The job whose first download as a change has been logged.
        var changesSaid: String?
        var revealedBefore: (@Sendable (String, Int) -> Bool)?
        if let log = egressLog {
            revealedBefore = { job, round in SecureAggregationClient.revealed(in: log, job: job, round: round) }
        }
        var secure = SecureAggregationClient(
            site: site, credentials: secureAggregation, chunkScalars: chunkScalars, revealedBefore: revealedBefore)
        var local = LocalVariables(folder: localVariablesFolder)
        let sitePatterns = LocalVariables.patterns(of: filters)

        /// The model of a task; nil when the round closed while it was coming (downloads are pulled range by range)
        /// or the server refused it (said in the log; the site then sits the round out): the agent then takes its
        /// next task.
        func download(_ task: TaskAssignment, holding held: inout HeldModel?)
            async throws(FederationError) -> HeldModel?
        {
            // Taken by the download, not copied: its arrays stay uniquely referenced. An attempt that fails before
            // changing it gives it back (to the next attempt, or to `held` for the next round); one that changed part
            // of it spends it, and the next attempt downloads the whole model.
            var spare = held.take()
            defer { held = spare.take() }
            do {
                return try await retrying("download") { () async throws(FederationError) in
                    try await connection.downloadModel(for: task, maxScalars: chunkScalars, holding: &spare)
                }
            } catch  where Self.goneTask.contains(error.code) {
                return nil
            } catch  where error.code != .transient && !Self.fatalErrors.contains(error.code) {
                log(
                    "\(site): round \(task.round) of job \(task.jobID) goes on without this site: the model download "
                        + "failed: \(error.message)")
                refused = (task.jobID, task.round)
                return nil
            }
        }

        /// Sends a result; says whether it counted, came too late, or was refused for good. A counted result is
        /// recorded in the egress log.
        func deliver(
            _ header: ResultHeader, _ chunks: [ParameterChunk],
            _ kind: EgressKind
        ) async throws(FederationError) -> Delivery {
            do {
                try await retrying("upload") { () async throws(FederationError) in
                    try await connection.uploadResult(header, chunks: chunks)
                }
                if let egressLog {
                    let record = EgressRecord(header: header, chunks: chunks, kind: kind, sentAt: now())
                    do { try egressLog.append(record) } catch {
                        log(
                            "\(site): sent job \(record.job) round \(record.round) (\(kind.rawValue), \(record.bytes) "
                                + "bytes, sha256 \(record.sha256)) but could not record it: \(error)")
                    }
                }
                return .counted
            } catch  where Self.goneTask.contains(error.code) {
                return .stale  // the round closed without us, or the job is over: take the next task
            } catch  where error.code != .transient && !Self.fatalErrors.contains(error.code) {
                return .refused(error)  // Self.finalRefusals, or an error the server has no code for
            }
        }

        /// Local fine-tuning of `model` (the global model with the site's own kept values) for `epochs` epochs on the
        /// site's training data, as a training round with that many local epochs and no proximal term; returns the
        /// fine-tuned model's metrics on the site's held-out data, each under `personalized_<metric>`.
        func fineTune(_ model: ParameterSet, epochs: Int, task: TaskAssignment) async throws(FederationError)
            -> [String: Double]
        {
            var tuning = task
            tuning.config["local_epochs"] = .int(epochs)
            tuning.config["proximal_mu"] = nil
            let tuned = try await computing { () async throws(FederationError) in
                try await trainer.train(global: model, task: tuning).weights
            }
            let metrics = try await computing { () async throws(FederationError) in
                try await trainer.evaluate(tuned, task: task)
            }
            return Dictionary(
                uniqueKeysWithValues: metrics.map { (CrossSiteMatrix.personalizedPrefix + $0.key, $0.value) })
        }

        /// Asks the gatekeeper whether the site takes `task`: nil when it does, else the reason it declines.
        /// Errors other than `.declined` are the gatekeeper failing: the site declines too, saying so.
        func declineReason(_ task: TaskAssignment) async -> String? {
            guard let gatekeeper else { return nil }
            do {
                try await gatekeeper.admit(task)
                return nil
            } catch  where error.code == .declined {
                return error.message
            } catch {
                return "the site could not check the task against its policy: \(error.message)"
            }
        }

        /// Tells the server the site declines `task` with `reason` (a header whose payload is the reason, no values).
        func decline(_ task: TaskAssignment, _ reason: String) async throws(FederationError) -> Delivery {
            log("\(site): declines \(task.kind.rawValue) task of round \(task.round) of job \(task.jobID): \(reason)")
            let header = ResultHeader(
                jobID: task.jobID, round: task.round, site: site, sampleCount: 1,
                payload: Array(reason.utf8.prefix(4000)))
            let delivery = try await deliver(header, [], .decline)
            if case .counted = delivery { return .declined }
            return delivery
        }

        while true {
            guard
                let task = try await persisting(
                    "next task",
                    { () async throws(FederationError) in
                        try await connection.nextTask(site: site)
                    })
            else { return rounds }
            if let refused, refused == (task.jobID, task.round) {
                if Task.isCancelled {
                    throw FederationError(.jobFailed, "\(site): the site agent was cancelled")
                }
                let unit = 0.5 + Double(jitter.next() >> 11) * 0x1p-54
                try? await clock.sleep(for: retry.delay(attempt: waits, unit: unit))
                waits += 1
                continue
            }
            refused = nil
            waits = 0
            let what: String
            let delivery: Delivery
            switch task.kind {
            case .statistics:
                // A statistics answer cannot carry an error: the site says why in its log and sits the phase out
                // (the server records the missing answer at its deadline), then polls again.
                guard let statistics else {
                    log(
                        "\(site): phase \(task.round) of statistics job \(task.jobID) goes on without this site: this "
                            + "client was started without a statistics handler")
                    refused = (task.jobID, task.round)
                    continue
                }
                let payload: [UInt8]
                let metrics: [String: Double]
                do {
                    (payload, metrics) = try await computing { () async throws(FederationError) in
                        try await statistics.respond(to: task)
                    }
                } catch {
                    if Task.isCancelled { throw error }
                    log(
                        "\(site): phase \(task.round) of statistics job \(task.jobID) goes on without this site: "
                            + "\(error.message)")
                    refused = (task.jobID, task.round)
                    continue
                }
                let header = ResultHeader(
                    jobID: task.jobID, round: task.round, site: site, sampleCount: 1,
                    metrics: metrics, payload: payload)
                what = "phase \(task.round) of statistics job \(task.jobID) goes on without this site's answer"
                delivery = try await deliver(header, [], .statisticsAnswer)

            case .submitModel:
                var header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: 1)
                var chunks: [ParameterChunk] = []
                if let reason = await declineReason(task) {
                    header.payload = Array(reason.utf8.prefix(4000))
                } else if !sharesLocalModel {
                    header.payload = Array(
                        ("the site's policy keeps its local models at the site (share_local_model: "
                            + "false in its filters.yaml)").utf8)
                } else if let local = lastLocal, local.jobID == task.jobID {
                    let update = ModelUpdate(
                        jobID: task.jobID, round: task.round, site: site, sampleCount: local.sampleCount,
                        diff: local.weights)
                    do {
                        let filtered = try await filters.process(
                            update,
                            context: FilterContext(
                                site: site, jobID: task.jobID,
                                round: task.round))
                        header.sampleCount = max(1, filtered.sampleCount)
                        chunks = filtered.diff.chunks(maxScalars: chunkScalars)
                    } catch {
                        header.payload = Array("the site's filters withheld its local model: \(error.message)".utf8)
                    }
                } else {
                    header.payload = Array(
                        ("the site has no local model of job \(task.jobID): it trained in no round, or "
                            + "its client restarted since").utf8)
                }
                if chunks.isEmpty {
                    log(
                        "\(site): cross-site evaluation goes on without this site's local model: "
                            + String(decoding: header.payload, as: UTF8.self))
                }
                what = "cross-site evaluation of job \(task.jobID) goes on without this site's local model"
                delivery = try await deliver(header, chunks, .localModel)

            case .evaluate:
                let name: String
                if case .string(let n)? = task.config["model"] { name = n } else { name = "?" }
                what = "cross-site evaluation of job \(task.jobID) goes on without this site's evaluation of \(name)"
                if let reason = await declineReason(task) {
                    var header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: 1)
                    header.payload = Array("\(site) declines to evaluate: \(reason)".utf8.prefix(4000))
                    log("\(site): declines to evaluate the \(name) model: \(reason)")
                    delivery = try await deliver(header, [], .decline)
                    break
                }
                var none: HeldModel?
                guard var model = try await download(task, holding: &none)?.parameters else { continue }
                var header = ResultHeader(jobID: task.jobID, round: task.round, site: site, sampleCount: 1)
                do {
                    try local.restore(into: &model, jobID: task.jobID)
                    header.metrics = try await computing { [model] () async throws(FederationError) in
                        try await trainer.evaluate(model, task: task)
                    }
                    if name == CrossSiteMatrix.global, case .int(let epochs)? = task.config["fine_tune_epochs"],
                        epochs > 0
                    {
                        log("\(site): fine-tuning the global model for \(epochs) local epoch(s)")
                        header.metrics.merge(try await fineTune(model, epochs: epochs, task: task)) { _, tuned in tuned
                        }
                    }
                } catch {
                    log("\(site): cannot evaluate the \(name) model: \(error.message)")
                    header.payload = Array("evaluation failed at \(site): \(error.message)".utf8)
                }
                delivery = try await deliver(header, [], .evaluationMetrics)

            case .train:
                let secureStage = SecureAggregationClient.stage(of: task)
                if let stage = secureStage, stage != .advertise {
                    what = "the \(stage.rawValue) stage of round \(task.round) goes on without this site"
                    do {
                        let (header, chunks) = try await secure.respond(task, stage: stage)
                        delivery = try await deliver(
                            header, chunks, stage == .mask ? .maskedUpdate : .secureAggregation)
                    } catch  where error.code == .declined {
                        delivery = try await decline(task, error.message)
                    }
                    break
                }
                what = "round \(task.round) of job \(task.jobID) goes on without this site's result"
                if secureStage == .advertise, let kept = secure.heldUpdate(for: task) {
                    // A new session of a round already trained (the server retried it): same update, new keys.
                    do {
                        let header = try secure.advertise(task, update: kept, structure: nil)
                        delivery = try await deliver(header, [], .secureAggregation)
                    } catch  where error.code == .declined {
                        delivery = try await decline(task, error.message)
                    }
                    break
                }
                if secureStage == nil, let sent = lastSent, sent.header.jobID == task.jobID,
                    sent.header.round == task.round
                {
                    // The server asks again for a result it already had (it restarted, retried the round, or rebuilt
                    // the round's sums after another site's result broke off): the global model is the same, so is
                    // the result. Sent again as it was, without training again.
                    log("\(site): round \(task.round) of job \(task.jobID) asked for again; sending the same result")
                    delivery = try await deliver(sent.header, sent.chunks, .trainUpdate)
                    break
                }
                lastSent = nil  // a new round: the old result's memory goes before the new model comes
                if let reason = await declineReason(task) {
                    // The server takes the decline and asks the site nothing more this round.
                    delivery = try await decline(task, reason)
                    break
                }
                let encoding: UpdateEncoding
                do {
                    encoding = try UpdateEncoding(taskConfig: task.config)
                } catch {
                    delivery = try await decline(
                        task, "the site cannot encode its update as the job asks: \(error.message)")
                    break
                }
                guard let downloaded = try await download(task, holding: &previousGlobal) else { continue }
                let global = downloaded.parameters
                if let base = downloaded.changed, base != downloaded.digest, changesSaid != task.jobID {
                    // Said once a job: what the operator sees of download compression.
                    changesSaid = task.jobID
                    log(
                        "\(site): round \(task.round) of job \(task.jobID): the model came as the change from the one "
                            + "this site held (download_compression)")
                }
                // Once this round is done with it: the base of the next download (its arrays take the next model).
                defer { previousGlobal = downloaded }
                let samples: Int
                let metrics: [String: Double]
                var diff: ParameterSet
                let kept: Set<String>
                do {
                    kept = try await LocalVariables.names(
                        in: global, task: task, patterns: sitePatterns, trainer: trainer)
                    var start = global
                    try local.restore(into: &start, jobID: task.jobID)
                    (diff, samples, metrics) = try await computing { [start] () async throws(FederationError) in
                        try await trainer.train(global: start, task: task)
                    }
                } catch {
                    if Task.isCancelled { throw error }
                    // Not a network hiccup: retrying at once would fail the same way. The round goes on without us.
                    log(
                        "\(site): round \(task.round) of job \(task.jobID) goes on without this site: local training "
                            + "failed: \(error.message)")
                    refused = (task.jobID, task.round)
                    continue
                }
                do { try local.keep(kept, of: diff, jobID: task.jobID) } catch {
                    log("\(site): \(error.message)")  // kept in memory all the same
                }
                if case .bool(true)? = task.config["cross_site_evaluation"] {
                    // What the site keeps to itself stays out of its local model too (the server completes it).
                    lastLocal = (task.jobID, kept.isEmpty ? diff : diff.removing { kept.contains($0) }, samples)
                }
                do {
                    try diff.subtract(global)  // in place: the weights become the diff (a kept copy stays as it was)
                } catch {
                    log(
                        "\(site): round \(task.round) of job \(task.jobID) goes on without this site: the trained "
                            + "model does not match the global one: \(error.message)")
                    refused = (task.jobID, task.round)
                    continue
                }
                var update = ModelUpdate(
                    jobID: task.jobID, round: task.round, site: site, sampleCount: samples,
                    diff: kept.isEmpty ? diff : diff.removing { kept.contains($0) }, metrics: metrics)
                do {
                    update = try await filters.process(
                        update,
                        context: FilterContext(
                            site: site, jobID: task.jobID,
                            round: task.round))
                } catch {
                    if Task.isCancelled { throw error }
                    log(
                        "\(site): round \(task.round) of job \(task.jobID) goes on without this site: its filters "
                            + "withheld the update: \(error.message)")
                    refused = (task.jobID, task.round)
                    continue
                }
                if let gatekeeper {
                    do {
                        update = try await gatekeeper.release(update, task: task)
                    } catch {
                        if Task.isCancelled { throw error }
                        let reason =
                            error.code == .declined
                            ? error.message
                            : "the site's privacy step failed: \(error.message)"
                        delivery = try await decline(task, reason)
                        break
                    }
                }
                if secureStage == .advertise {
                    do {
                        let header = try secure.advertise(task, update: update, structure: global.structure)
                        delivery = try await deliver(header, [], .secureAggregation)
                    } catch  where error.code == .declined {
                        delivery = try await decline(task, error.message)
                    }
                    break
                }
                let header = ResultHeader(
                    jobID: task.jobID, round: task.round, site: site, sampleCount: update.sampleCount,
                    metrics: update.metrics)
                // Compression is the last step: it encodes what the filters and the privacy step released.
                if compressor?.jobID != task.jobID || compressor?.encoding != encoding {
                    compressor = encoding == .float32 ? nil : UpdateCompressor(jobID: task.jobID, encoding: encoding)
                }
                let chunks =
                    compressor?.encode(update.diff, maxScalars: chunkScalars)
                    ?? update.diff.chunks(maxScalars: chunkScalars)
                lastSent = (header, chunks)
                delivery = try await deliver(header, chunks, .trainUpdate)
            }
            switch delivery {
            case .counted:
                // The rounds this site contributed to (training and statistics; evaluation steps are not rounds).
                let stage = SecureAggregationClient.stage(of: task)
                if (task.kind == .train && (stage == nil || stage == .mask)) || task.kind == .statistics {
                    rounds.append(task.round)
                }
            case .declined, .stale: continue
            case .refused(let error):
                log("\(site): \(what), which the server refused: \(error)")
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

/// Runs local training, evaluation or a statistics answer — minutes of computing — on `ComputeExecutor.shared`,
/// leaving Swift's cooperative pool to the site's heartbeats and calls (and, in one process, to the server and the
/// other sites).
private func computing<T>(_ body: () async throws(FederationError) -> T) async throws(FederationError) -> T {
    try await withTaskExecutorPreference(ComputeExecutor.shared, operation: body)
}
