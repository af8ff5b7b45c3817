import FederationCore
import NeuralNetwork
import Tensors
import Training
import Volumes

/// A site's local work for a segmentation study: its own DICOM cases (preprocessed once), trained from the global
/// model for the round's local epochs; the site's held-out patients give the Dice it reports.
///
/// Each round starts from the global weights with a fresh optimiser state and a round-specific seed for slice
/// sampling and augmentation. The FedAvg weight is the number of training slices the site holds.
///
/// With `training.dp_sgd`, `train` reports what the privacy accountant needs as metrics: `dp_sgd_steps` (T),
/// `dp_sgd_sampling_rate` (q = B / N patients), `dp_sgd_noise_multiplier` (σ), `dp_sgd_max_grad_norm` (C).
public struct SegmentationSiteTrainer: LocalTrainer {
    public let train: [SegmentationCase]
    public let validation: [SegmentationCase]
    public let configuration: TrainingConfiguration
    public let preprocessing: PreprocessingConfiguration
    /// Told the training loss of each local epoch (the site's own curves, `SiteCurves`); nil: nobody.
    public var onEpoch: (@Sendable (_ task: TaskAssignment, _ epoch: Int, _ loss: Double) -> Void)?

    public init(
        cases: [SegmentationCase], configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration
    ) {
        let split = Trainer(configuration: configuration, preprocessing: preprocessing).split(cases)
        self.train = split.train
        self.validation = split.validation
        self.configuration = configuration
        self.preprocessing = preprocessing
    }

    /// Training slices: the FedAvg weight of this site.
    public var sampleCount: Int { train.reduce(0) { $0 + $1.sample.image.geometry.dimensions.z } }

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
        var trainer = Trainer(configuration: config, preprocessing: pre)
        do {
            let start = Self.namedTensors(global)
            try trainer.load(start)
            if case .double(let mu)? = task.config["proximal_mu"], mu > 0 { trainer.proximal = (Float(mu), start) }
            _ = try trainer.fit(train: train, validation: [], progress: { onEpoch?(task, $0.epoch, $0.loss) })
            let dice = validation.isEmpty ? [] : try trainer.validate(validation)
            var metrics: [String: Double] = ["train_slices": Double(sampleCount)]
            for (i, d) in dice.enumerated() { metrics["dice_class_\(i + 1)"] = d }
            if !dice.isEmpty { metrics["dice"] = dice.reduce(0, +) / Double(dice.count) }
            if let dp = trainer.dpSGDRecord {
                // What the site's privacy accountant charges for this round (ε is computed there, not here).
                metrics["dp_sgd_steps"] = Double(dp.steps)
                metrics["dp_sgd_sampling_rate"] = dp.samplingRate
                metrics["dp_sgd_noise_multiplier"] = dp.noiseMultiplier
                metrics["dp_sgd_max_grad_norm"] = dp.maxGradNorm
            }
            return (Self.parameterSet(trainer.model.stateDict), sampleCount, metrics)
        } catch {
            throw FederationError(
                .invalidConfiguration, "local training failed at round \(task.round): \(error.message)",
                cause: error.description)
        }
    }

    /// Evaluates weights on this site's held-out patients (mean Dice per class).
    public func evaluate(_ weights: ParameterSet) throws(FederationError) -> [Double] {
        var trainer = Trainer(configuration: configuration, preprocessing: preprocessing)
        do {
            try trainer.load(Self.namedTensors(weights))
            return try trainer.validate(validation)
        } catch {
            throw FederationError(.invalidConfiguration, "evaluation failed: \(error.message)")
        }
    }

    /// Cross-site evaluation: Dice of `weights` on this site's held-out patients — `dice` (mean over classes),
    /// `dice_class_<k>`, `validation_patients`.
    /// - Throws: `.invalidConfiguration` when the site holds out no patients or the weights do not fit the model.
    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        guard !validation.isEmpty else {
            throw FederationError(
                .invalidConfiguration,
                "the site holds out no patients to evaluate on (raise "
                    + "training.validation_fraction or add cases)")
        }
        let dice = try evaluate(weights)
        var metrics: [String: Double] = ["validation_patients": Double(validation.count)]
        for (i, d) in dice.enumerated() { metrics["dice_class_\(i + 1)"] = d }
        if !dice.isEmpty { metrics["dice"] = dice.reduce(0, +) / Double(dice.count) }
        return metrics
    }

    /// The configured U-Net's normalisation layers (empty without `model.norm: instance`).
    public func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        try Self.normalizationVariables(configuration, preprocessing: preprocessing)
    }

    /// `TrainingConfiguration.normalizationVariables`, its error as a `FederationError`.
    static func normalizationVariables(
        _ configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration
    ) throws(FederationError) -> [String] {
        do { return try configuration.normalizationVariables(preprocessing: preprocessing) } catch {
            throw FederationError(
                .invalidConfiguration, "cannot name the model's normalisation layers: \(error.message)",
                cause: error.description)
        }
    }

    public static func namedTensors(_ p: ParameterSet) -> NamedTensors {
        NamedTensors(p.tensors.map { ($0.name, Tensor(shape: $0.shape, storage: $0.values)) })
    }

    public static func parameterSet(_ n: NamedTensors) -> ParameterSet {
        ParameterSet(n.map { ParameterTensor(name: $0.name, shape: $0.tensor.shape, values: $0.tensor.storage) })
    }
}
