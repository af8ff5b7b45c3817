import ExperimentTracking
import FederationCore
import Foundation
import Synchronization

/// A site's local curves as TensorBoard event files (`tessera client --tensorboard DIR`), one run per job
/// (`DIR/<job>`): what `TrackedTrainer` and the site trainers' epoch hook (`PipelineSiteTrainer(onEpoch:)`) hand it.
/// The files stay at the site: they hold nothing the server does not already receive, plus the training loss of each
/// local epoch and the time local training took.
///
/// A failed write is logged once per run and training goes on.
public final class SiteCurves: Sendable {
    public let folder: String
    private let log: @Sendable (String) -> Void
    private let state = Mutex<(open: [String: EventFileWriter], failed: Set<String>)>(([:], []))

    public init(folder: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.folder = folder
        self.log = log
    }

    /// `local/epoch_train_loss` of local epoch `epoch` (1-based) of `task`, at step (round − 1) × local epochs +
    /// epoch: the site's epochs one after another across rounds.
    public func epoch(_ task: TaskAssignment, epoch: Int, loss: Double) {
        var localEpochs = 1
        if case .int(let e)? = task.config["local_epochs"] { localEpochs = max(1, e) }
        let (step, overflow) = (task.round - 1).multipliedReportingOverflow(by: localEpochs)
        guard !overflow, case (let total, false) = step.addingReportingOverflow(epoch) else { return }
        write([("local/epoch_train_loss", loss)], task: task, step: total)
    }

    /// `values` of `task` at step = its round.
    public func write(_ values: [(tag: String, value: Double)], task: TaskAssignment) {
        write(values, task: task, step: task.round)
    }

    private func write(_ values: [(tag: String, value: Double)], task: TaskAssignment, step: Int) {
        let run = folder + "/" + EventFileWriter.component(task.jobID)
        do throws(TrackingError) {
            let writer = try state.withLock {
                (s: inout (open: [String: EventFileWriter], failed: Set<String>)) throws(TrackingError) in
                if s.failed.contains(run) { return nil as EventFileWriter? }
                if let writer = s.open[run] { return writer }
                let writer = try EventFileWriter(folder: run)
                s.open[run] = writer
                return writer
            }
            try writer?.write(values, step: step)
        } catch {
            state.withLock { s in
                _ = s.failed.insert(run)
                s.open[run] = nil
            }
            log("TensorBoard: \(error.description); no more events are written to \(run)")
        }
    }
}

/// Wraps a site's trainer and writes, for each task, what it computed into the site's curves (`SiteCurves`, step =
/// round): `local/<metric>` for every metric of its local training (validation Dice or AUC, sample counts, DP
/// figures) and `local/train_seconds`; `cross_site/<model>/<metric>` for its cross-site evaluations.
public struct TrackedTrainer: LocalTrainer {
    public let base: any LocalTrainer
    public let curves: SiteCurves

    public init(base: any LocalTrainer, curves: SiteCurves) {
        self.base = base
        self.curves = curves
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
        curves.write(values, task: task)
        return result
    }

    public func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        try await base.normalizationVariables(for: task)
    }

    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        let metrics = try await base.evaluate(weights, task: task)
        var model = "model"
        if case .string(let name)? = task.config["model"] { model = name }
        let prefix = "cross_site/\(EventFileWriter.component(model))/"
        curves.write(metrics.sorted { $0.key < $1.key }.map { (prefix + $0.key, $0.value) }, task: task)
        return metrics
    }
}
