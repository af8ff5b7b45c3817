import DifferentialPrivacy
import FederationCore
import Foundation
import SecureAggregation

/// Runs one federated training job round by round — the training policy on top of `RoundDriver`: hands each
/// round's tasks (from the strategy) to long-polling sites, takes their streamed results in (`ResultIntake`), closes
/// a round at `minClients` + grace period (or when every site answered, or at the deadline), aggregates through the
/// strategy and checkpoints. Every wait uses the injected clock, so tests drive time explicitly.
///
/// Invariants: a result counts once (a duplicate or one for another round is rejected and logged); the server
/// holds the global model, one accumulator and the chunk in flight (plus, for the robust rules that need them,
/// every site's diff, bounded by `maxHeldUpdateBytes`: see `RobustAggregation`); a round that cannot reach
/// `minClients` by its deadline is retried, then the job fails with a reason — it never hangs; any error on any path
/// ends the job as failed with its reason (`RoundHost.runJob`); the global model only changes from the aggregate of
/// complete, committed, bounded results, and only when the aggregate and the new model are finite.
///
/// Memory: downloads stream from a copy-on-write snapshot of the global model (`model(for:)` hands out chunks that
/// are views into it); a result's chunks are checked one by one as they arrive and added into the round's sums at
/// once, never kept (see `ResultIntake` for how a result that fails part-way is taken back out, and for how a norm
/// bound or a robust rule keeps results instead). Closing a round turns the sums into the mean in place and updates
/// the global model in place (`Strategy.updateGlobal`).
public actor Coordinator<C: Clock>: FederationService, RoundHost where C.Duration == Duration {
    public let configuration: JobConfiguration
    private var strategy: any Strategy
    private let store: (any CheckpointStore)?
    public private(set) var global: ParameterSet
    public private(set) var records: [RoundRecord] = []
    public private(set) var completedRounds = 0
    package var driver: RoundDriver<C>
    private var intake: ResultIntake
    /// The last round's mean once the global model has taken it in: the next round's sums, zeroed in place.
    private var spareSums: ParameterSet?
    private var graceStarted = false
    /// Each site's last accepted result: round and metrics (for the admin's status).
    private var lastResult: [String: (round: Int, metrics: [String: Double])] = [:]
    /// False once a round's update made the global model non-finite (the job fails; the model is not written).
    public private(set) var globalIsFinite = true
    /// Where client-level DP's server-side noise comes from (the system's CSPRNG unless a test injects a seed).
    private var noise: any NoiseSource
    /// The secure-aggregation attempt in progress (jobs with `secureAggregation` only).
    private var secure: SecureRound?
    /// What the sites download each round: the model, its digest, the encoded change (`downloadEncoding`).
    private var broadcast: ModelBroadcast

    /// - Parameter workDirectory: where the in-flight results of sites on probation are spilled (one anonymous file
    ///   per such site); nil: a fresh temporary folder, made when first needed and removed when the job ends.
    public init(
        configuration: JobConfiguration, initialModel: ParameterSet, strategy: any Strategy, clock: C,
        store: (any CheckpointStore)? = nil, workDirectory: String? = nil,
        noise: any NoiseSource = SystemNoiseSource()
    ) {
        self.configuration = configuration
        self.noise = noise
        self.global = initialModel
        self.broadcast = ModelBroadcast(global: initialModel, encoding: configuration.downloadEncoding)
        self.strategy = strategy
        self.store = store
        self.driver = RoundDriver(jobID: configuration.jobID, participants: configuration.sites, clock: clock)
        self.intake = ResultIntake(configuration: configuration, workDirectory: workDirectory)
    }

    /// A stream of job events (progress display, tests). Each call gets its own stream.
    public func observe() -> AsyncStream<JobEvent> { driver.observe() }

    /// The reason the job failed or was aborted; nil while it runs or once it finished.
    public var failure: String? { driver.ending?.reason }
    /// True once every round has closed.
    public var finished: Bool { driver.ending == .finished }
    /// True once the job has finished, failed or been aborted.
    public var isOver: Bool { driver.isOver }
    public var lastSeen: [String: C.Instant] { driver.lastSeen }
    public var probation: Set<String> { intake.probation }
    /// How many times the sums of a round were rebuilt (zeroed and the results asked for again) during the job.
    public var sumRebuilds: Int { intake.sumRebuilds }
    /// Bytes spilled so far by each site whose result is streaming in and being spilled (on probation, or every
    /// site under a norm bound with rule mean): what the server keeps on disk for results in flight.
    public var inFlightSpillBytes: [String: Int] { intake.inFlightSpillBytes }
    /// Spill files open (one per site that has sent a spilled result during the job; none once it has ended).
    public var spillFileCount: Int { intake.spillFileCount }

    // MARK: - Running the job

    /// Runs every round; resumes after the last checkpointed round when the store has one.
    /// - Returns: the final global model.
    /// - Throws: `.jobFailed` when a round cannot gather `minClients` results after its retries, on an abort, or on
    ///   any error (the job has ended with that reason).
    public func run() async throws(FederationError) -> ParameterSet {
        defer {
            spareSums = nil
            intake.removeSpills()
        }
        try await runJob { () async throws(FederationError) in
            try configuration.validate()
            try configuration.robustAggregation.checkHeldMemory(
                parameters: global.scalarCount, sites: configuration.sites.count,
                limit: configuration.maxHeldUpdateBytes)
            if let store, let saved = try await store.load(jobID: configuration.jobID) {
                global = try saved.model.reordered(like: global)
                broadcast = ModelBroadcast(global: global, encoding: configuration.downloadEncoding)
                try strategy.restore(serverState: saved.serverState)
                completedRounds = saved.completedRound
                records = saved.records
            }
            while completedRounds < configuration.rounds {
                try await runRound(completedRounds + 1)
            }
        }
        return global
    }

    /// Runs round `r` through its attempts until it closes.
    private func runRound(_ r: Int) async throws(FederationError) {
        if let settings = configuration.secureAggregation {
            try await runSecureRound(r, settings: settings)
            return
        }
        var attempt = 0
        while true {
            let configs = strategy.configureTraining(round: r, sites: configuration.sites)
            let tasks = configs.keys.sorted().compactMap { site -> TaskAssignment? in
                guard let config = configs[site], configuration.sites.contains(site) else { return nil }
                return TaskAssignment(
                    jobID: configuration.jobID, round: r, kind: .train, site: site,
                    config: config.merging(configuration.taskConfig) { strategy, _ in strategy })
            }
            intake.open(structure: global, reusing: spareSums.take())
            graceStarted = false
            let outcome = await runRound(r, attempt: attempt, tasks: tasks, timeout: configuration.roundTimeout) {
                self.decide($0, round: r, attempt: attempt)
            }
            switch outcome {
            case .closed(let closure):
                try await closeRound(r, attempt: attempt, closure: closure)
                return
            case .retry:
                intake.close()
                attempt += 1
                if attempt > configuration.maxRoundRetries {
                    throw FederationError(
                        .jobFailed,
                        "round \(r) gathered \(driver.answered.count) of the "
                            + "\(configuration.minClients) results it needs after \(attempt) attempts (deadline "
                            + "\(configuration.roundTimeout) each); check that the sites are running and can reach "
                            + "the server")
                }
                driver.emit(
                    .roundRetried(
                        round: r, attempt: attempt,
                        reason: "fewer than \(configuration.minClients) results by the deadline"))
            case .failed(let reason):
                throw FederationError(
                    .jobFailed,
                    "round \(r) cannot close: \(reason). Restart the server: it resumes "
                        + "from the last checkpoint")
            case .aborted(let reason):
                throw FederationError(.jobFailed, reason)
            case .declined(let reasons):
                throw FederationError(
                    .jobFailed,
                    "round \(r) cannot gather the \(configuration.minClients) results "
                        + "it needs: \(reasons). A site's policy and privacy budget are its own: "
                        + "change the pipeline to fit them, or ask the site")
            }
        }
    }

    /// The training round's policy: close when every asked site answered; start the grace period at `minClients`
    /// results and close when it ends; at the deadline close with `minClients` results, else retry.
    private func decide(_ signal: RoundSignal, round r: Int, attempt: Int) -> RoundOutcome? {
        let results = driver.answered.count
        let enough = results >= configuration.minClients
        // Signals are handled in turn but read the round as it is now: a decline may already be in when an answer's
        // signal is handled, so both look at what can still come.
        let declined = !driver.declined.isEmpty
        switch signal {
        case .declined:
            if results + driver.unanswered.count < configuration.minClients { return .declined(driver.declinedReasons) }
            if driver.unanswered.isEmpty { return .closed(.everySiteAnswered) }
            return nil
        case .answered:
            if declined && results + driver.unanswered.count < configuration.minClients {
                return .declined(driver.declinedReasons)
            }
            if driver.unanswered.isEmpty { return .closed(.everySiteAnswered) }
            if enough && !graceStarted {
                graceStarted = true
                schedule(.grace, after: configuration.gracePeriod)
                driver.emit(.gracePeriodStarted(round: r, results: results))
            }
            return nil
        case .timer(.grace):
            return enough ? .closed(.minClientsAndGrace) : nil
        case .timer(.deadline):
            return enough ? .closed(.deadlineWithMinClients) : .retry
        case .broken(let reason): return .failed(reason)
        case .aborted(let reason): return .aborted(reason)
        }
    }

    private func closeRound(_ r: Int, attempt: Int, closure: RoundClosure) async throws(FederationError) {
        let committed = intake.committed
        // The mean is computed in the sums' storage and the global model updated in its own: no model-sized
        // temporaries (unless a straggler's download still holds a snapshot of the old model).
        let aggregated = try intake.takeAggregate()
        try await applyMean(
            aggregated.diff, round: r, attempt: attempt, closure: closure, committed: committed,
            notes: aggregated.notes)
    }

    /// Takes a round's mean diff into the global model (server noise, strategy, finiteness), records and
    /// checkpoints the round. `notes`: what the server computed about each result (norm, norm-bound scale, Krum's
    /// choice), recorded beside what the site reported.
    private func applyMean(
        _ mean: ParameterSet, round r: Int, attempt: Int, closure: RoundClosure, committed: SecureRound.Committed,
        notes: [String: [String: Double]] = [:]
    ) async throws(FederationError) {
        var meanDiff = mean
        do throws(FederationError) { try meanDiff.checkFinite() } catch {
            throw FederationError(
                .nonFinite,
                "round \(r): the aggregate of \(committed.keys.sorted()) is not "
                    + "finite (\(error.message)); the global model is left as it was")
        }
        if let dp = configuration.clientDP, dp.noise == .server {
            // Client-level DP: N(0, (z·S)²) on the sum of the clipped diffs is N(0, (z·S/n)²) on their mean.
            let sigma = dp.serverNoiseStandardDeviation(results: committed.count)
            var source = noise
            try meanDiff.updateValues { _, values throws(FederationError) in
                for i in values.indices { values[i] += Float(Calibration.gaussian(sigma: sigma, using: &source)) }
            }
            noise = source
        }
        let updates = committed.map { site, c in
            ModelUpdate(
                jobID: configuration.jobID, round: r, site: site, sampleCount: c.samples, diff: ParameterSet(),
                metrics: c.metrics)
        }
        try strategy.updateGlobal(round: r, global: &global, meanDiff: meanDiff, updates: updates)
        do throws(FederationError) { try global.checkFinite() } catch {
            globalIsFinite = false
            throw FederationError(
                .nonFinite,
                "round \(r): the strategy's update made the global model non-finite "
                    + "(\(error.message)); the job stops at the last checkpoint (round "
                    + "\(completedRounds))")
        }
        // The next round's download (none after the last round: the evaluation sends the final model itself).
        if r < configuration.rounds { try broadcast.advance(to: global) }
        // A plain round reuses the mean's storage for its next sums; a secure round sums masked words instead.
        spareSums = configuration.secureAggregation == nil ? meanDiff : nil
        // What the server computed about each result (norm, norm-bound scale, Krum's choice) beside what the site
        // reported, under a prefix the intake refuses in a site's own metric names.
        var metrics = committed.mapValues(\.metrics)
        for (site, computed) in notes {
            for (name, value) in computed { metrics[site]?[ResultIntake.serverMetricPrefix + name] = value }
        }
        let record = RoundRecord(
            round: r, attempt: attempt, participants: committed.keys.sorted(),
            metrics: metrics, closedBy: closure.rawValue)
        records.append(record)
        completedRounds = r
        if let store {
            try await store.save(
                jobID: configuration.jobID, completedRound: r, model: global,
                serverState: strategy.serverState, records: records, modelMetadata: configuration.modelMetadata)
        }
        driver.emit(.roundClosed(round: r, participants: record.participants, reason: closure.rawValue))
    }

    // MARK: - Secure aggregation

    private enum SecureAttempt {
        case closed(ParameterSet, SecureRound.Committed, RoundClosure)
        case retry(String)
    }

    /// Runs secure-aggregation round `r` through its attempts; each attempt is a new session (new keys) of five
    /// stages (`SecureRound`). An attempt that cannot complete is retried up to `maxRoundRetries` times, then the job
    /// fails with the reason; nothing is aggregated from an incomplete attempt.
    private func runSecureRound(_ r: Int, settings: SecureAggregationSettings) async throws(FederationError) {
        var attempt = 0
        while true {
            switch try await secureAttempt(r, attempt: attempt, settings: settings) {
            case .closed(let mean, let committed, let closure):
                try await applyMean(mean, round: r, attempt: attempt, closure: closure, committed: committed)
                return
            case .retry(let reason):
                attempt += 1
                if attempt > configuration.maxRoundRetries {
                    throw FederationError(
                        .jobFailed,
                        "round \(r) could not complete secure aggregation after \(attempt) attempts: \(reason)")
                }
                driver.emit(.roundRetried(round: r, attempt: attempt, reason: reason))
            }
        }
    }

    private func secureAttempt(
        _ r: Int, attempt: Int, settings: SecureAggregationSettings
    ) async throws(FederationError) -> SecureAttempt {
        var round = try SecureRound(
            jobID: configuration.jobID, round: r, attempt: attempt, settings: settings, global: global,
            sites: configuration.sites.count, minClients: configuration.minClients)
        secure = round
        defer { secure = nil }
        let configs = strategy.configureTraining(round: r, sites: configuration.sites)
        var asked = configs.keys.sorted().filter { configuration.sites.contains($0) }
        var closure = RoundClosure.everySiteAnswered
        for stage in SecureAggregationStage.allCases {
            var tasks: [TaskAssignment] = []
            for site in asked {
                var config: [String: ConfigValue] = [:]
                if stage == .advertise {
                    config = (configs[site] ?? [:]).merging(configuration.taskConfig) { strategy, _ in strategy }
                }
                config.merge(round.config(stage)) { _, secure in secure }
                tasks.append(
                    TaskAssignment(
                        jobID: configuration.jobID, round: r, kind: .train, site: site, config: config,
                        payload: try round.payload(stage, for: site)))
            }
            let timeout = stage == .advertise || stage == .mask ? configuration.roundTimeout : settings.stageTimeout
            graceStarted = false
            let needed = round.needed
            let outcome = await runRound(r, attempt: attempt, tasks: tasks, timeout: timeout) {
                self.decideSecure($0, round: r, stage: stage, needed: needed)
            }
            switch outcome {
            case .closed(let how): if how != .everySiteAnswered { closure = how }
            case .retry:
                let refusals = driver.declined.isEmpty ? "" : " (\(driver.declinedReasons))"
                return .retry("fewer than \(needed) sites answered the \(stage.rawValue) stage\(refusals)")
            case .failed(let reason): return .retry(reason)
            case .aborted(let reason): throw FederationError(.jobFailed, reason)
            case .declined(let reasons):
                throw FederationError(
                    .jobFailed,
                    "round \(r) cannot gather the \(needed) sites secure aggregation needs at its "
                        + "\(stage.rawValue) stage: \(reasons)")
            }
            guard var current = secure else { return .retry("the secure-aggregation session was lost") }
            do throws(SecureAggregationShortfall) {
                asked = try current.advance(answered: driver.answered)
            } catch {
                return .retry(error.reason)
            }
            secure = current
            round = current
        }
        do throws(SecureAggregationShortfall) {
            guard var current = secure else { return .retry("the secure-aggregation session was lost") }
            let (mean, committed) = try current.mean()
            return .closed(mean, committed, closure)
        } catch {
            return .retry(error.reason)
        }
    }

    /// A secure-aggregation stage's policy: close when every asked site answered; at the deadline close with
    /// `needed` answers, else retry. The first stage (training) also closes a grace period after `needed` answers.
    /// When declines leave fewer than `needed` possible answers, the round fails with the sites' reasons.
    private func decideSecure(
        _ signal: RoundSignal, round r: Int, stage: SecureAggregationStage, needed: Int
    ) -> RoundOutcome? {
        let answers = driver.answered.count
        switch signal {
        case .answered, .declined:
            if !driver.declined.isEmpty && answers + driver.unanswered.count < needed {
                // Declining training is a site's policy (the job fails with its reasons); refusing a later stage
                // is a site refusing this session (a set or key that fails its checks): a new session may do.
                return stage == .advertise ? .declined(driver.declinedReasons) : .retry
            }
            if driver.unanswered.isEmpty { return answers >= needed ? .closed(.everySiteAnswered) : .retry }
            if stage == .advertise && answers >= needed && !graceStarted {
                graceStarted = true
                schedule(.grace, after: configuration.gracePeriod)
                driver.emit(.gracePeriodStarted(round: r, results: answers))
            }
            return nil
        case .timer(.grace): return answers >= needed ? .closed(.minClientsAndGrace) : nil
        case .timer(.deadline): return answers >= needed ? .closed(.deadlineWithMinClients) : .retry
        case .broken(let reason): return .failed(reason)
        case .aborted(let reason): return .aborted(reason)
        }
    }

    /// Largest reason a site may give for declining a round, bytes.
    public static var maxReasonBytes: Int { 4096 }

    /// A site's reason as one printable line: control characters become spaces, at most 1000 characters.
    static func printable(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        let cleaned = String(
            String.UnicodeScalarView(
                text.unicodeScalars.map {
                    $0.properties.generalCategory == .control ? " " : $0
                }))
        return cleaned.count > 1000 ? String(cleaned.prefix(1000)) + "…" : cleaned
    }

    // MARK: - Control

    /// Stops the job: `run()` throws `.jobFailed` with `reason`, waiting sites are released, the checkpoints stay.
    public func abort(reason: String) { driver.abort(reason: reason) }

    /// Rounds done, and what the server knows of each site.
    public func progress() -> JobProgress {
        let seen = driver.secondsSinceSeen()
        let states = configuration.sites.map { site in
            SiteState(
                site: site, secondsSinceSeen: seen[site], lastRound: lastResult[site]?.round ?? 0,
                lastMetrics: lastResult[site]?.metrics ?? [:])
        }
        return JobProgress(
            completedRounds: completedRounds, currentRound: driver.isOver ? 0 : driver.round,
            siteStates: states)
    }

    // MARK: - Site-facing API (called by transports)

    /// - Throws: `.unknownSite` for a site that is not a participant.
    public func register(site: String) throws(FederationError) -> String {
        try driver.requireParticipant(site)
        return configuration.jobID
    }

    /// The site's current task, waiting until there is one; nil once the job has finished or failed. A site that
    /// restarts mid-round gets its task again (until its result is committed).
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await nextPendingTask(site: site)
    }

    /// The model for a task of the current round (the global model, or with a `downloadEncoding` the sites' model
    /// that follows it: `ModelBroadcast`), whole, as views into a copy-on-write snapshot of it: no copy is made; the
    /// transport encodes each chunk as it writes it.
    public func model(for task: TaskAssignment, maxScalars: Int) throws(FederationError) -> [ParameterChunk] {
        try download(for: task, maxScalars: maxScalars, held: nil).chunks
    }

    /// The model for a task of the current round: the encoded change from the model the site holds (`held`) when
    /// the job has a `downloadEncoding` and `held` is the previous round's model, else the whole model; with its
    /// digest.
    public func modelDownload(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) async throws(FederationError) -> ModelDownload {
        // async, as the protocol's requirement: a synchronous method beside the protocol's asynchronous default would
        // lose to that default in callers' asynchronous contexts.
        try download(for: task, maxScalars: maxScalars, held: held)
    }

    private func download(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) throws(FederationError) -> ModelDownload {
        guard maxScalars > 0 else { throw FederationError(.invalidConfiguration, "chunk size must be positive") }
        guard task.jobID == configuration.jobID, task.round == driver.round, driver.isAsked(task.site) else {
            throw FederationError(.staleRound, "task of round \(task.round) is not current (round \(driver.round))")
        }
        return broadcast.download(global: global, maxScalars: maxScalars, held: held)
    }

    /// Starts receiving a result. Checks the header (participant, job, current round, not already counted, sample
    /// count, metrics). A header with a payload and no values to follow is the site declining the round: the
    /// payload is its reason (UTF-8, at most `maxReasonBytes`), recorded as a `siteDeclined` event;
    /// the round goes on without the site (and fails at once when it can no longer reach `minClients`).
    public func beginResult(_ header: ResultHeader) throws(FederationError) {
        do throws(FederationError) {
            try driver.requireParticipant(header.site)
            let round = driver.round
            guard header.jobID == configuration.jobID, header.round == round, driver.isAsked(header.site) else {
                throw FederationError(
                    .staleRound,
                    "result from \(header.site) for round \(header.round) of job "
                        + "\(header.jobID); current: round \(round) of job \(configuration.jobID). "
                        + "Discarded")
            }
            guard !intake.isCommitted(header.site) else {
                throw FederationError(
                    .staleRound,
                    "a result from \(header.site) for round \(round) was already "
                        + "counted; the duplicate is discarded")
            }
            if secure != nil, header.metrics[SecureAggregationStage.configKey] != nil {
                try secure?.begin(header)
                return
            }
            if !header.payload.isEmpty {
                guard header.payload.count <= Self.maxReasonBytes else {
                    throw FederationError(
                        .tooLarge,
                        "the reason \(header.site) gave for declining round \(round) "
                            + "is \(header.payload.count) bytes; at most \(Self.maxReasonBytes)")
                }
                if intake.isStreaming(header.site) { abandon(site: header.site, reason: "it declined the round") }
                driver.decline(header.site, reason: Self.printable(header.payload))
                return
            }
            apply(try intake.begin(header))
        } catch {
            driver.emit(.resultRejected(round: header.round, site: header.site, reason: error.message))
            throw error
        }
    }

    /// Checks one chunk of a result and adds it into the sums as it arrives; nothing of it stays in memory.
    public func resultChunk(site: String, _ chunk: ParameterChunk) throws(FederationError) {
        if let round = secure, round.isUploading(site) {
            do throws(FederationError) {
                guard chunk.encoded == nil, (chunk.inMessage?.encoding ?? .float32) == .float32 else {
                    throw FederationError(
                        .invalidConfiguration,
                        "result from \(site) rejected: a masked vector travels as 32-bit words, never compressed")
                }
                try secure?.add(chunk.materialized(), from: site)
            } catch {
                secure?.abandon(site: site)
                driver.emit(.resultRejected(round: driver.round, site: site, reason: error.message))
                throw error
            }
            return
        }
        do throws(ResultIntake.Failure) {
            try intake.add(chunk, from: site, modelBytes: global.byteCount)
        } catch {
            reject(site: site, error)
            throw error.error
        }
    }

    /// Completes a result: it counts from now on (nothing to do for a site that declined the round).
    public func endResult(site: String) throws(FederationError) {
        if driver.declined[site] != nil, !intake.isStreaming(site) { return }
        if let round = secure, driver.isAsked(site), !intake.isStreaming(site) {
            do throws(FederationError) {
                try secure?.end(site: site)
            } catch {
                driver.emit(.resultRejected(round: driver.round, site: site, reason: error.message))
                throw error
            }
            if round.stage == .advertise, let trained = secure?.trained[site] {
                lastResult[site] = (driver.round, trained.metrics)
                driver.emit(
                    .resultAccepted(
                        round: driver.round, site: site, sampleCount: trained.samples, metrics: trained.metrics))
            }
            driver.answer(site)
            return
        }
        let counted: (samples: Int, metrics: [String: Double])
        do throws(ResultIntake.Failure) {
            counted = try intake.end(site: site)
        } catch {
            reject(site: site, error)
            throw error.error
        }
        lastResult[site] = (driver.round, counted.metrics)
        driver.emit(
            .resultAccepted(
                round: driver.round, site: site, sampleCount: counted.samples,
                metrics: counted.metrics))
        driver.answer(site)
    }

    /// A broken stream (transport error): its partial contribution is taken back out; the round goes on.
    public func abandonResult(site: String, reason: String) { abandon(site: site, reason: reason) }

    /// Liveness: the last time each site was heard from (for the admin's status).
    public func heartbeat(site: String) { driver.seen(site) }

    /// Takes a broken or invalid stream's partial contribution back out; the round goes on.
    public func abandon(site: String, reason: String) {
        if let round = secure, round.isUploading(site) {
            secure?.abandon(site: site)
            driver.emit(.resultRejected(round: driver.round, site: site, reason: reason))
            return
        }
        guard intake.isStreaming(site) else {
            // Nothing of it is in the sums (never begun, already taken out, or voided by a rebuild).
            if !intake.isVoided(site) { driver.emit(.resultRejected(round: driver.round, site: site, reason: reason)) }
            return
        }
        driver.emit(.resultRejected(round: driver.round, site: site, reason: reason))
        apply(intake.takeBack(site: site, reason: reason))
    }

    private func reject(site: String, _ failure: ResultIntake.Failure) {
        if failure.error.code != .transient {
            driver.emit(.resultRejected(round: driver.round, site: site, reason: failure.error.message))
        }
        apply(failure.takeBack)
    }

    /// What taking a result back asks of the round: committed results sent again after a rebuild of the sums, or
    /// the end of a round whose sums cannot be repaired.
    private func apply(_ takeBack: ResultIntake.TakeBack) {
        switch takeBack {
        case .done: break
        case .resend(let sites):
            graceStarted = false
            for site in sites {
                driver.emit(
                    .resultRejected(
                        round: driver.round, site: site,
                        reason: "counted, then taken out with "
                            + "the round's sums: another result failed part-way and the sums are rebuilt from the "
                            + "results "
                            + "sent again; \(site) is asked for its result again"))
                driver.reopen(site)
            }
        case .lost(let reason): driver.breakRound(reason: reason)
        }
    }
}

extension Optional {
    /// The value, leaving nil behind (moves it out without a copy).
    fileprivate mutating func take() -> Wrapped? {
        defer { self = nil }
        return self
    }
}
