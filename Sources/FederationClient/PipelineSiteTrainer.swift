import FederationCore
import Foundation
import Training
import Volumes

/// The site's trainer for `tessera client`: the job's pipeline arrives with each task (`config["pipeline"]`, the
/// YAML the admin submitted); the site reads its own DICOM folder with that pipeline's preprocessing once per
/// pipeline and trains as `SegmentationSiteTrainer` (U-Nets) or `ClassificationSiteTrainer` (classifiers, labels
/// from the site's own CSV or tags) does. Nothing of the data leaves the site but the weight diff and aggregate
/// figures.
public actor PipelineSiteTrainer: LocalTrainer {
    /// What a pipeline asks of this site.
    public enum Work: Sendable {
        case segmentation(SegmentationSiteTrainer)
        case classification(ClassificationSiteTrainer)

        var trainer: any LocalTrainer {
            switch self {
            case .segmentation(let t): t
            case .classification(let t): t
            }
        }

        var summary: String {
            switch self {
            case .segmentation(let t):
                "\(t.train.count) training and \(t.validation.count) validation patients, "
                    + "\(t.sampleCount) training slices"
            case .classification(let t):
                "\(t.train.count) training and \(t.validation.count) validation studies"
            }
        }

        var validationCount: Int {
            switch self {
            case .segmentation(let t): t.validation.count
            case .classification(let t): t.validation.count
            }
        }
    }

    public let dataFolder: String
    /// The site's labels CSV for classification jobs (`tessera client --labels`); nil: the pipeline's
    /// `classification.labels.csv` under `dataFolder`.
    public let labelsPath: String?
    /// The site's own limits: every pipeline is checked against them before the site reads or allocates anything,
    /// whatever the server accepted.
    public let limits: PipelineLimits
    private let log: @Sendable (String) -> Void
    private let onEpoch: (@Sendable (_ task: TaskAssignment, _ epoch: Int, _ loss: Double) -> Void)?
    private var cached: (pipeline: String, work: Work)?

    /// - Parameter onEpoch: told the training loss of each local epoch (`SiteCurves.epoch`); nil: nobody.
    public init(
        dataFolder: String, limits: PipelineLimits = .default, labelsPath: String? = nil,
        onEpoch: (@Sendable (_ task: TaskAssignment, _ epoch: Int, _ loss: Double) -> Void)? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.dataFolder = dataFolder
        self.labelsPath = labelsPath
        self.limits = limits
        self.onEpoch = onEpoch
        self.log = log
    }

    /// The site trainer for the task's pipeline, reading the site's data on first use.
    /// - Throws: `.invalidConfiguration` when the task carries no pipeline, the pipeline is invalid, or the data
    ///   folder cannot be read with it.
    public func trainer(for task: TaskAssignment) throws(FederationError) -> Work {
        guard case .string(let pipeline)? = task.config["pipeline"] else {
            throw FederationError(
                .invalidConfiguration,
                "task of round \(task.round) carries no pipeline; the server and "
                    + "this site run different tessera versions")
        }
        if let cached, cached.pipeline == pipeline { return cached.work }
        let preprocessing: PreprocessingConfiguration
        let training: TrainingConfiguration
        do {
            preprocessing = try PreprocessingConfiguration(yaml: pipeline, limits: limits.preprocessing)
            training = try TrainingConfiguration(yaml: pipeline, limits: limits)
            try limits.validate(training, preprocessing: preprocessing)
        } catch let error as VolumesError {
            throw FederationError(
                .invalidConfiguration,
                "the job's pipeline is refused by this site's limits: "
                    + "\(error.transform): \(error.message)", cause: error.description)
        } catch let error as TrainingError {
            throw FederationError(
                .invalidConfiguration,
                "the job's pipeline is refused by this site's limits: "
                    + error.message, cause: error.description)
        } catch {
            throw FederationError(.invalidConfiguration, "the job's pipeline is refused: \(error)")
        }
        do {
            log("reading \(dataFolder) with the job's preprocessing")
            if let k = training.classification {
                let (cases, report) = try ClassificationDataset.load(
                    folder: dataFolder, preprocessing: preprocessing, configuration: k, labelsPath: labelsPath,
                    limits: limits.preprocessing)
                for line in report.lines() { log(line) }
                let d = cases[0].sample.image.geometry.dimensions
                let spatial = k.input == .volume ? d.x * d.y * d.z : d.x * d.y
                try limits.validate(training, preprocessing: preprocessing, spatial: spatial)
                var trainer = try ClassificationSiteTrainer(
                    cases: cases, configuration: training, preprocessing: preprocessing)
                trainer.onEpoch = onEpoch
                let work = Work.classification(trainer)
                log(work.summary)
                cached = (pipeline, work)
                return work
            }
            let loaded = try SegmentationDataset.load(
                folder: dataFolder, model: training.model, preprocessing: preprocessing, limits: limits.preprocessing)
            for line in loaded.report.lines() { log(line) }
            let cases = loaded.cases
            if training.model.dimensions == 2 {
                // The slices' size is known now: check a training step's activations with it.
                let largest = cases.map { $0.sample.image.geometry.dimensions }.map { $0.x * $0.y }.max() ?? 0
                if largest > 0 { try limits.validate(training, preprocessing: preprocessing, spatial: largest) }
            }
            var trainer = SegmentationSiteTrainer(cases: cases, configuration: training, preprocessing: preprocessing)
            trainer.onEpoch = onEpoch
            let work = Work.segmentation(trainer)
            log(work.summary)
            cached = (pipeline, work)
            return work
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot prepare the job's training on \(dataFolder): "
                    + error.message, cause: error.description)
        }
    }

    public func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        let work = try trainer(for: task)
        // The round's (or the fine-tuning's) epochs come with the task: bounded by the site's own limit.
        if case .int(let epochs)? = task.config["local_epochs"], epochs > limits.maxEpochs {
            throw FederationError(
                .invalidConfiguration,
                "the task asks \(epochs) local epochs, more than this site's limit max_epochs \(limits.maxEpochs)")
        }
        log("round \(task.round): training from the global model")
        let result = try await work.trainer.train(global: global, task: task)
        let (name, key) = Self.headline(work)
        log(
            "round \(task.round): done, validation \(name) "
                + (result.metrics[key].map { String(format: "%.3f", $0) } ?? "-")
        )
        return result
    }

    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        let work = try trainer(for: task)
        let name: String
        if case .string(let n)? = task.config["model"] { name = n } else { name = "a" }
        let metrics = try await work.trainer.evaluate(weights, task: task)
        let (metric, key) = Self.headline(work)
        log(
            "cross-site evaluation: the \(name) model scores \(metric) "
                + (metrics[key].map { String(format: "%.3f", $0) } ?? "-") + " "
                + "on this site's \(work.validationCount) held-out case(s)")
        return metrics
    }

    public func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        try await trainer(for: task).trainer.normalizationVariables(for: task)
    }

    /// The figure a job's logs show: Dice for segmentation, ROC AUC for classification (name, metric key).
    static func headline(_ work: Work) -> (String, String) {
        if case .classification = work { return ("AUC", "auc") }
        return ("Dice", "dice")
    }
}
