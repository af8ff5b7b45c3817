import FederationCore
import Foundation

/// The server's job scheduler (`tessera server`): admins submit pipelines, which queue and run one at a time; the
/// sites' calls go to the running job. State lives in the store (SQLite), so a restarted server resumes the job that
/// was running at its next round (the coordinator reloads the last checkpoint) and keeps the queue.
///
/// A site that polls while no job of its own runs waits (its long-poll stays open) until one starts. When a job
/// ends, its sites' polls answer "no task"; they poll again and wait for the next job.
public actor JobManager: FederationService, AdminService {
    private let store: SQLiteCheckpointStore
    private let factory: any JobFactory
    private let log: @Sendable (String) -> Void
    private let observers: [any JobObserver]

    private var current: (id: String, runner: any JobRunner)?
    private var abortRequested: [String: String] = [:]
    /// Sites waiting for a job to start, each poll by id.
    private var idleSites: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiterID = 0
    /// The job each site last got a task from, until it has been told that job ended.
    private var participating: [String: String] = [:]
    /// Watchers of a job (queued or running): each gets the events so far, then the new ones.
    private var watchers: [String: [AsyncStream<JobEvent>.Continuation]] = [:]
    /// The running job's events so far (replayed to a late watcher).
    private var history: [String: [JobEvent]] = [:]
    private var wake: CheckedContinuation<Void, Never>?
    private var stopped = false
    /// Each site's last call and the version its client reported, since the server started.
    private var contacts: [String: (at: Date, version: String)] = [:]

    /// - Parameters:
    ///   - store: jobs, rounds and models on disk; job files go to `<store folder>/<job>/files/`.
    ///   - factory: turns pipelines into runners.
    ///   - log: one line per job event (the server's log).
    ///   - observers: told every event of every job as it happens (metrics, TensorBoard event files).
    public init(
        store: SQLiteCheckpointStore, factory: any JobFactory, observers: [any JobObserver] = [],
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.factory = factory
        self.observers = observers
        self.log = log
    }

    // MARK: - The job loop

    /// Runs jobs until `stop()`: first a job that was running when the server stopped (resumed from its checkpoint),
    /// then the queue in submission order.
    public func run() async {
        while !stopped {
            let next: JobRecord?
            do {
                let jobs = try await store.jobs()
                next = jobs.first { $0.state == .running } ?? jobs.first { $0.state == .queued }
            } catch {
                log("cannot read the job queue: \(error)")
                return
            }
            guard let job = next else {
                // `stop()` may have come while the queue was read: check again before sleeping.
                await withCheckedContinuation { continuation in
                    if stopped { continuation.resume() } else { wake = continuation }
                }
                continue
            }
            await runJob(job)
        }
    }

    /// Ends `run()` after the current job's next event (the server is shutting down). Running jobs stay `running`
    /// in the store and resume when the server starts again.
    public func stop() {
        stopped = true
        wake?.resume()
        wake = nil
        // Sites waiting for a job are answered "no task" now: their open calls must not hold up the shutdown.
        for (_, list) in idleSites { for c in list.values { c.resume() } }
        idleSites = [:]
        if let current { Task { await current.runner.abort(reason: "the server is shutting down") } }
    }

    private func runJob(_ job: JobRecord) async {
        let runner: any JobRunner
        do {
            runner = try await factory.makeRunner(
                jobID: job.id, pipeline: job.pipeline, submittedBy: job.submittedBy,
                store: store)
        } catch {
            log("job \(job.id) cannot start: \(error.message)")
            try? await store.update(
                jobID: job.id, state: .failed, reason: "cannot start: \(error.message)", finishedAt: Self.now())
            await journal(job.id, .jobState, detail: "failed: cannot start: \(error.message)")
            return
        }
        if job.state == .running {
            log("job \(job.id) resumes after round \(job.completedRounds) of \(job.rounds)")
        } else {
            log(
                "job \(job.id) (\(job.name), \(job.kind.rawValue)) starts: \(job.rounds) round(s) at \(job.sites.joined(separator: ", "))"
            )
            try? await store.update(jobID: job.id, state: .running)
            await journal(job.id, .jobState, detail: JobState.running.rawValue)
        }
        let events = await runner.observe()
        let id = job.id
        history[id] = []
        let logging = Task {
            for await event in events { await self.record(event, job: id) }
        }
        current = (job.id, runner)
        for (_, list) in idleSites { for c in list.values { c.resume() } }
        idleSites = [:]

        var state = JobState.finished
        var reason = ""
        do {
            try await runner.execute()
        } catch {
            if stopped {
                // Shutting down: the job stays `running` and resumes at the next start.
                current = nil
                await logging.value
                return
            }
            state = abortRequested[job.id] != nil ? .aborted : .failed
            reason = abortRequested[job.id] ?? error.message
        }
        await logging.value
        // Files and state first, then the watchers hear the end: what they ask next is already true.
        do {
            _ = try await runner.writeFiles(to: filesFolder(job.id))
        } catch {
            log("job \(job.id): \(error.message)")
        }
        try? await store.update(jobID: job.id, state: state, reason: reason, finishedAt: Self.now())
        // An abort's state change is recorded by `abort` itself, when it is asked.
        if abortRequested[job.id] == nil {
            await journal(job.id, .jobState, detail: state.rawValue + (reason.isEmpty ? "" : ": \(reason)"))
        }
        current = nil
        history[id] = nil
        for watcher in watchers.removeValue(forKey: id) ?? [] {
            watcher.yield(state == .finished ? .jobFinished : .jobFailed(reason: reason))
            watcher.finish()
        }
        log("job \(job.id) \(state.rawValue)\(reason.isEmpty ? "" : ": \(reason)")")
    }

    /// Logs an event of the running job (server log and audit log) and passes it to its watchers.
    private func record(_ event: JobEvent, job: String) async {
        log("job \(job): \(Self.describe(event))")
        let now = Date()
        for observer in observers { observer.observe(event, job: job, at: now) }
        // The terminal event goes out once the job's state is stored (in `runJob`).
        guard !event.isTerminal else { return }
        await journal(job, .jobEvent, site: event.site, detail: Self.describe(event))
        history[job, default: []].append(event)
        for watcher in watchers[job] ?? [] { watcher.yield(event) }
    }

    private func filesFolder(_ jobID: String) -> String {
        store.folder + "/" + store.safe(jobID) + "/files"
    }

    /// Appends a job entry (`actor` `server`, outcome `ok`) to the audit log.
    private func journal(_ jobID: String, _ kind: AuditEntry.Kind, site: String? = nil, detail: String) async {
        await audit(
            AuditEntry(kind: kind, actor: "server", role: "server", jobID: jobID, site: site ?? "", detail: detail))
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    /// One line for a job event (logs, `tessera admin watch`).
    public static func describe(_ e: JobEvent) -> String {
        func m(_ metrics: [String: Double]) -> String {
            metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4g", $0.value))" }.joined(
                separator: " ")
        }
        switch e {
        case .roundStarted(let r, let a, let sites):
            return "round \(r)\(a > 0 ? " attempt \(a + 1)" : "") started at \(sites.joined(separator: ", "))"
        case .resultAccepted(let r, let site, let n, let metrics):
            return "round \(r): result of \(site) accepted (\(n) samples) \(m(metrics))"
        case .resultRejected(let r, let site, let reason): return "round \(r): result of \(site) rejected: \(reason)"
        case .siteDeclined(let r, let site, let reason): return "round \(r): \(site) declined: \(reason)"
        case .gracePeriodStarted(let r, let n): return "round \(r): \(n) results, grace period started"
        case .roundClosed(let r, let participants, let reason):
            return "round \(r) closed (\(reason)) with \(participants.joined(separator: ", "))"
        case .roundRetried(let r, let a, let reason): return "round \(r) retried (attempt \(a + 1)): \(reason)"
        case .crossSiteStarted(let sites): return "cross-site evaluation started at \(sites.joined(separator: ", "))"
        case .localModelReceived(let site): return "local model of \(site) received for cross-site evaluation"
        case .crossSiteEvaluated(let model, let site, let metrics):
            return "\(model) model evaluated at \(site): \(m(metrics))"
        case .jobFinished: return "finished"
        case .jobFailed(let reason): return "failed: \(reason)"
        }
    }

    // MARK: - FederationService (sites)

    private func runner(for site: String) -> (any JobRunner)? {
        guard let current, current.runner.participants.contains(site) else { return nil }
        return current.runner
    }

    /// The running job's id when the site takes part in it, else "" (no job for it yet).
    public func register(site: String) async throws(FederationError) -> String {
        guard let runner = runner(for: site), !(await runner.isOver), let id = current?.id else { return "" }
        _ = try await runner.register(site: site)
        return id
    }

    /// The site's next task in the running job; waits for a job of the site's to start when there is none.
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        while !Task.isCancelled && !stopped {
            if let current, current.runner.participants.contains(site), !(await current.runner.isOver) {
                let task = try await current.runner.nextTask(site: site)
                if task == nil { participating[site] = nil } else { participating[site] = current.id }
                return task
            }
            // The site's job ended since it last polled: tell it ("no task"), once; later polls wait for a new job.
            if participating.removeValue(forKey: site) != nil { return nil }
            let id = nextWaiterID
            nextWaiterID += 1
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    if Task.isCancelled || stopped {
                        continuation.resume()
                        return
                    }
                    idleSites[site, default: [:]][id] = continuation
                }
            } onCancel: {
                Task { await self.stopWaiting(site: site, id: id) }
            }
        }
        return nil
    }

    private func stopWaiting(site: String, id: Int) {
        idleSites[site]?.removeValue(forKey: id)?.resume()
    }

    private func running(_ jobID: String) throws(FederationError) -> any JobRunner {
        guard let current, current.id == jobID else {
            throw FederationError(.staleRound, "job \(jobID) is not running on this server")
        }
        return current.runner
    }

    private func runningForStream() throws(FederationError) -> any JobRunner {
        guard let current else { throw FederationError(.staleRound, "no job is running on this server") }
        return current.runner
    }

    public func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        try await running(task.jobID).model(for: task, maxScalars: maxScalars)
    }

    public func modelDownload(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) async throws(FederationError) -> ModelDownload {
        try await running(task.jobID).modelDownload(for: task, maxScalars: maxScalars, held: held)
    }

    public func beginResult(_ header: ResultHeader) async throws(FederationError) {
        try await running(header.jobID).beginResult(header)
    }

    public func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError) {
        try await runningForStream().resultChunk(site: site, chunk)
    }

    public func endResult(site: String) async throws(FederationError) {
        try await runningForStream().endResult(site: site)
    }

    public func abandonResult(site: String, reason: String) async {
        await current?.runner.abandonResult(site: site, reason: reason)
    }

    public func heartbeat(site: String) async {
        await runner(for: site)?.heartbeat(site: site)
    }

    // MARK: - AdminService

    public func submit(pipeline: String, name: String, by admin: String) async throws(FederationError) -> String {
        let plan = try factory.plan(pipeline: pipeline)
        if let twice = Dictionary(grouping: plan.sites, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw FederationError(.invalidConfiguration, "federation.sites lists '\(twice)' more than once")
        }
        let jobs = try await store.jobs()
        let sequence = (jobs.map(\.sequence).max() ?? 0) + 1
        let id = String(format: "job-%04d", sequence)
        let record = JobRecord(
            id: id, sequence: sequence, name: name.isEmpty ? "job" : name, kind: plan.kind, pipeline: pipeline,
            state: .queued, rounds: plan.rounds, sites: plan.sites, submittedBy: admin,
            submittedAt: Self.now())
        try await store.insert(record)
        await journal(id, .jobState, detail: JobState.queued.rawValue)
        log(
            "job \(id) (\(record.name)) submitted by \(admin): \(plan.kind.rawValue), \(plan.rounds) round(s), sites \(plan.sites.joined(separator: ", "))"
        )
        wake?.resume()
        wake = nil
        return id
    }

    public func status(jobID: String?) async throws(FederationError) -> [JobSummary] {
        var jobs = try await store.jobs()
        if let jobID {
            jobs = jobs.filter { $0.id == jobID }
            guard !jobs.isEmpty else {
                throw FederationError(
                    .unknownJob, "no job '\(jobID)' on this server; `tessera admin status` lists them")
            }
        }
        var out: [JobSummary] = []
        for job in jobs {
            var summary = JobSummary(
                jobID: job.id, name: job.name, kind: job.kind, state: job.state, rounds: job.rounds,
                completedRounds: job.completedRounds, sites: job.sites, reason: job.reason,
                submittedBy: job.submittedBy, submittedAt: job.submittedAt, finishedAt: job.finishedAt)
            if let current, current.id == job.id {
                let progress = await current.runner.progress()
                summary.completedRounds = progress.completedRounds
                summary.siteStates = progress.siteStates
            }
            out.append(summary)
        }
        return out
    }

    public func abort(jobID: String, by admin: String) async throws(FederationError) {
        guard let job = try await status(jobID: jobID).first else { return }
        guard !job.state.isOver else {
            throw FederationError(.invalidConfiguration, "job \(jobID) is already \(job.state.rawValue)")
        }
        let reason = "aborted by \(admin)"
        abortRequested[jobID] = reason
        if let current, current.id == jobID {
            // Stored at once (the runner winds down after); `runJob` records the same when it returns.
            try await store.update(jobID: jobID, state: .aborted, reason: reason, finishedAt: Self.now())
            await current.runner.abort(reason: reason)
        } else {
            try await store.update(jobID: jobID, state: .aborted, reason: reason, finishedAt: Self.now())
            for watcher in watchers.removeValue(forKey: jobID) ?? [] {
                watcher.yield(.jobFailed(reason: reason))
                watcher.finish()
            }
        }
        await journal(jobID, .jobState, detail: "\(JobState.aborted.rawValue): \(reason)")
        log("job \(jobID) \(reason)")
    }

    /// The job's files (`global.safetensors`, `metrics.json`, ...) and the global model after each round
    /// (`round-0001.safetensors`, ...).
    public func files(jobID: String) async throws(FederationError) -> [JobFile] {
        guard let job = try await status(jobID: jobID).first else { return [] }
        let folder = filesFolder(jobID)
        let checkpoints = store.folder + "/" + store.safe(jobID)
        let rounds = ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? [])
            .filter { $0.hasPrefix("round-") && $0.hasSuffix(".safetensors") && !$0.contains(".server-state.") }
            .sorted()
            .map { JobFile(name: $0, path: checkpoints + "/" + $0) }
        if let current, current.id == jobID {
            return try await current.runner.writeFiles(to: folder) + rounds
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { name in
            var directory: ObjCBool = false
            return !name.hasPrefix(".")
                && FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &directory)
                && !directory.boolValue
        }
        guard !names.isEmpty else {
            throw FederationError(.noResults, "job \(jobID) is \(job.state.rawValue) and has no files yet")
        }
        return names.sorted().map { JobFile(name: $0, path: folder + "/" + $0) } + rounds
    }

    public func events(jobID: String) async throws(FederationError) -> AsyncStream<JobEvent> {
        guard let job = try await status(jobID: jobID).first else { return AsyncStream { $0.finish() } }
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self)
        if let current, current.id == jobID {
            for event in history[jobID] ?? [] { continuation.yield(event) }
            watchers[jobID, default: []].append(continuation)
            return stream
        }
        switch job.state {
        case .finished:
            continuation.yield(.jobFinished)
            continuation.finish()
        case .failed, .aborted:
            continuation.yield(.jobFailed(reason: job.reason))
            continuation.finish()
        case .queued, .running:
            watchers[jobID, default: []].append(continuation)
        }
        return stream
    }

    // MARK: - Sites and the audit log

    public func noteContact(site: String, version: String) {
        contacts[site] = (Date(), version.isEmpty ? contacts[site]?.version ?? "" : version)
    }

    public func sites() async -> [SiteStatus] {
        let now = Date()
        var out: [SiteStatus] = []
        var task: (job: String, round: Int, sites: [String])?
        if let current, !(await current.runner.isOver) {
            let progress = await current.runner.progress()
            task = (current.id, progress.completedRounds + 1, current.runner.participants)
        }
        for (site, contact) in contacts.sorted(by: { $0.key < $1.key }) {
            var doing = ""
            if let task, task.sites.contains(site) { doing = "\(task.job) round \(task.round)" }
            out.append(
                SiteStatus(
                    site: site, lastContact: SQLiteCheckpointStore.auditTime(contact.at),
                    secondsSinceContact: max(0, now.timeIntervalSince(contact.at)), version: contact.version,
                    currentTask: doing))
        }
        return out
    }

    public func log(jobID: String) async throws(FederationError) -> [AuditEntry] {
        _ = try await status(jobID: jobID)
        return try await store.auditEntries(jobID: jobID)
    }

    public func audit(_ entry: AuditEntry) async {
        do { try await store.appendAudit(entry) } catch {
            log("audit log: \(error.description); lost entry: \(entry)")
        }
    }
}
