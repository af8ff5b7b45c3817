import ExperimentTracking
import FederationCore
import Foundation
import Synchronization

/// A site's local curves as TensorBoard event files (`tessera client --tensorboard DIR`): wraps the site's trainer
/// and, for each task, writes what it computed into the run `DIR/<job>` (step = round): `local/<metric>` for every
/// metric of its local training (validation Dice or AUC, sample counts, DP figures) and `local/train_seconds`;
/// `cross_site/<model>/<metric>` for its cross-site evaluations. The files stay at the site: they hold nothing the
/// server does not already receive, plus the time training took.
///
/// A failed write is logged once per run and training goes on.
public struct TrackedTrainer: LocalTrainer {
    public let base: any LocalTrainer
    public let folder: String
    private let writers: Writers
    private let log: @Sendable (String) -> Void

    public init(base: any LocalTrainer, folder: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.base = base
        self.folder = folder
        self.writers = Writers()
        self.log = log
    }

    public func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        let start = ContinuousClock.now
        let result = try await base.train(global: global, task: task)
        let elapsed = (ContinuousClock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        var values = result.metrics.sorted { $0.key < $1.key }.map { (tag: "local/" + $0.key, value: $0.value) }
        values.append(("local/train_seconds", seconds))
        write(values, task: task)
        return result
    }

    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        let metrics = try await base.evaluate(weights, task: task)
        var model = "model"
        if case .string(let name)? = task.config["model"] { model = name }
        write(
            metrics.sorted { $0.key < $1.key }.map {
                ("cross_site/\(EventFileWriter.component(model))/" + $0.key, $0.value)
            }, task: task)
        return metrics
    }

    private func write(_ values: [(tag: String, value: Double)], task: TaskAssignment) {
        let run = folder + "/" + EventFileWriter.component(task.jobID)
        do {
            try writers.writer(for: run)?.write(values, step: task.round)
        } catch {
            writers.fail(run)
            log("TensorBoard: \(error.description); no more events are written to \(run)")
        }
    }

    /// The open event file of each run (one per job), shared by copies of the trainer.
    private final class Writers: Sendable {
        private let state = Mutex<(open: [String: EventFileWriter], failed: Set<String>)>(([:], []))

        func writer(for run: String) throws(TrackingError) -> EventFileWriter? {
            try state.withLock {
                (s: inout (open: [String: EventFileWriter], failed: Set<String>)) throws(TrackingError) in
                if s.failed.contains(run) { return nil }
                if let writer = s.open[run] { return writer }
                let writer = try EventFileWriter(folder: run)
                s.open[run] = writer
                return writer
            }
        }

        func fail(_ run: String) { state.withLock { _ = $0.failed.insert(run) } }
    }
}
