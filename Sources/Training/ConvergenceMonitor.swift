/// Why a training run (`Trainer.fit`, `ClassifierTrainer.fit`) ended.
public enum StopReason: String, Sendable, Codable, Equatable {
    /// It ran `training.epochs` epochs, the epoch budget.
    case epochBudget = "epochs"
    /// `training.early_stopping.patience` epochs in a row did not improve the validation score.
    case earlyStopping = "early_stopping"
    /// `training.time_budget_seconds` had passed when an epoch ended.
    case timeBudget = "time_budget"
}

/// What a training run decided: which epoch was best (the one whose weights it kept) and why it stopped.
public struct ConvergenceRecord: Sendable, Codable, Equatable {
    /// The best epoch (1-based): the last epoch that improved the score (`ConvergenceMonitor`).
    public var bestEpoch: Int
    /// The best epoch's score: mean validation Dice (segmentation) or AUC (classification); −loss without
    /// validation cases.
    public var bestScore: Double
    /// Epochs run.
    public var epochs: Int
    public var stoppedBy: StopReason

    public init(bestEpoch: Int, bestScore: Double, epochs: Int, stoppedBy: StopReason) {
        (self.bestEpoch, self.bestScore, self.epochs, self.stoppedBy) = (bestEpoch, bestScore, epochs, stoppedBy)
    }
}

/// Decides after each epoch whether it is the best so far and whether training stops: the one rule behind the best
/// checkpoint, the weights a run keeps, early stopping and the budgets.
///
/// An epoch *improves* when its score exceeds the best score so far by more than `minDelta` (the first epoch with a
/// finite score always improves); the best epoch is the last one that improved. Training stops after the epoch at
/// which, checked in this order, `patience` epochs in a row have not improved (early stopping), the time budget has
/// passed, or the epoch budget is spent. The time budget is checked when an epoch ends, so a run overruns it by at
/// most one epoch and its validation.
public struct ConvergenceMonitor: Sendable {
    public let epochs: Int
    public let earlyStopping: TrainingConfiguration.EarlyStopping?
    public let timeBudget: Duration?
    public private(set) var best: (epoch: Int, score: Double)?
    /// Epochs since the last improvement.
    private var stale = 0

    /// - Parameters:
    ///   - epochs: the epoch budget (≥ 1).
    ///   - earlyStopping: nil: no early stopping (the run keeps the best epoch all the same).
    ///   - timeBudget: nil: no time budget.
    public init(epochs: Int, earlyStopping: TrainingConfiguration.EarlyStopping?, timeBudget: Duration?) {
        (self.epochs, self.earlyStopping, self.timeBudget) = (epochs, earlyStopping, timeBudget)
    }

    /// The monitor of a configuration's run: `epochs`, `earlyStopping` (only when `validating`: without held-out
    /// cases there is nothing to stop on) and `timeBudgetSeconds`.
    public init(_ configuration: TrainingConfiguration, validating: Bool) {
        self.init(
            epochs: configuration.epochs, earlyStopping: validating ? configuration.earlyStopping : nil,
            timeBudget: configuration.timeBudgetSeconds.map { Duration.seconds($0) })
    }

    /// What one epoch decided.
    public struct Decision: Sendable, Equatable {
        /// The epoch is the best so far: write the checkpoint, keep its weights.
        public var improved: Bool
        /// Stop after this epoch, and why; nil: go on.
        public var stop: StopReason?

        public init(improved: Bool, stop: StopReason?) {
            self.improved = improved
            self.stop = stop
        }
    }

    /// Records epoch `epoch` (1-based, in order) with its `score` (higher is better), `elapsed` since the run began.
    public mutating func record(epoch: Int, score: Double, elapsed: Duration) -> Decision {
        let threshold = best.map { $0.score + (earlyStopping?.minDelta ?? 0) }
        let improved = score.isFinite && threshold.map { score > $0 } ?? score.isFinite
        if improved {
            best = (epoch, score)
            stale = 0
        } else {
            stale += 1
        }
        var stop: StopReason?
        if let patience = earlyStopping?.patience, stale >= patience {
            stop = .earlyStopping
        } else if let timeBudget, elapsed >= timeBudget {
            stop = .timeBudget
        } else if epoch >= epochs {
            stop = .epochBudget
        }
        return Decision(improved: improved, stop: stop)
    }

    /// The run's record once it stopped (`stoppedBy`) after `epochsRun` epochs; nil when no epoch had a finite score.
    public func summary(epochsRun: Int, stoppedBy: StopReason) -> ConvergenceRecord? {
        best.map {
            ConvergenceRecord(bestEpoch: $0.epoch, bestScore: $0.score, epochs: epochsRun, stoppedBy: stoppedBy)
        }
    }
}

/// Measures a training run's time on a clock given once (the time budget's clock, injected so that tests move time
/// without sleeping): `start()` returns the time elapsed since it was called.
public struct Stopwatch: Sendable {
    private let begin: @Sendable () -> @Sendable () -> Duration

    public init<C: Clock>(clock: C) where C.Duration == Duration {
        begin = {
            let start = clock.now
            return { start.duration(to: clock.now) }
        }
    }

    /// Starts measuring: the returned function tells the time since this call.
    public func start() -> @Sendable () -> Duration { begin() }
}
