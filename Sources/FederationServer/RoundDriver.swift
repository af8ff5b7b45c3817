import FederationCore

/// Why a round ended: the one answer every job runner's round gives.
public enum RoundOutcome: Sendable, Equatable {
    /// The round closed with the results it has (`closure` says why).
    case closed(RoundClosure)
    /// The deadline passed without enough results: the runner runs the round again (or gives up).
    case retry
    /// The round cannot close correctly (`reason`); the job fails.
    case failed(String)
    /// An admin or the server's shutdown stopped the job (`reason`).
    case aborted(String)
    /// Sites declined their tasks (their own policy, or their privacy budget), so the round cannot gather what it
    /// needs; `reason` names each site and its reason. Retrying cannot help: the job fails.
    case declined(String)
}

/// What closed a round (recorded with it: `RoundRecord.closedBy` holds the raw value).
public enum RoundClosure: String, Sendable, Equatable, Codable {
    case everySiteAnswered = "every site answered"
    case minClientsAndGrace = "min_clients and grace period"
    case deadlineWithMinClients = "deadline with min_clients"
    case deadline = "deadline"
}

/// What a round is waiting for: one of these is handed to the runner's policy each time something happens.
package enum RoundSignal: Sendable, Equatable {
    /// A site's answer was committed (`RoundDriver.answer`).
    case answered(site: String)
    /// A site declined its task with a reason (`RoundDriver.decline`); it will not answer this round.
    case declined(site: String)
    /// A timer of this round fired.
    case timer(RoundTimer)
    /// The round cannot go on (an error inside a call that the round cannot recover from).
    case broken(reason: String)
    /// The job was aborted.
    case aborted(reason: String)
}

/// The timers a round can arm: its deadline, and the grace period after `minClients` results.
package enum RoundTimer: Sendable, Equatable { case deadline, grace }

/// How a job ended, as its runner reports it.
public enum JobEnd: Sendable, Equatable {
    case finished
    case failed(String)

    var reason: String? {
        if case .failed(let reason) = self { return reason }
        return nil
    }
}

/// The mechanism every job runner shares (training rounds, cross-site evaluation, statistics phases): the tasks of
/// the current round, the sites' long-polls for them, the round's timers on the injected clock, the answers so far,
/// abort, the job's events and its one ending. The runners (`Coordinator`, `CrossSiteEvaluation`,
/// `StatisticsCoordinator`) are policies on top of it: which tasks a round hands out, what an answer means, and when
/// a round closes (`RoundHost.runRound(decide:)`).
///
/// Invariants: a job ends exactly once (`end`), whatever ends it — a return, any error, an abort — and then every
/// long-poll is answered, every timer cancelled, and the event stream finished with its terminal event; a timer of
/// an earlier round never reaches a later one; an abort that comes between rounds ends the next `runRound` at once.
package struct RoundDriver<C: Clock>: Sendable where C.Duration == Duration {
    package let jobID: String
    /// The job's sites (no duplicates: `JobConfiguration.validate`).
    package let participants: [String]
    package let clock: C

    /// The round being run (0 before the first).
    package private(set) var round = 0
    package private(set) var attempt = 0
    /// The current round's tasks, by site; empty between rounds.
    package private(set) var tasks: [String: TaskAssignment] = [:]
    /// Sites whose answer to the current round counts.
    package private(set) var answered: Set<String> = []
    /// Sites that declined their task this round, with their reasons (bounded by the result payload limit).
    package private(set) var declined: [String: String] = [:]
    package private(set) var lastSeen: [String: C.Instant] = [:]
    package private(set) var abortReason: String?
    /// How the job ended; nil while it runs.
    package private(set) var ending: JobEnd?

    private var polls = SitePolls()
    private var observers = EventFanout()
    /// Bumped by every round (and attempt): a timer or signal of another generation is stale.
    private var generation = 0
    private var timers: [Task<Void, Never>] = []
    private var pending: [RoundSignal] = []
    private var waiter: CheckedContinuation<RoundSignal, Never>?
    private var inRound = false

    package init(jobID: String, participants: [String], clock: C) {
        self.jobID = jobID
        self.participants = participants
        self.clock = clock
    }

    package var isOver: Bool { ending != nil }

    // MARK: - Events

    package mutating func observe() -> AsyncStream<JobEvent> { observers.observe() }

    package func emit(_ event: JobEvent) { observers.emit(event) }

    // MARK: - Sites

    /// - Throws: `.unknownSite` when `site` is not a participant.
    package func requireParticipant(_ site: String) throws(FederationError) {
        guard participants.contains(site) else {
            throw FederationError(.unknownSite, "site '\(site)' is not a participant of job \(jobID)")
        }
    }

    package mutating func seen(_ site: String) { lastSeen[site] = clock.now }

    /// Seconds since each site was last heard from.
    package func secondsSinceSeen() -> [String: Double] {
        let now = clock.now
        return lastSeen.mapValues { $0.duration(to: now).inSeconds }
    }

    /// The site's task when it has one it has not answered; nil when it must wait (or the job is over).
    package func pendingTask(for site: String) -> TaskAssignment? {
        guard !isOver, let task = tasks[site], !answered.contains(site), declined[site] == nil else { return nil }
        return task
    }

    /// True when `site` has a task in the current round (answered or not).
    package func isAsked(_ site: String) -> Bool { tasks[site] != nil }

    /// Sites asked this round that have neither answered nor declined.
    package var unanswered: [String] {
        tasks.keys.filter { !answered.contains($0) && declined[$0] == nil }.sorted()
    }

    // MARK: - Rounds

    /// Starts round `number` (attempt `attempt`): hands `tasks` to the sites' open long-polls (later polls get them
    /// from `pendingTask`). Timers of earlier rounds are cancelled.
    package mutating func start(round number: Int, attempt: Int, tasks list: [TaskAssignment]) {
        cancelTimers()
        generation += 1
        round = number
        self.attempt = attempt
        answered = []
        declined = [:]
        pending = []
        inRound = true
        tasks = Dictionary(list.map { ($0.site, $0) }, uniquingKeysWith: { first, _ in first })
        emit(.roundStarted(round: number, attempt: attempt, sites: tasks.keys.sorted()))
        for (site, task) in tasks { polls.deliver(task, to: site) }
    }

    /// Counts `site`'s answer to the current round and wakes the round's policy.
    package mutating func answer(_ site: String) {
        guard inRound, tasks[site] != nil, !answered.contains(site) else { return }
        answered.insert(site)
        lastSeen[site] = clock.now
        post(.answered(site: site), generation: generation)
    }

    /// Records that `site` declined its task this round with `reason` (its policy or privacy budget said no), and
    /// wakes the round's policy. The site is not asked again this round.
    package mutating func decline(_ site: String, reason: String) {
        guard inRound, tasks[site] != nil, !answered.contains(site), declined[site] == nil else { return }
        declined[site] = reason
        lastSeen[site] = clock.now
        emit(.siteDeclined(round: round, site: site, reason: reason))
        post(.declined(site: site), generation: generation)
    }

    /// Why each site that declined a task of the current round said no.
    package var declinedReasons: String {
        declined.keys.sorted().map { "\($0) declined: \(declined[$0] ?? "")" }.joined(separator: "; ")
    }

    /// Uncounts `site`'s answer (its result was taken back out) and hands it its task again.
    package mutating func reopen(_ site: String) {
        guard inRound, let task = tasks[site] else { return }
        answered.remove(site)
        polls.deliver(task, to: site)
    }

    /// The round cannot close correctly: its policy hears `.broken(reason)`.
    package mutating func breakRound(reason: String) {
        guard inRound else { return }
        post(.broken(reason: reason), generation: generation)
    }

    /// Ends the round: no more tasks or answers; its timers are cancelled.
    package mutating func finishRound() {
        inRound = false
        tasks = [:]
        pending = []
        cancelTimers()
    }

    /// Stops the job: the round in progress (or the next one to start) ends with `.aborted(reason)`.
    package mutating func abort(reason: String) {
        guard !isOver, abortReason == nil else { return }
        abortReason = reason
        post(.aborted(reason: reason), generation: nil)
    }

    /// Ends the job: every long-poll answered "no task", timers cancelled, observers told (`jobFinished` or
    /// `jobFailed`) and finished. Only the first call counts.
    package mutating func end(_ how: JobEnd) {
        guard ending == nil else { return }
        ending = how
        inRound = false
        tasks = [:]
        cancelTimers()
        polls.releaseAll()
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: .aborted(reason: how.reason ?? "the job ended"))
        }
        switch how {
        case .finished: emit(.jobFinished)
        case .failed(let reason): emit(.jobFailed(reason: reason))
        }
        observers.finish()
    }

    // MARK: - Signals and timers (driven by `RoundHost`)

    fileprivate var currentGeneration: Int { generation }

    fileprivate mutating func post(_ signal: RoundSignal, generation g: Int?) {
        if let g, g != generation || !inRound { return }
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: signal)
        } else {
            pending.append(signal)
        }
    }

    fileprivate mutating func takeSignal() -> RoundSignal? {
        if let reason = abortReason { return .aborted(reason: reason) }
        return pending.isEmpty ? nil : pending.removeFirst()
    }

    fileprivate mutating func wait(_ continuation: CheckedContinuation<RoundSignal, Never>) {
        if let signal = takeSignal() {
            continuation.resume(returning: signal)
        } else if isOver {
            continuation.resume(returning: .aborted(reason: ending?.reason ?? "the job ended"))
        } else {
            waiter = continuation
        }
    }

    fileprivate mutating func add(timer: Task<Void, Never>) { timers.append(timer) }

    private mutating func cancelTimers() {
        for timer in timers { timer.cancel() }
        timers = []
    }

    // MARK: - Long-polls

    fileprivate mutating func reservePoll() -> Int { polls.reserve() }

    fileprivate mutating func addPoll(
        site: String, id: Int, _ continuation: CheckedContinuation<TaskAssignment?, Never>
    ) {
        if isOver {
            continuation.resume(returning: nil)
        } else {
            polls.add(site: site, id: id, continuation)
        }
    }

    fileprivate mutating func cancelPoll(site: String, id: Int) { polls.cancel(site: site, id: id) }
}

/// A job runner built on a `RoundDriver` (kept in its actor as `driver`): the round loop, timers, long-polls and the
/// job's ending, written once.
package protocol RoundHost: Actor {
    associatedtype RoundClock: Clock where RoundClock.Duration == Duration
    var driver: RoundDriver<RoundClock> { get set }
}

extension RoundHost {
    /// Runs one round: hands out `tasks`, arms the deadline `timeout` from now, and hands every signal to `decide`
    /// until it returns an outcome (nil: keep waiting). An abort, a broken round or the job's end always return at
    /// once (`decide` is not asked); timers are cancelled and the tasks withdrawn before this returns.
    package func runRound(
        _ number: Int, attempt: Int = 0, tasks: [TaskAssignment], timeout: Duration,
        decide: (RoundSignal) -> RoundOutcome?
    ) async -> RoundOutcome {
        if let reason = driver.abortReason { return .aborted(reason) }
        if let ending = driver.ending { return .aborted(ending.reason ?? "the job ended") }
        driver.start(round: number, attempt: attempt, tasks: tasks)
        schedule(.deadline, after: timeout)
        // A round with no task (nobody asked) is complete at once.
        var outcome: RoundOutcome? = tasks.isEmpty ? decide(.timer(.deadline)) : nil
        while outcome == nil {
            switch await nextSignal() {
            case .aborted(let reason): outcome = .aborted(reason)
            case .broken(let reason): outcome = .failed(reason)
            case let signal: outcome = decide(signal)
            }
        }
        driver.finishRound()
        return outcome ?? .failed("round \(number) ended without an outcome")
    }

    /// A round that waits for every asked site, or closes at its deadline with the answers it has (never retried:
    /// what is missing is recorded by the caller). Cross-site evaluation steps and statistics phases.
    package func runRoundUntilAnswered(_ number: Int, tasks: [TaskAssignment], timeout: Duration) async
        -> RoundOutcome
    {
        await runRound(number, tasks: tasks, timeout: timeout) { signal in
            switch signal {
            case .answered, .declined: return driver.unanswered.isEmpty ? .closed(.everySiteAnswered) : nil
            case .timer(.deadline): return .closed(.deadline)
            case .timer(.grace): return nil
            case .broken(let reason): return .failed(reason)
            case .aborted(let reason): return .aborted(reason)
            }
        }
    }

    /// Arms `timer` of the current round: it reaches the round's policy once `delay` has passed on the clock,
    /// unless the round ended first. The instant is fixed now, so time that passes before the timer task runs
    /// still counts.
    package func schedule(_ timer: RoundTimer, after delay: Duration) {
        let clock = driver.clock
        let deadline = clock.now.advanced(by: delay)
        let generation = driver.currentGeneration
        let task = Task { [weak self] in
            do { try await clock.sleep(until: deadline, tolerance: nil) } catch { return }
            await self?.fire(timer, generation: generation)
        }
        driver.add(timer: task)
    }

    private func fire(_ timer: RoundTimer, generation: Int) {
        driver.post(.timer(timer), generation: generation)
    }

    /// The next signal of the round; a cancelled caller (the job's task was cancelled) aborts the job, so a round
    /// never outlives the task running it.
    private func nextSignal() async -> RoundSignal {
        if let signal = driver.takeSignal() { return signal }
        if Task.isCancelled {
            driver.abort(reason: "the job's task was cancelled")
            return .aborted(reason: "the job's task was cancelled")
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in driver.wait(continuation) }
        } onCancel: {
            Task { await self.cancelled() }
        }
    }

    private func cancelled() { driver.abort(reason: "the job's task was cancelled") }

    /// Runs the job's body and ends the job exactly once, however the body ends: `.finished` when it returns,
    /// `.failed(reason)` for any error it throws (also one that is not a `FederationError`) or an abort.
    /// - Throws: `.jobFailed` with the reason when the job did not finish.
    package func runJob(_ body: () async throws -> Void) async throws(FederationError) {
        do {
            if let reason = driver.abortReason { throw FederationError(.jobFailed, reason) }
            try await body()
        } catch {
            let reason = driver.abortReason ?? Self.reason(error)
            driver.end(.failed(reason))
            throw FederationError(.jobFailed, reason, cause: (error as? FederationError)?.cause ?? "\(error)")
        }
        if let reason = driver.abortReason, driver.ending == nil {
            driver.end(.failed(reason))
            throw FederationError(.jobFailed, reason)
        }
        driver.end(.finished)
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? FederationError { return error.message }
        return "the job stopped on an unexpected error: \(error)"
    }

    /// The site's current task, waiting until there is one; nil once the job is over (or the caller went away).
    /// Checks that `site` takes part and records that it was seen.
    package func nextPendingTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try driver.requireParticipant(site)
        driver.seen(site)
        if driver.isOver { return nil }
        if let task = driver.pendingTask(for: site) { return task }
        let id = driver.reservePoll()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: nil)
                } else {
                    driver.addPoll(site: site, id: id, continuation)
                }
            }
        } onCancel: {
            Task { await self.cancelPoll(site: site, id: id) }
        }
    }

    private func cancelPoll(site: String, id: Int) { driver.cancelPoll(site: site, id: id) }
}
