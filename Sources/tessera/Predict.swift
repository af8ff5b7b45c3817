import ArgumentParser
import DICOMIO
import Foundation
import Tensors
import Training
import Volumes

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Segment a DICOM series (NIfTI or DICOM SEG), or classify every study of a folder (CSV + JSON).",
        discussion: """
            A classification pipeline (`model.architecture` resnet2d/resnet3d) selects one series per study of the \
            folder with `classification.series` and writes each study's class probabilities to <output>.csv and \
            <output>.json (with the series it used). A segmentation model trained on several series per study \
            (`model.input_channels`) needs --pipeline: its channels select each series, which is resampled onto \
            the reference channel's series; the labels are written on that series' grid.
            """)

    @Option(
        help: """
            A model file: `tessera train`'s best.safetensors, `tessera simulate`'s or the global.safetensors of \
            `tessera admin download`.
            """)
    var model: String

    @Option(
        help: """
            The pipeline YAML the model was trained with (its `preprocessing:` is applied). Optional for a \
            segmentation model, whose file names its preprocessing; required for a classifier (its \
            `classification:` section selects the series).
            """)
    var pipeline: String?

    @Argument(help: "A folder holding the series.")
    var folder: String

    @Option(
        help: """
            (0020,000E) Series Instance UID when the folder holds several series; with a multi-channel model \
            (model.input_channels), any series of the study to segment when the folder holds several studies.
            """)
    var series: String?

    @Option(
        name: .shortAndLong,
        help: """
            labels.nii[.gz], a DICOM SEG or an RT Structure Set file (see --format); classification: \
            predictions[.csv] (+ .json).
            """)
    var output: String

    /// What a segmentation is written as.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        /// By the output's name: .nii/.nii.gz NIfTI, anything else a DICOM SEG.
        case auto
        case nifti
        case seg
        case rtstruct
    }

    @Option(
        help: """
            Segmentation output: nifti, seg (DICOM SEG), rtstruct (RT Structure Set: each segment's voxels traced \
            into closed planar contours on the series' slices, ROIs named by the pipeline's `model.segment_names` \
            or `Segment N`), or auto: NIfTI for .nii/.nii.gz, else SEG.
            """)
    var format: Format = .auto

    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
        MemoryPolicy.retainFreedMemory()  // the same large buffers every step: reuse them (see MemoryPolicy)
        do {
            let text = try pipeline.map(readPipeline)
            if let text, case let training = try TrainingConfiguration(yaml: text), training.model.isClassifier {
                try classify(training, preprocessing: try PreprocessingConfiguration(yaml: text))
                return
            }
            let segmenter = try Segmenter(checkpoint: model)
            // The pipeline given on the command line wins; else the preprocessing the model file names.
            guard
                let preprocessing = try text.map({ try PreprocessingConfiguration(yaml: $0) })
                    ?? segmenter.preprocessing
            else {
                throw CommandFailure(
                    description: "\(model) names no preprocessing (written by an older Tessera): give --pipeline")
            }
            let all = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
            let chosen: DICOMSeries
            let sample: Sample
            let canonical: Volume<UInt8>
            if let channels = try inputChannels(text, segmenter: segmenter) {
                // Several series per study: the reference channel's series is the one segmented.
                let study = try channelStudy(channels, all)
                chosen = study[0]
                var inputs: [Volume<Float>] = []
                for s in study { inputs.append(try Volume<Float>(series: s, stack: try s.primaryStack())) }
                let stacked = try channels.prepare(inputs, label: nil, preprocessing: preprocessing)
                sample = stacked.sample
                canonical = try segmenter.predict([sample.image] + stacked.additional)
            } else {
                chosen = try SeriesSelection.select(from: all, uid: series)
                var pipeline = preprocessing.preprocessingPipeline()
                sample = try pipeline.apply(try Volume<Float>(series: chosen, stack: try chosen.primaryStack()))
                canonical = try segmenter.predict(sample.image)
            }
            let stack = try chosen.primaryStack()
            var labels = try sample.inverse(canonical)
            // Classes back to the SEG segment numbers the model was trained on.
            for i in labels.voxels.indices where labels.voxels[i] > 0 {
                labels.voxels[i] = UInt8(segmenter.segments[Int(labels.voxels[i]) - 1])
            }
            let counts = segmenter.segments.map { s in labels.voxels.filter { $0 == UInt8(s) }.count }
            var format = self.format
            if format == .auto { format = output.hasSuffix(".nii") || output.hasSuffix(".nii.gz") ? .nifti : .seg }
            switch format {
            case .nifti, .auto:
                try NIfTI.write(labels, to: output, description: "Tessera prediction")
            case .rtstruct:
                // ROI names: the first name of each segment in the pipeline's `model.segment_names`.
                let names = try text.flatMap { try TrainingConfiguration(yaml: $0).model.segmentNames }
                var writer = StructureSetWriter()
                writer.label = "PREDICTION"
                writer.seriesDescription = "Tessera prediction"
                try labels.writeStructureSet(
                    to: output, series: chosen, stack: stack,
                    rois: segmenter.segments.map { segment in
                        StructureSetROIChoice(
                            label: segment,
                            name: names?.entries.first { $0.label == segment }?.name ?? "Segment \(segment)")
                    }, writer: writer)
            case .seg:
                guard chosen.instances.allSatisfy({ $0.numberOfFrames == 1 }) else {
                    throw CommandFailure(
                        description: "writing a DICOM SEG over a multi-frame series is not supported yet; write NIfTI")
                }
                let plane = stack.rows * stack.columns
                var masks = [UInt8](repeating: 0, count: segmenter.segments.count * stack.slices.count * plane)
                for (s, segment) in segmenter.segments.enumerated() {
                    for i in labels.voxels.indices where labels.voxels[i] == UInt8(segment) {
                        masks[s * stack.slices.count * plane + i] = 1
                    }
                }
                var writer = SegmentationWriter()
                writer.seriesDescription = "Tessera prediction"
                writer.contentLabel = "PREDICTION"
                try writer.write(
                    to: output, masks: masks, rows: stack.rows, columns: stack.columns,
                    sourcePaths: stack.slices.map { chosen.instances[$0.instance].path },
                    segments: segmenter.segments.map {
                        SegmentSpecification(
                            label: "Segment \($0)", typeCode: ("91723000", "SCT", "Anatomical Structure"),
                            algorithmType: "AUTOMATIC", algorithmName: "Tessera U-Net")
                    })
            }
            print(
                "wrote \(output): "
                    + zip(segmenter.segments, counts).map { "segment \($0.0): \($0.1) voxels" }.joined(separator: ", "))
        } catch let error as TrainingError {
            throw CommandFailure(description: error.description)
        } catch let error as VolumesError {
            throw CommandFailure(description: error.description)
        } catch let error as DICOMError {
            throw CommandFailure(description: error.description)
        } catch let error as NIfTI.Error {
            throw CommandFailure(description: error.description)
        }
    }
}

extension Predict {
    /// The pipeline's `model.input_channels` when the model takes several channels; nil for a one-channel model.
    /// - Throws: when a multi-channel model comes without `--pipeline`, or the pipeline's channels are not the
    ///   model's (names in order).
    func inputChannels(_ pipeline: String?, segmenter: Segmenter) throws -> InputChannels? {
        guard segmenter.model.inputChannels > 1 else { return nil }
        let names = segmenter.inputChannelNames.joined(separator: ", ")
        guard let pipeline, let channels = try TrainingConfiguration(yaml: pipeline).model.inputChannels else {
            throw CommandFailure(
                description: "\(model) takes \(segmenter.model.inputChannels) input channels (\(names)): give "
                    + "--pipeline with the `model.input_channels` it was trained with, which select each channel's "
                    + "series")
        }
        guard channels.names == segmenter.inputChannelNames else {
            throw CommandFailure(
                description: "the pipeline's input channels (\(channels.names.joined(separator: ", "))) are not "
                    + "the model's (\(names))")
        }
        return channels
    }

    /// The series of each channel in the folder's one study, or in the study of `--series` (a series of that
    /// study).
    func channelStudy(_ channels: InputChannels, _ all: [DICOMSeries]) throws -> [DICOMSeries] {
        var studies = try channels.match(all.filter { s in !s.instances.contains { $0.isSegmentation } })
        if let series {
            guard let study = all.first(where: { $0.seriesInstanceUID == series })?.studyInstanceUID else {
                throw CommandFailure(description: "no series \(series) in \(folder)")
            }
            studies = studies.filter { $0.studyInstanceUID == study }
        }
        guard studies.count == 1, let study = studies.first else {
            throw CommandFailure(
                description: "\(folder) holds \(studies.count) studies; choose one with --series (any series of it)")
        }
        guard let chosen = study.series else {
            throw CommandFailure(
                description: "study \(study.studyInstanceUID) has no series for channel(s) "
                    + study.missing.joined(separator: ", "))
        }
        return chosen
    }

    /// Every study of the folder (one series each, as `classification.series` selects) through the classifier.
    func classify(_ training: TrainingConfiguration, preprocessing: PreprocessingConfiguration) throws {
        guard let k = training.classification else { return }
        var trainer = try ClassifierTrainer(configuration: training, preprocessing: preprocessing)
        try trainer.load(checkpoint: model)
        var (cases, _) = try ClassificationDataset.load(
            folder: folder, preprocessing: preprocessing, configuration: k, requireLabels: false)
        if let series { cases = cases.filter { $0.seriesInstanceUID == series } }
        guard !cases.isEmpty else { throw CommandFailure(description: "no study to classify in \(folder)") }
        let prediction = ClassificationPrediction(
            cases: cases, probabilities: try trainer.predict(cases), configuration: k)
        let paths = try prediction.write(to: output)
        for s in prediction.studies {
            print(
                "\(s.patientID)  study \(s.studyInstanceUID)  series \"\(s.seriesDescription)\" "
                    + "\(s.seriesInstanceUID): "
                    + k.classes.map { String(format: "%@ %.3f", $0, s.probabilities[$0] ?? 0) }.joined(separator: ", "))
        }
        print("wrote \(paths.csv) and \(paths.json)")
    }
}
