import FederationClient
import FederationCore
import Foundation
import NeuralNetwork
import Training
import Volumes

/// The sites of a simulated study with their data, for the task the pipeline names: segmentation (U-Nets, scored by
/// Dice of the first class) or classification (ResNets, scored by ROC AUC). Everything the study does that depends
/// on the task is here; `FederatedStudy` is the same for both.
public enum StudySites: Sendable {
    case segmentation([String: SegmentationSiteTrainer])
    case classification([String: ClassificationSiteTrainer])

    /// Reads every site folder `<dataRoot>/<site>` with the pipeline's preprocessing (classification: the labels
    /// CSV inside each site's folder, or its tags), reporting one line per site.
    public static func load(
        sites: [String], dataRoot: String, training: TrainingConfiguration,
        preprocessing: PreprocessingConfiguration, progress: (String) -> Void
    ) throws -> StudySites {
        if let k = training.classification {
            var trainers: [String: ClassificationSiteTrainer] = [:]
            for site in sites {
                let (cases, report) = try ClassificationDataset.load(
                    folder: dataRoot + "/" + site, preprocessing: preprocessing, configuration: k)
                for line in report.lines() { progress("site \(site): \(line)") }
                let t = try ClassificationSiteTrainer(
                    cases: cases, configuration: training, preprocessing: preprocessing)
                trainers[site] = t
                let positives = cases.filter { $0.label == k.positiveClass }.count
                progress(
                    "site \(site): \(cases.count) labelled studies (\(positives) \(k.classes[k.positiveClass])), "
                        + "\(t.train.count) training and \(t.validation.count) validation")
            }
            return .classification(trainers)
        }
        var trainers: [String: SegmentationSiteTrainer] = [:]
        for site in sites {
            let loaded = try SegmentationDataset.load(
                folder: dataRoot + "/" + site, model: training.model, preprocessing: preprocessing)
            for line in loaded.report.lines() { progress("site \(site): \(line)") }
            let cases = loaded.cases
            let t = SegmentationSiteTrainer(cases: cases, configuration: training, preprocessing: preprocessing)
            trainers[site] = t
            progress(
                "site \(site): \(t.train.count) training and \(t.validation.count) validation patients, "
                    + "\(t.sampleCount) training slices")
        }
        return .segmentation(trainers)
    }

    /// The metric the study reports: `dice` or `auc`.
    public var metric: String {
        switch self {
        case .segmentation: "dice"
        case .classification: "auc"
        }
    }

    /// The metric a pipeline's study reports: `auc` for classifiers, `dice` otherwise.
    public static func metric(for training: TrainingConfiguration) -> String {
        training.classification == nil ? "dice" : "auc"
    }

    /// The site trainers for an in-process federation.
    public var trainers: [String: any LocalTrainer] {
        switch self {
        case .segmentation(let t): t.mapValues { $0 }
        case .classification(let t): t.mapValues { $0 }
        }
    }

    /// The model's score on the site's held-out cases (Dice of class 1, or ROC AUC; nil when undefined, e.g. the
    /// site's held-out studies are of one class).
    public func score(_ model: ParameterSet, site: String) throws -> Double? {
        switch self {
        case .segmentation(let t): return try t[site]?.evaluate(model).first
        case .classification(let t): return try t[site]?.evaluate(model).auc
        }
    }

    /// A model trained on the training cases of `sites` pooled, from the configured initialisation, as `tessera
    /// train` trains one (the local-only and centralised baselines): at most `configuration.epochs` epochs, with its
    /// `earlyStopping` and `timeBudgetSeconds`, validated every epoch on the held-out cases of the same `sites`, whose
    /// best epoch's weights it returns (`ConvergenceMonitor`). The held-out cases are also those the study scores
    /// every model on: the baselines' epoch is chosen on them, the federated model's is not.
    /// - Parameter progress: told each epoch's validation score (mean Dice over the classes, or AUC; nil without
    ///   held-out cases).
    /// - Returns: the best epoch's weights and what the run decided (nil when no epoch had a finite score).
    public func baseline(
        sites: [String], configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration,
        progress: (_ epoch: Int, _ score: Double?) -> Void = { _, _ in }
    ) throws -> (model: ParameterSet, convergence: ConvergenceRecord?) {
        switch self {
        case .segmentation(let t):
            var trainer = Trainer(configuration: configuration, preprocessing: preprocessing)
            let validation = sites.flatMap { t[$0]?.validation ?? [] }
            _ = try trainer.fit(
                train: sites.flatMap { t[$0]?.train ?? [] }, validation: validation,
                progress: { progress($0.epoch, validation.isEmpty ? nil : $0.meanDice) })
            return (SegmentationSiteTrainer.parameterSet(trainer.model.stateDict), trainer.convergence)
        case .classification(let t):
            var trainer = try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing)
            _ = try trainer.fit(
                train: sites.flatMap { t[$0]?.train ?? [] }, validation: sites.flatMap { t[$0]?.validation ?? [] },
                progress: { progress($0.epoch, $0.validation.map { $0.auc ?? $0.balancedAccuracy }) })
            return (SegmentationSiteTrainer.parameterSet(trainer.model.stateDict), trainer.convergence)
        }
    }

    /// Writes `model` as a checkpoint `tessera predict` reads.
    public func save(
        _ model: ParameterSet, configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration,
        to path: String, metadata: [String: String]
    ) throws {
        let state = SegmentationSiteTrainer.namedTensors(model)
        switch self {
        case .segmentation:
            var trainer = Trainer(configuration: configuration, preprocessing: preprocessing)
            try trainer.load(state)
            try trainer.save(to: path, metadata: metadata)
        case .classification:
            var trainer = try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing)
            try trainer.load(state)
            try trainer.save(to: path, metadata: metadata)
        }
    }
}
