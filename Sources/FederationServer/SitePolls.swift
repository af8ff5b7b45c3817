import FederationCore

/// The sites' open long-polls for their next task, held by a job runner (inside its actor). A task handed out
/// reaches every open poll of the site at once: older ones are dead connections of a site that restarted.
package struct SitePolls: Sendable {
    package init() {}

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

extension Duration {
    /// The duration in seconds (the admin's "seconds since seen").
    package var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
