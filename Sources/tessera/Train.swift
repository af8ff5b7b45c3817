import ArgumentParser
import ExperimentTracking
import Foundation
import Tensors
import Training
import Volumes

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the pipeline's segmentation or classification model on one site's DICOM data (no federation).",
        discussion: """
            Segmentation: reads every series with a DICOM SEG in --data, preprocesses it as the pipeline's \
            `preprocessing:` says, holds out patients for validation, and trains with the `model:` and `training:` \
            settings for at most `training.epochs` epochs (fewer with `training.early_stopping` or \
            `time_budget_seconds`); the best checkpoint (highest validation Dice) is written to \
            <output>/best.safetensors with metrics.json. Classification (`model.architecture` resnet2d/resnet3d, a \
            `classification:` section): \
            selects one series per study, labels it from the site's CSV (--labels, or `classification.labels.csv` \
            under --data) or a mapped tag, and keeps the model with the highest validation AUC.
            """)

    @Argument(help: "Pipeline YAML (see pipelines/segmentation-unet2d.yaml).")
    var pipeline: String

    @Option(
        help: ArgumentHelp(
            "A site's data folder: DICOM series with SEGs, RT Structure Sets or NIfTI label maps; or NIfTI "
                + "images (model.nifti_images)."))
    var data: String

    @Option(name: .shortAndLong, help: "Output folder.")
    var output: String = "out/train"

    @Option(help: "Override training.epochs.")
    var epochs: Int?

    @Option(help: "Classification: the labels CSV (default: `classification.labels.csv` under --data).")
    var labels: String?

    @Option(help: "Classification: start from this checkpoint's weights (safetensors, the same architecture).")
    var initialWeights: String?

    @OptionGroup var tracking: TrackingOptions

    @OptionGroup var common: CommonOptions

    /// The event file of this training run (`--tensorboard DIR`: the run folder is DIR itself), nil when off.
    func eventFile() throws -> EventFileWriter? {
        guard let folder = tracking.tensorboard else { return nil }
        do { return try EventFileWriter(folder: folder) } catch {
            throw CommandFailure(description: "--tensorboard: \(error.description)")
        }
    }

    func run() throws {
        common.apply()
        MemoryPolicy.retainFreedMemory()  // the same large buffers every step: reuse them (see MemoryPolicy)
        do {
            let text = try readPipeline(pipeline)
            let preprocessing = try PreprocessingConfiguration(yaml: text)
            var config = try TrainingConfiguration(yaml: text)
            if let epochs { config.epochs = max(1, epochs) }
            // The same limits as a federated job: the model's size and a step's memory, before anything is read.
            try PipelineLimits.default.validate(config, preprocessing: preprocessing)
            if config.model.isClassifier {
                try trainClassifier(config, preprocessing: preprocessing)
                return
            }
            let loaded = try SegmentationDataset.load(folder: data, model: config.model, preprocessing: preprocessing)
            for line in loaded.report.lines() { print(line) }
            let cases = loaded.cases
            var trainer = Trainer(configuration: config, preprocessing: preprocessing)
            let (train, validation) = trainer.split(cases)
            let dims = cases[0].sample.image.geometry.dimensions
            print(
                "\(cases.count) cases (\(train.count) training, \(validation.count) validation patients), canonical grid "
                    + "\(dims.x)×\(dims.y)×\(dims.z); \(config.epochs) epochs of "
                    + (config.model.dimensions == 3
                        ? "\(config.patchesPerEpoch) patches of \(config.model.patchSize.map(String.init).joined(separator: "×"))"
                        : "\(config.slicesPerEpoch) slices"))
            let checkpoint = output + "/best.safetensors"
            let events = try eventFile()
            // A progress bar redrawn on stderr only when a person watches (a terminal); logs get the epoch lines.
            let bar: ProgressBar? = isatty(STDERR_FILENO) == 1 ? ProgressBar() : nil
            let showStep: (StepProgress) -> Void = { step in
                guard let bar else { return }
                FileHandle.standardError.write(Data(("\r" + bar.render(step)).utf8))
            }
            let reports = try trainer.fit(
                train: train, validation: validation, checkpoint: checkpoint,
                onStep: showStep
            ) { r in
                if bar != nil { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }  // clear the bar's line
                do { try events?.write(r.trackedScalars, step: r.epoch) } catch { log("TensorBoard: \(error)") }
                let dice = r.validationDice.enumerated().map {
                    "class \($0.offset + 1) \(String(format: "%.3f", $0.element))"
                }
                print(
                    String(
                        format: "epoch %3d  loss %.4f  %@  (%.1f s)", r.epoch, r.loss,
                        dice.isEmpty ? "" : "validation Dice " + dice.joined(separator: ", "), r.seconds))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(reports).write(to: URL(fileURLWithPath: output + "/metrics.json"))
            let best = trainer.convergence.flatMap { c in reports.first { $0.epoch == c.bestEpoch } }
            print(
                "best validation Dice \(String(format: "%.3f", best?.meanDice ?? 0)) at epoch \(best?.epoch ?? 0)"
                    + Self.stopped(trainer.convergence) + "; wrote \(checkpoint)")
        } catch let error as TrainingError {
            throw CommandFailure(description: error.description)
        } catch let error as VolumesError {
            throw CommandFailure(description: error.description)
        }
    }
}

extension Train {
    /// `tessera train` for a classification pipeline.
    func trainClassifier(_ config: TrainingConfiguration, preprocessing: PreprocessingConfiguration) throws {
        guard let k = config.classification else { return }
        let (cases, report) = try ClassificationDataset.load(
            folder: data, preprocessing: preprocessing, configuration: k, labelsPath: labels)
        for line in report.lines() { log(line) }
        var trainer = try ClassifierTrainer(configuration: config, preprocessing: preprocessing)
        if let initialWeights { try trainer.load(checkpoint: initialWeights) }
        let (train, validation) = trainer.split(cases)
        let counts = k.classes.indices.map { c in cases.filter { $0.label == c }.count }
        let dims = cases[0].sample.image.geometry.dimensions
        print(
            "\(cases.count) labelled studies ("
                + zip(k.classes, counts).map { "\($0.0): \($0.1)" }.joined(separator: ", ")
                + "), \(train.count) training and \(validation.count) validation; canonical grid "
                + "\(dims.x)×\(dims.y)×\(dims.z), input \(k.input.rawValue); \(config.epochs) epochs")
        let checkpoint = output + "/best.safetensors"
        let events = try eventFile()
        let reports = try trainer.fit(
            train: train, validation: validation, checkpoint: checkpoint,
            progress: { (r: ClassifierEpochReport) in
                do { try events?.write(r.trackedScalars, step: r.epoch) } catch { log("TensorBoard: \(error)") }
                let v = r.validation.map { m in
                    "validation AUC " + (m.auc.map { String(format: "%.3f", $0) } ?? "-")
                        + String(format: ", balanced accuracy %.3f", m.balancedAccuracy)
                }
                print(String(format: "epoch %3d  loss %.4f  %@  (%.1f s)", r.epoch, r.loss, v ?? "", r.seconds))
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(reports).write(to: URL(fileURLWithPath: output + "/metrics.json"))
        let best = trainer.convergence.flatMap { c in reports.first { $0.epoch == c.bestEpoch } }
        print(
            "best validation AUC \(best?.validation?.auc.map { String(format: "%.3f", $0) } ?? "-") at epoch "
                + "\(best?.epoch ?? 0)" + Self.stopped(trainer.convergence) + "; wrote \(checkpoint)")
    }

    /// How the run ended: " (all 12 epochs run)", ", stopped early after 14 epochs", … (empty when unknown).
    static func stopped(_ c: ConvergenceRecord?) -> String {
        guard let c else { return "" }
        switch c.stoppedBy {
        case .epochBudget: return " (all \(c.epochs) epochs run)"
        case .earlyStopping: return ", stopped early after \(c.epochs) epochs"
        case .timeBudget: return ", stopped by the time budget after \(c.epochs) epochs"
        }
    }
}
