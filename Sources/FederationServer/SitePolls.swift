import FederationCore

/// The sites' open long-polls for their next task, held by a job runner (inside its actor). A task handed out
/// reaches every open poll of the site at once: older ones are dead connections of a site that restarted.
public struct SitePolls: Sendable {
    public init() {}

    private var waiting: [String: [Int: CheckedContinuation<TaskAssignment?, Never>]] = [:]
    private var nextID = 0

    /// Reserves an id for a poll about to wait (used to take it back when its caller goes away).
    public mutating func reserve() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    public mutating func add(site: String, id: Int, _ continuation: CheckedContinuation<TaskAssignment?, Never>) {
        waiting[site, default: [:]][id] = continuation
    }

    /// Answers every open poll of `site` with `task`.
    public mutating func deliver(_ task: TaskAssignment, to site: String) {
        guard let list = waiting.removeValue(forKey: site) else { return }
        for continuation in list.values { continuation.resume(returning: task) }
    }

    /// A poll whose caller went away: answered with nil and forgotten.
    public mutating func cancel(site: String, id: Int) {
        waiting[site]?.removeValue(forKey: id)?.resume(returning: nil)
    }

    /// The job is over: every poll gets "no task".
    public mutating func releaseAll() {
        for list in waiting.values { for continuation in list.values { continuation.resume(returning: nil) } }
        waiting = [:]
    }
}

/// The observers of a job's events; each `observe()` gets its own stream.
public struct EventFanout: Sendable {
    public init() {}

    private var observers: [AsyncStream<JobEvent>.Continuation] = []

    public mutating func observe() -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self)
        observers.append(continuation)
        return stream
    }

    public func emit(_ event: JobEvent) { for o in observers { o.yield(event) } }

    public func finish() { for o in observers { o.finish() } }
}

/// A job runner holding its sites' long-polls in `polls` (inside its actor): `waitForTask` is the wait every
/// runner's `nextTask` ends with when the site has no task yet.
package protocol LongPollHolder: Actor {
    var polls: SitePolls { get set }
}

extension LongPollHolder {
    /// Waits until a task is delivered to `site` (`polls.deliver`) or the runner releases every poll (nil); a poll
    /// whose caller goes away (cancelled: its connection closed) is answered with nil and forgotten.
    package func waitForTask(site: String) async -> TaskAssignment? {
        let id = polls.reserve()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled { continuation.resume(returning: nil); return }
                polls.add(site: site, id: id, continuation)
            }
        } onCancel: {
            Task { await self.cancelPoll(site: site, id: id) }
        }
    }

    private func cancelPoll(site: String, id: Int) { polls.cancel(site: site, id: id) }
}

/// - Throws: `.unknownSite` when `site` is not one of the job's `participants`.
package func requireParticipant(_ site: String, of participants: [String], job jobID: String) throws(FederationError) {
    guard participants.contains(site) else {
        throw FederationError(.unknownSite, "site '\(site)' is not a participant of job \(jobID)")
    }
}

extension Duration {
    /// The duration in seconds (the admin's "seconds since seen").
    package var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
