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

    /// A model trained on the training cases of `sites` pooled, from the configured initialisation (the local-only
    /// and centralised baselines), its length chosen without ever seeing the held-out cases the study scores every
    /// model on — as the federated model never sees them:
    ///
    /// 1. *Selection*: a share of the training patients (`validationFraction`, drawn with the seed + 1; at least one
    ///    when two or more) is set aside; the rest train for at most `configuration.epochs` epochs with its
    ///    `earlyStopping` and `timeBudgetSeconds`, validated every epoch on the set-aside patients
    ///    (`ConvergenceMonitor`), which gives the best epoch.
    /// 2. *Refit*: a fresh model trains on all the training patients for that many epochs.
    ///
    /// With fewer than two training patients there is nothing to set aside: the model trains the whole budget.
    /// - Parameter progress: told each selection epoch's score (mean Dice over the classes, or AUC; nil without
    ///   set-aside cases), and each refit epoch's with a nil score.
    /// - Returns: the refit weights and what the selection run decided (nil when no epoch had a finite score).
    public func baseline(
        sites: [String], configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration,
        progress: (_ epoch: Int, _ score: Double?) -> Void = { _, _ in }
    ) throws -> (model: ParameterSet, convergence: ConvergenceRecord?) {
        var refit = configuration
        refit.earlyStopping = nil
        refit.timeBudgetSeconds = nil
        switch self {
        case .segmentation(let t):
            let train = sites.flatMap { t[$0]?.train ?? [] }
            let (fit, selection) = Self.selectionSplit(train, patient: \.patientID, configuration)
            var convergence: ConvergenceRecord?
            if !selection.isEmpty {
                var trainer = Trainer(configuration: configuration, preprocessing: preprocessing)
                _ = try trainer.fit(
                    train: fit, validation: selection, progress: { progress($0.epoch, $0.meanDice) })
                convergence = trainer.convergence
                refit.epochs = convergence?.bestEpoch ?? configuration.epochs
            }
            var trainer = Trainer(configuration: refit, preprocessing: preprocessing)
            _ = try trainer.fit(train: train, validation: [], progress: { progress($0.epoch, nil) })
            return (SegmentationSiteTrainer.parameterSet(trainer.model.stateDict), convergence)
        case .classification(let t):
            let train = sites.flatMap { t[$0]?.train ?? [] }
            let (fit, selection) = Self.selectionSplit(train, patient: \.patientID, configuration)
            var convergence: ConvergenceRecord?
            if !selection.isEmpty {
                var trainer = try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing)
                _ = try trainer.fit(
                    train: fit, validation: selection,
                    progress: { progress($0.epoch, $0.validation.map { $0.auc ?? $0.balancedAccuracy }) })
                convergence = trainer.convergence
                refit.epochs = convergence?.bestEpoch ?? configuration.epochs
            }
            var trainer = try ClassifierTrainer(configuration: refit, preprocessing: preprocessing)
            _ = try trainer.fit(train: train, validation: [], progress: { progress($0.epoch, nil) })
            return (SegmentationSiteTrainer.parameterSet(trainer.model.stateDict), convergence)
        }
    }

    /// Training cases split into those that train and those set aside to choose the epoch (by patient, with
    /// `Trainer.heldOutPatients`' rule and the seed + 1, so not the held-out draw again).
    static func selectionSplit<Case>(
        _ cases: [Case], patient: KeyPath<Case, String>, _ configuration: TrainingConfiguration
    ) -> (fit: [Case], selection: [Case]) {
        var draw = configuration
        draw.seed = configuration.seed &+ 1
        let aside = Trainer.heldOutPatients(cases.map { $0[keyPath: patient] }, configuration: draw)
        return (
            cases.filter { !aside.contains($0[keyPath: patient]) },
            cases.filter { aside.contains($0[keyPath: patient]) }
        )
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
