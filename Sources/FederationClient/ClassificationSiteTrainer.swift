import FederationCore
import Training
import Volumes

/// A site's local work for a classification study: its own labelled studies (one series each, preprocessed once),
/// trained from the global model for the round's local epochs; its held-out patients' studies give the figures it
/// reports. Only aggregate figures leave the site (`ClassificationMetrics.reported`: AUC, accuracy, balanced
/// accuracy, sensitivity, specificity, the study count), never a per-study probability.
///
/// Each round starts from the global weights with a fresh optimiser and a round-specific seed, as
/// `SegmentationSiteTrainer` does. The FedAvg weight is the number of training studies.
public struct ClassificationSiteTrainer: LocalTrainer {
    public let train: [ClassificationCase]
    public let validation: [ClassificationCase]
    public let configuration: TrainingConfiguration
    public let preprocessing: PreprocessingConfiguration
    /// Told the training loss of each local epoch (the site's own curves, `SiteCurves`); nil: nobody.
    public var onEpoch: (@Sendable (_ task: TaskAssignment, _ epoch: Int, _ loss: Double) -> Void)?

    /// - Throws: `.configuration` when the pipeline is not a classifier's.
    public init(
        cases: [ClassificationCase], configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration
    ) throws(TrainingError) {
        let split = try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing).split(cases)
        self.train = split.train
        self.validation = split.validation
        self.configuration = configuration
        self.preprocessing = preprocessing
    }

    /// Training studies: the FedAvg weight of this site.
    public var sampleCount: Int { train.count }

    public func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        var config = configuration
        if case .int(let e)? = task.config["local_epochs"] { config.epochs = max(1, e) }
        config.timeBudgetSeconds = nil  // a round's budget is its local epochs (and the round's deadline)
        if case .double(let lr)? = task.config["learning_rate"] { config.optimizer.learningRate = Float(lr) }
        config.seed = configuration.seed &+ UInt64(task.round) &* 7919
        var pre = preprocessing
        pre.augmentation?.seed &+= UInt64(task.round)
        do {
            var trainer = try ClassifierTrainer(configuration: config, preprocessing: pre)
            let start = SegmentationSiteTrainer.namedTensors(global)
            try trainer.load(start)
            if case .double(let mu)? = task.config["proximal_mu"], mu > 0 { trainer.proximal = (Float(mu), start) }
            _ = try trainer.fit(train: train, validation: [], progress: { onEpoch?(task, $0.epoch, $0.loss) })
            var metrics: [String: Double] = ["train_studies": Double(sampleCount)]
            if !validation.isEmpty { metrics.merge(try trainer.evaluate(validation).reported) { _, new in new } }
            return (SegmentationSiteTrainer.parameterSet(trainer.model.stateDict), sampleCount, metrics)
        } catch {
            throw FederationError(
                .invalidConfiguration, "local training failed at round \(task.round): \(error.message)",
                cause: error.description)
        }
    }

    /// The metrics of `weights` on this site's held-out studies (with the bootstrap interval when `bootstrap`).
    public func evaluate(_ weights: ParameterSet, bootstrap: Bool = false) throws(FederationError)
        -> ClassificationMetrics
    {
        do {
            var trainer = try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing)
            try trainer.load(SegmentationSiteTrainer.namedTensors(weights))
            return try trainer.evaluate(validation, bootstrap: bootstrap)
        } catch {
            throw FederationError(
                .invalidConfiguration, "evaluation failed: \(error.message)", cause: error.description)
        }
    }

    /// The configured classifier's normalisation layers (`bn1.*`, `layer1.0.bn1.*`, …).
    public func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        try SegmentationSiteTrainer.normalizationVariables(configuration, preprocessing: preprocessing)
    }

    /// Cross-site evaluation: `auc`, `accuracy`, `balanced_accuracy`, `sensitivity`, `specificity`, `studies`
    /// (and the bootstrap interval `auc_lower`, `auc_upper`) of `weights` on this site's held-out studies.
    /// - Throws: `.invalidConfiguration` when the site holds out no studies or the weights do not fit.
    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        guard !validation.isEmpty else {
            throw FederationError(
                .invalidConfiguration,
                "the site holds out no studies to evaluate on (raise training.validation_fraction or add studies)")
        }
        var metrics = try evaluate(weights, bootstrap: true).reported
        metrics["validation_patients"] = Double(Set(validation.map(\.patientID)).count)
        return metrics
    }
}
