import FederationCore
import Foundation

/// Runs one federated job round by round: hands tasks to long-polling sites, accumulates their streamed results,
/// closes each round at `minClients` + grace period (or when every site answered, or at the deadline), aggregates
/// through the strategy and checkpoints. Every wait uses the injected clock, so tests drive time explicitly.
///
/// Invariants: a result counts once (a duplicate or one for another round is rejected and logged); the server
/// holds the global model, one accumulator and the chunk in flight; a round that cannot reach `minClients` by its
/// deadline is retried, then the job fails with a reason — it never hangs.
///
/// Memory: downloads stream from a copy-on-write snapshot of the global model (`model(for:)` hands out chunks that
/// are views into it); a result's chunks are checked one by one as they arrive (tensor name, shape, bounds, NaN/Inf,
/// size) and added into the round's sums at once, never kept. Closing a round turns the sums into the mean in place
/// and updates the global model in place (`Strategy.updateGlobal`). The global model only ever changes there, from
/// the sums of complete, committed results.
///
/// A result that fails after part of it was added (a bad chunk half-way, a broken stream, a missing tensor at the
/// end) must leave no trace in the sums, yet the server keeps none of its values. Two ways out, by cost:
/// - **Rebuild (the common path, no writes):** the round's sums are zeroed and every result that was in them —
///   committed or still streaming — is asked for again: streams in flight are refused with `.transient` (the site
///   resends the same result at once), committed sites get their task again (a `SiteAgent` keeps its last result until
///   its next task and sends the same one again, without training again). Nothing is written per chunk, so an uneventful round costs the
///   additions only; the price of a failure is a resend of the results received so far in that round.
/// - **Spill (fallback, per site):** a site whose result failed that way is on probation for the rest of the job:
///   its later results are also written to its spill file (`ResultSpill`: anonymous, reused from round to round), so
///   when one of them fails again it is taken out by reading its chunks back and subtracting them, and a site that
///   keeps failing (diverged training sending NaN every round) costs the others nothing. The spill files cost what
///   they did before (about 60% of the server's CPU at 25M parameters × 16 sites when every site was spilled), but
///   only for the sites on probation.
/// A result rejected before any of its chunks was added (stale round, unknown tensor or NaN in its first chunk,
/// wrong header) needs neither.
public actor Coordinator<C: Clock>: FederationService, LongPollHolder where C.Duration == Duration {
    public let configuration: JobConfiguration
    private let clock: C
    private var strategy: any Strategy
    private let store: (any CheckpointStore)?
    public private(set) var global: ParameterSet
    public private(set) var records: [RoundRecord] = []
    public private(set) var completedRounds = 0
    public private(set) var failure: String?
    public private(set) var finished = false

    // Current round.
    private var round = 0
    private var attempt = 0
    private var tasks: [String: TaskAssignment] = [:]
    private var accumulator: StreamingAccumulator?
    /// The last round's mean once the global model has taken it in: the next round's sums, zeroed in place.
    private var spareSums: ParameterSet?
    private var committed: [String: (samples: Int, metrics: [String: Double])] = [:]
    private var inFlight: [String: InFlightResult] = [:]
    /// Sites whose result stream was voided by a rebuild of the sums: their next chunk is refused with `.transient`
    /// (resend), not with "no stream open".
    private var voided: Set<String> = []
    /// Sites whose result failed after part of it was added: their results are spilled from then on (see above).
    public private(set) var probation: Set<String> = []
    /// How many times the sums of a round were rebuilt (zeroed and the results asked for again) during the job.
    public private(set) var sumRebuilds = 0
    /// Where probation sites' in-flight results are spilled: given, or a temporary folder made on first use and
    /// removed at the end.
    private let workDirectory: String?
    private var spillDirectory: String?
    /// One spill file per site that has sent a result, reused for its later results; closed when the job ends.
    private var spills: [String: ResultSpill] = [:]
    private var spillCount = 0
    /// Set when a broken result could not be taken back out of the sums: the round cannot close correctly.
    private var accumulatorLost: String?
    private var graceStarted = false
    package var polls = SitePolls()
    public private(set) var lastSeen: [String: C.Instant] = [:]
    /// Each site's last accepted result: round and metrics (for the admin's status).
    private var lastResult: [String: (round: Int, metrics: [String: Double])] = [:]
    private var abortReason: String?

    private let events: AsyncStream<Internal>
    private let eventSink: AsyncStream<Internal>.Continuation
    private var observers = EventFanout()

    private enum Internal: Sendable {
        case resultCommitted(round: Int, attempt: Int)
        case grace(round: Int, attempt: Int)
        case deadline(round: Int, attempt: Int)
        case aborted
    }

    /// - Parameter workDirectory: where the in-flight results of sites on probation are spilled (one anonymous file
    ///   per such site); nil: a fresh temporary folder, made when first needed and removed when the job ends.
    public init(configuration: JobConfiguration, initialModel: ParameterSet, strategy: any Strategy, clock: C,
                store: (any CheckpointStore)? = nil, workDirectory: String? = nil) {
        self.configuration = configuration
        self.workDirectory = workDirectory
        self.global = initialModel
        self.strategy = strategy
        self.clock = clock
        self.store = store
        (events, eventSink) = AsyncStream.makeStream(of: Internal.self)
    }

    /// A stream of job events (progress display, tests). Each call gets its own stream.
    public func observe() -> AsyncStream<JobEvent> { observers.observe() }

    private func emit(_ e: JobEvent) { observers.emit(e) }

    // MARK: - Running the job

    /// Runs every round; resumes after the last checkpointed round when the store has one.
    /// - Returns: the final global model.
    /// - Throws: `.jobFailed` when a round cannot gather `minClients` results after its retries.
    public func run() async throws(FederationError) -> ParameterSet {
        try configuration.validate()
        if let store, let saved = try await store.load(jobID: configuration.jobID) {
            global = try saved.model.reordered(like: global)
            completedRounds = saved.completedRound
            records = saved.records
        }
        var iterator = events.makeAsyncIterator()
        while completedRounds < configuration.rounds {
            let r = completedRounds + 1
            attempt = 0
            while true {
                startRound(r)
                var outcome: String? = nil
                while outcome == nil {
                    guard let event = await iterator.next() else { break }
                    outcome = handle(event)
                }
                if outcome == "abort" {
                    let reason = abortReason ?? "aborted"
                    fail(reason)
                    throw FederationError(.jobFailed, reason)
                }
                if outcome == "retry" {
                    attempt += 1
                    if attempt > configuration.maxRoundRetries {
                        let reason = "round \(r) gathered \(committed.count) of the \(configuration.minClients) results it "
                            + "needs after \(attempt) attempts (deadline \(configuration.roundTimeout) each); check that "
                            + "the sites are running and can reach the server"
                        fail(reason)
                        throw FederationError(.jobFailed, reason)
                    }
                    emit(.roundRetried(round: r, attempt: attempt, reason: "fewer than \(configuration.minClients) results by the deadline"))
                    continue
                }
                try await closeRound(r, reason: outcome ?? "closed")
                break
            }
        }
        finished = true
        spareSums = nil
        removeSpillDirectory()
        tasks = [:]
        polls.releaseAll()
        emit(.jobFinished)
        observers.finish()
        return global
    }

    private func startRound(_ r: Int) {
        round = r
        committed = [:]
        dropInFlight()
        voided = []
        accumulatorLost = nil
        graceStarted = false
        if let spare = spareSums {
            spareSums = nil
            accumulator = StreamingAccumulator(structure: global, reusing: consume spare)
        } else {
            accumulator = StreamingAccumulator(structure: global)
        }
        let configs = strategy.configureTraining(round: r, sites: configuration.sites)
        tasks = [:]
        for (site, config) in configs {
            tasks[site] = TaskAssignment(jobID: configuration.jobID, round: r, kind: .train, site: site,
                                         config: config.merging(configuration.taskConfig) { strategy, _ in strategy })
        }
        emit(.roundStarted(round: r, attempt: attempt, sites: tasks.keys.sorted()))
        for (site, task) in tasks { deliver(task, to: site) }
        schedule(.deadline(round: r, attempt: attempt), after: configuration.roundTimeout)
    }

    /// Decides what an event means for the current round: nil (keep waiting), "retry", or a closing reason.
    private func handle(_ event: Internal) -> String? {
        switch event {
        case .aborted:
            return "abort"
        case let .resultCommitted(r, a) where r == round && a == attempt:
            if pendingCount() == 0 {
                return "every site answered"
            }
            if committed.count >= configuration.minClients && !graceStarted {
                graceStarted = true
                schedule(.grace(round: r, attempt: a), after: configuration.gracePeriod)
                emit(.gracePeriodStarted(round: r, results: committed.count))
            }
            return nil
        case let .grace(r, a) where r == round && a == attempt:
            return committed.count >= configuration.minClients ? "min_clients and grace period" : nil
        case let .deadline(r, a) where r == round && a == attempt:
            return committed.count >= configuration.minClients ? "deadline with min_clients" : "retry"
        default:
            return nil  // an event of an earlier round or attempt
        }
    }

    /// Delivers `event` to the run loop once `delay` has passed on the clock. The deadline is fixed now, so time
    /// that passes before the timer task starts still counts.
    private func schedule(_ event: Internal, after delay: Duration) {
        let deadline = clock.now.advanced(by: delay), sink = eventSink, clock = self.clock
        Task {
            try? await clock.sleep(until: deadline, tolerance: nil)
            sink.yield(event)
        }
    }

    /// Sites asked this round that have not committed a result.
    private func pendingCount() -> Int { tasks.keys.filter { committed[$0] == nil }.count }

    private func closeRound(_ r: Int, reason: String) async throws(FederationError) {
        if let lost = accumulatorLost {
            let message = "round \(r) cannot close: \(lost). Restart the server: it resumes from the last checkpoint"
            fail(message)
            throw FederationError(.jobFailed, message)
        }
        guard var accumulator else { throw FederationError(.noResults, "round \(r) has no accumulator") }
        dropInFlight()
        self.accumulator = nil
        // The mean is computed in the sums' storage and the global model updated in its own: no model-sized
        // temporaries (unless a straggler's download still holds a snapshot of the old model).
        let meanDiff = try accumulator.takeWeightedMean()
        let updates = committed.map { site, c in
            ModelUpdate(jobID: configuration.jobID, round: r, site: site, sampleCount: c.samples, diff: ParameterSet(), metrics: c.metrics)
        }
        try strategy.updateGlobal(round: r, global: &global, meanDiff: meanDiff, updates: updates)
        spareSums = meanDiff
        let record = RoundRecord(round: r, attempt: attempt, participants: committed.keys.sorted(),
                                 metrics: committed.mapValues(\.metrics), closedBy: reason)
        records.append(record)
        completedRounds = r
        tasks = [:]
        if let store {
            try await store.save(jobID: configuration.jobID, completedRound: r, model: global, records: records)
        }
        emit(.roundClosed(round: r, participants: record.participants, reason: reason))
    }

    private func fail(_ reason: String) {
        failure = reason
        dropInFlight()
        removeSpillDirectory()
        tasks = [:]
        polls.releaseAll()
        emit(.jobFailed(reason: reason))
        observers.finish()
    }

    private func deliver(_ task: TaskAssignment, to site: String) { polls.deliver(task, to: site) }

    // MARK: - Control

    /// Stops the job: `run()` throws `.jobFailed` with `reason`, waiting sites are released, the checkpoints stay.
    public func abort(reason: String) {
        guard !finished, failure == nil, abortReason == nil else { return }
        abortReason = reason
        eventSink.yield(.aborted)
    }

    /// True once the job has finished, failed or been aborted.
    public var isOver: Bool { finished || failure != nil }

    /// Rounds done, and what the server knows of each site.
    public func progress() -> JobProgress {
        let now = clock.now
        let states = configuration.sites.map { site in
            SiteState(site: site,
                      secondsSinceSeen: lastSeen[site].map { $0.duration(to: now).inSeconds },
                      lastRound: lastResult[site]?.round ?? 0, lastMetrics: lastResult[site]?.metrics ?? [:])
        }
        return JobProgress(completedRounds: completedRounds, currentRound: finished ? 0 : round, siteStates: states)
    }

    // MARK: - Site-facing API (called by transports)

    /// - Throws: `.unknownSite` for a site that is not a participant.
    public func register(site: String) throws(FederationError) -> String {
        try requireParticipant(site, of: configuration.sites, job: configuration.jobID)
        return configuration.jobID
    }

    /// The site's current task, waiting until there is one; nil once the job has finished or failed. A site that
    /// restarts mid-round gets its task again (until its result is committed).
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try requireParticipant(site, of: configuration.sites, job: configuration.jobID)
        lastSeen[site] = clock.now
        if finished || failure != nil { return nil }
        if let task = tasks[site], committed[site] == nil { return task }
        return await waitForTask(site: site)
    }

    /// The global model for a task of the current round, as views into a copy-on-write snapshot of it: no copy is
    /// made; the transport encodes each chunk as it writes it.
    public func model(for task: TaskAssignment, maxScalars: Int) throws(FederationError) -> [ParameterChunk] {
        guard maxScalars > 0 else { throw FederationError(.invalidConfiguration, "chunk size must be positive") }
        guard task.jobID == configuration.jobID, task.round == round, tasks[task.site] != nil else {
            throw FederationError(.staleRound, "task of round \(task.round) is not current (round \(round))")
        }
        return global.chunks(maxScalars: maxScalars)
    }

    /// Starts receiving a result. Checks the header (participant, job, current round, not already counted).
    public func beginResult(_ header: ResultHeader) throws(FederationError) {
        do throws(FederationError) {
            guard configuration.sites.contains(header.site) else {
                throw FederationError(.unknownSite, "result from '\(header.site)', which is not a participant of job \(configuration.jobID)")
            }
            guard header.jobID == configuration.jobID, header.round == round, tasks[header.site] != nil else {
                throw FederationError(.staleRound, "result from \(header.site) for round \(header.round) of job \(header.jobID); "
                                      + "current: round \(round) of job \(configuration.jobID). Discarded")
            }
            guard committed[header.site] == nil else {
                throw FederationError(.staleRound, "a result from \(header.site) for round \(round) was already counted; the "
                                      + "duplicate is discarded")
            }
            guard header.sampleCount > 0 else {
                throw FederationError(.invalidConfiguration, "result from \(header.site) reports \(header.sampleCount) samples")
            }
            if inFlight[header.site] != nil { takeBack(site: header.site, reason: "its stream started again") }
            voided.remove(header.site)
            let spill = probation.contains(header.site) ? try makeSpill(site: header.site) : nil
            inFlight[header.site] = InFlightResult(header: header, spill: spill)
        } catch {
            emit(.resultRejected(round: header.round, site: header.site, reason: error.message))
            throw error
        }
    }

    /// Checks one chunk of a result and adds it into the sums as it arrives (spilled too for a site on probation);
    /// nothing of it stays in memory.
    public func resultChunk(site: String, _ chunk: ParameterChunk) throws(FederationError) {
        guard var entry = inFlight[site], accumulator != nil else {
            if voided.contains(site) { throw Self.resend(site) }
            throw FederationError(.staleRound, "chunk from \(site) outside a result stream")
        }
        let size = (entry.scalars + chunk.values.count) * MemoryLayout<Float>.size
        let weight = Double(entry.header.sampleCount)
        do throws(FederationError) {
            // An update is never larger than the model it updates.
            let limit = min(configuration.maxUpdateBytes, global.byteCount)
            guard size <= limit else {
                throw FederationError(.tooLarge, "result from \(site) exceeds \(limit) bytes (the model's size or the "
                                      + "job's limit)")
            }
            guard let tensor = try accumulator?.tensorIndex(of: chunk, from: site) else { return }
            // Checked whole before a single value is added: a refused chunk never touches the sums.
            try accumulator?.accept(chunk, weight: weight, from: site)
            if let spill = entry.spill {
                do throws(FederationError) {
                    try spill.append(tensor: tensor, offset: chunk.offset, values: chunk.values)
                } catch {
                    accumulator?.retract(chunk, weight: weight)  // in the sums but not in the file: out again now
                    throw error
                }
            }
            entry.scalars += chunk.values.count
            inFlight[site] = entry
        } catch {
            abandon(site: site, reason: error.message)
            throw FederationError(error.code, "result from \(site) rejected: \(error.message)")
        }
    }

    /// Completes a result: it counts from now on.
    public func endResult(site: String) throws(FederationError) {
        guard let entry = inFlight[site] else {
            if voided.contains(site) { throw Self.resend(site) }
            throw FederationError(.staleRound, "no result stream open for \(site)")
        }
        do throws(FederationError) {
            try accumulator?.commit(client: site, weight: Double(entry.header.sampleCount))
        } catch {
            abandon(site: site, reason: error.message)
            throw FederationError(error.code, "result from \(site) rejected: \(error.message)")
        }
        inFlight[site] = nil
        entry.spill?.reset()
        committed[site] = (entry.header.sampleCount, entry.header.metrics)
        lastResult[site] = (round, entry.header.metrics)
        lastSeen[site] = clock.now
        emit(.resultAccepted(round: round, site: site, sampleCount: entry.header.sampleCount, metrics: entry.header.metrics))
        eventSink.yield(.resultCommitted(round: round, attempt: attempt))
    }

    /// A broken stream (transport error): its partial contribution is taken back out; the round goes on.
    public func abandonResult(site: String, reason: String) { abandon(site: site, reason: reason) }

    /// Liveness: the last time each site was heard from (for the admin's status).
    public func heartbeat(site: String) { lastSeen[site] = clock.now }

    /// Takes a broken or invalid stream's partial contribution back out; the round goes on.
    public func abandon(site: String, reason: String) {
        guard inFlight[site] != nil else {
            // Nothing of it is in the sums (never begun, already taken out, or voided by a rebuild).
            if !voided.contains(site) { emit(.resultRejected(round: round, site: site, reason: reason)) }
            return
        }
        emit(.resultRejected(round: round, site: site, reason: reason))
        takeBack(site: site, reason: reason)
    }

    /// Bytes spilled so far by each site on probation whose result is streaming in (what the server keeps on disk).
    public var inFlightSpillBytes: [String: Int] { inFlight.compactMapValues { $0.spill?.byteCount } }

    /// Spill files open (one per site that has sent a result during the job; none once it has ended).
    public var spillFileCount: Int { spills.count }

    // MARK: - In-flight results

    /// One result being received: its header, how many values were added, and, for a site on probation, the file
    /// its chunks are spilled to.
    private struct InFlightResult {
        var header: ResultHeader
        var spill: ResultSpill?
        var scalars = 0
    }

    /// The error a stream voided by a rebuild gets: transient, so the site sends the same result again.
    private static func resend(_ site: String) -> FederationError {
        FederationError(.transient, "the server rebuilt this round's sums after another site's result failed part-way; "
                        + "\(site) sends its result again")
    }

    /// Takes an unfinished result's contribution back out of the sums: nothing to do when none of it was added;
    /// subtracted chunk by chunk from its spill file for a site on probation; otherwise the sums are rebuilt
    /// (`rebuildSums`) and the site goes on probation.
    private func takeBack(site: String, reason: String) {
        guard let entry = inFlight.removeValue(forKey: site) else { return }
        defer { entry.spill?.reset() }
        guard accumulator != nil else { return }
        guard entry.scalars > 0 else {
            accumulator?.forget(client: site)
            return
        }
        guard let spill = entry.spill else {
            probation.insert(site)
            rebuildSums(after: site, reason: reason)
            return
        }
        let weight = Double(entry.header.sampleCount)
        do throws(FederationError) {
            guard let structure = accumulator?.structure else { return }
            try spill.replay { tensor, offset, values in
                guard structure.indices.contains(tensor) else { return }
                accumulator?.retract(ParameterChunk(tensor: structure[tensor].name, shape: structure[tensor].shape,
                                                    offset: offset, values: values), weight: weight)
            }
        } catch {
            accumulatorLost = "the partial result of \(site) could not be taken back out of the sums (\(error.message))"
        }
        accumulator?.forget(client: site)
    }

    /// Zeroes the round's sums after `failed`'s result failed part-way without a spill file to take it out with, and
    /// asks for every result that was in them again: streams in flight are voided (their next chunk is refused with
    /// `.transient`, so the site resends at once), committed results are uncounted and their sites get their task
    /// again. The global model is untouched; the round goes on and closes on the results sent again.
    private func rebuildSums(after failed: String, reason: String) {
        accumulator?.reset()  // zeroed in their own storage
        for (site, entry) in inFlight {
            entry.spill?.reset()
            voided.insert(site)
        }
        inFlight = [:]
        let lost = committed.keys.sorted()
        committed = [:]
        graceStarted = false
        sumRebuilds += 1
        for site in lost {
            emit(.resultRejected(round: round, site: site, reason: "counted, then taken out with the round's sums: "
                                 + "\(failed)'s result failed part-way (\(reason)) and the sums are rebuilt from the "
                                 + "results sent again; \(site) is asked for its result again"))
            if let task = tasks[site] { deliver(task, to: site) }
        }
    }

    /// Forgets every unfinished result (the round is over) and deletes their files.
    private func dropInFlight() {
        for entry in inFlight.values { entry.spill?.reset() }
        inFlight = [:]
    }

    /// The site's spill file, emptied; created on the site's first result.
    private func makeSpill(site: String) throws(FederationError) -> ResultSpill {
        if let spill = spills[site] {
            spill.reset()
            return spill
        }
        let directory: String
        if let spillDirectory {
            directory = spillDirectory
        } else {
            directory = workDirectory ?? FileManager.default.temporaryDirectory
                .appendingPathComponent("tessera-coordinator-\(Self.fileName(configuration.jobID))-\(UUID().uuidString)").path
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw FederationError(.transient, "the server cannot use its work directory \(directory) for in-flight "
                                      + "results: check that it is writable", cause: String(describing: error))
            }
            spillDirectory = directory
        }
        spillCount += 1
        let spill = try ResultSpill(path: directory + "/\(spillCount)-\(Self.fileName(site)).spill")
        spills[site] = spill
        return spill
    }

    /// Closes every spill file and removes the temporary folder (when the coordinator made it).
    private func removeSpillDirectory() {
        for spill in spills.values { spill.close() }
        spills = [:]
        guard let spillDirectory else { return }
        if workDirectory == nil { try? FileManager.default.removeItem(atPath: spillDirectory) }
        self.spillDirectory = nil
    }

    /// A site or job name as a file-name component: letters, digits, '-', '_' and '.' kept, the rest replaced.
    private static func fileName(_ name: String) -> String {
        String(name.unicodeScalars.map { s in
            (s.properties.isAlphabetic && s.isASCII) || ("0"..."9").contains(s) || "-_.".unicodeScalars.contains(s)
                ? Character(s) : "_"
        }.prefix(64))
    }
}
