/// A federated strategy: one hook per round phase, the math in free functions (Flower's Strategy, without the
/// inheritance). `nil` from `configureTraining` for a site means "do not ask it this round".
public protocol Strategy: Sendable {
    /// Instructions for each participating site in `round` (1-based).
    func configureTraining(round: Int, sites: [String]) -> [String: [String: ConfigValue]]
    /// The next global model from the current one and the round's accumulated, validated updates.
    /// `meanDiff` is the round's aggregate diff: the sample-weighted mean of the weight diffs, or what the job's
    /// `RobustAggregation` makes of them (norm-bounded mean, median, trimmed mean, Krum).
    mutating func aggregateTraining(
        round: Int, global: ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) -> ParameterSet
    /// The same step in place: replaces `global` by the next global model. What the coordinator calls; strategies
    /// that can update the model in its own storage implement it so that closing a round needs no model-sized
    /// temporary (the default calls `aggregateTraining`, holding the old and the new model for a moment).
    mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]) throws(FederationError)
    /// The strategy's own state that a resumed job needs to continue the same optimisation (server-optimiser
    /// moments), saved with every checkpoint; empty for stateless strategies.
    var serverState: ParameterSet { get }
    /// Takes back a state saved from `serverState`.
    /// - Throws: `.shapeMismatch` when `state` is not one this strategy saved.
    mutating func restore(serverState state: ParameterSet) throws(FederationError)
}

extension Strategy {
    public var serverState: ParameterSet { ParameterSet() }

    public mutating func restore(serverState state: ParameterSet) throws(FederationError) {
        guard state.tensors.isEmpty else {
            throw FederationError(
                .shapeMismatch,
                "the checkpoint holds server-optimiser state (\(state.tensors.count) "
                    + "tensors) but the job's strategy keeps none; was the pipeline's strategy changed?")
        }
    }

    public mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) {
        global = try aggregateTraining(round: round, global: global, meanDiff: meanDiff, updates: updates)
    }
}

/// FedAvg on weight diffs: global ← global + η · Σ nᵢ·Δᵢ / Σ nᵢ (η = 1: McMahan et al. 2017).
public struct FedAvg: Strategy {
    public var localEpochs: Int
    public var learningRate: Double
    public var serverLearningRate: Float

    public init(localEpochs: Int = 1, learningRate: Double = 0.01, serverLearningRate: Float = 1) {
        self.localEpochs = localEpochs
        self.learningRate = learningRate
        self.serverLearningRate = serverLearningRate
    }

    public func configureTraining(round: Int, sites: [String]) -> [String: [String: ConfigValue]] {
        Dictionary(
            uniqueKeysWithValues: sites.map {
                ($0, ["local_epochs": .int(localEpochs), "learning_rate": .double(learningRate), "round": .int(round)])
            })
    }

    public mutating func aggregateTraining(
        round: Int, global: ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) -> ParameterSet {
        try global.adding(meanDiff, scaledBy: serverLearningRate)
    }

    public mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) {
        try global.add(meanDiff, scaledBy: serverLearningRate)
    }
}

/// FedProx (Li et al. 2020): FedAvg aggregation; μ goes to the sites, whose local loss adds (μ/2)·‖w − w_global‖².
public struct FedProx: Strategy {
    public var base: FedAvg
    public var mu: Double

    public init(mu: Double, base: FedAvg = FedAvg()) {
        self.mu = mu
        self.base = base
    }

    public func configureTraining(round: Int, sites: [String]) -> [String: [String: ConfigValue]] {
        base.configureTraining(round: round, sites: sites).mapValues { config in
            var c = config
            c["proximal_mu"] = .double(mu)
            return c
        }
    }

    public mutating func aggregateTraining(
        round: Int, global: ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) -> ParameterSet {
        try base.aggregateTraining(round: round, global: global, meanDiff: meanDiff, updates: updates)
    }

    public mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) {
        try base.updateGlobal(round: round, global: &global, meanDiff: meanDiff, updates: updates)
    }
}

/// FedOpt: FedAvg's client side with a server optimiser (FedAvgM, FedAdam, FedYogi) applied to the mean diff.
public struct FedOpt: Strategy {
    public var base: FedAvg
    public var optimizer: ServerOptimizer

    public init(optimizer: ServerOptimizer, base: FedAvg = FedAvg()) {
        self.optimizer = optimizer
        self.base = base
    }

    public func configureTraining(round: Int, sites: [String]) -> [String: [String: ConfigValue]] {
        base.configureTraining(round: round, sites: sites)
    }

    public mutating func aggregateTraining(
        round: Int, global: ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) -> ParameterSet {
        try optimizer.step(global: global, delta: meanDiff)
    }

    public mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) {
        try optimizer.apply(to: &global, delta: meanDiff)
    }

    public var serverState: ParameterSet { optimizer.state }

    public mutating func restore(serverState state: ParameterSet) throws(FederationError) {
        try optimizer.restore(state)
    }
}

/// Cyclic weight transfer (Chang et al. 2018): one site trains per round, in a fixed order; its result becomes the
/// global model.
public struct CyclicWeightTransfer: Strategy {
    public var base: FedAvg

    public init(base: FedAvg = FedAvg()) { self.base = base }

    public func configureTraining(round: Int, sites: [String]) -> [String: [String: ConfigValue]] {
        guard !sites.isEmpty else { return [:] }
        let ordered = sites.sorted()
        let site = ordered[(round - 1) % ordered.count]
        return base.configureTraining(round: round, sites: [site])
    }

    public mutating func aggregateTraining(
        round: Int, global: ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) -> ParameterSet {
        guard updates.count == 1 else {
            throw FederationError(
                .invalidConfiguration, "cyclic weight transfer expects one site per round, got \(updates.count)")
        }
        return try global.adding(meanDiff)
    }

    public mutating func updateGlobal(
        round: Int, global: inout ParameterSet, meanDiff: ParameterSet,
        updates: [ModelUpdate]
    ) throws(FederationError) {
        guard updates.count == 1 else {
            throw FederationError(
                .invalidConfiguration, "cyclic weight transfer expects one site per round, got \(updates.count)")
        }
        try global.add(meanDiff)
    }
}
