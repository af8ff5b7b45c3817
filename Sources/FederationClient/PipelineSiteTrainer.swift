import FederationCore
import Foundation
import Training
import Volumes

/// The site's trainer for `tessera client`: the job's pipeline arrives with each task (`config["pipeline"]`, the
/// YAML the admin submitted); the site reads its own DICOM folder with that pipeline's preprocessing once per
/// pipeline and trains as `SegmentationSiteTrainer` does. Nothing of the data leaves the site but the weight diff.
public actor PipelineSiteTrainer: LocalTrainer {
    public let dataFolder: String
    /// The site's own limits: every pipeline is checked against them before the site reads or allocates anything,
    /// whatever the server accepted.
    public let limits: PipelineLimits
    private let log: @Sendable (String) -> Void
    private var cached: (pipeline: String, trainer: SegmentationSiteTrainer)?

    public init(
        dataFolder: String, limits: PipelineLimits = .default,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.dataFolder = dataFolder
        self.limits = limits
        self.log = log
    }

    /// The site trainer for the task's pipeline, reading the site's data on first use.
    /// - Throws: `.invalidConfiguration` when the task carries no pipeline, the pipeline is invalid, or the data
    ///   folder cannot be read with it.
    public func trainer(for task: TaskAssignment) throws(FederationError) -> SegmentationSiteTrainer {
        guard case .string(let pipeline)? = task.config["pipeline"] else {
            throw FederationError(
                .invalidConfiguration,
                "task of round \(task.round) carries no pipeline; the server and "
                    + "this site run different tessera versions")
        }
        if let cached, cached.pipeline == pipeline { return cached.trainer }
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
            let cases = try SegmentationDataset.load(
                folder: dataFolder, preprocessing: preprocessing,
                segments: training.model.segments,
                limits: limits.preprocessing)
            if training.model.dimensions == 2 {
                // The slices' size is known now: check a training step's activations with it.
                let largest = cases.map { $0.sample.image.geometry.dimensions }.map { $0.x * $0.y }.max() ?? 0
                if largest > 0 { try limits.validate(training, preprocessing: preprocessing, spatial: largest) }
            }
            let trainer = SegmentationSiteTrainer(cases: cases, configuration: training, preprocessing: preprocessing)
            log(
                "\(trainer.train.count) training and \(trainer.validation.count) validation patients, "
                    + "\(trainer.sampleCount) training slices")
            cached = (pipeline, trainer)
            return trainer
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
        let trainer = try trainer(for: task)
        log("round \(task.round): training from the global model")
        let result = try await trainer.train(global: global, task: task)
        log(
            "round \(task.round): done, validation Dice \(result.metrics["dice"].map { String(format: "%.3f", $0) } ?? "-")"
        )
        return result
    }

    public func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String:
        Double]
    {
        let trainer = try trainer(for: task)
        let name: String
        if case .string(let n)? = task.config["model"] { name = n } else { name = "a" }
        let metrics = try await trainer.evaluate(weights, task: task)
        log(
            "cross-site evaluation: the \(name) model scores Dice \(metrics["dice"].map { String(format: "%.3f", $0) } ?? "-") "
                + "on this site's \(trainer.validation.count) held-out patient(s)")
        return metrics
    }
}
