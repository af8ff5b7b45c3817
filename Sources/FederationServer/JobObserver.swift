import FederationCore
import Foundation

/// Told every event of every job the `JobManager` runs, in order, as it happens: the one place where metrics
/// (`tessera server --metrics-address`) and experiment tracking (`--tensorboard`) hook into the server, so
/// neither counts anything the job's event stream does not say.
///
/// Called on the manager's actor: an observer must return quickly (update counters, queue a write) and never
/// call back into the manager.
public protocol JobObserver: Sendable {
    /// `event` of job `job`, received at `time` (the server's wall clock).
    func observe(_ event: JobEvent, job: String, at time: Date)
}
