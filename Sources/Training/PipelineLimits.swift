import Foundation
import NeuralNetwork
import Volumes
import Yams

/// Upper bounds on what a training pipeline may ask for: the one place they live. The server checks a pipeline
/// against its limits when it is submitted and again when the job starts; each site checks it against its own
/// limits when a task arrives. Every check runs on the configuration alone, before a model, a volume or a batch is
/// allocated, and an error names the key (`model.encoder_channels[0]`, `preprocessing.resize[2]`).
///
/// The defaults fit a 24 GiB machine: a model of `maxParameters` float32 parameters trained with Adam keeps four
/// copies (weights, gradients, two moments: 1.6 GB), the activations of one step are held under
/// `maxActivationBytes` (8 GiB), and a preprocessed volume under `preprocessing.maxVoxelsPerVolume` (512 MiB).
/// Raise them where a real study needs more in `limits.yaml` (server: `tessera server --limits`, site: `tessera
/// client --limits`, section `pipeline:`; keys in snake case as documented in `docs/limits-pipeline.md`).
public struct PipelineLimits: Sendable, Equatable {
    /// The `preprocessing:` and `augmentation:` sections.
    public var preprocessing = PreprocessingLimits()
    /// Size of the pipeline text, bytes (bounds every list and string in it); kept in `preprocessing`.
    public var maxPipelineBytes: Int {
        get { preprocessing.maxPipelineBytes }
        set { preprocessing.maxPipelineBytes = newValue }
    }
    /// Trainable parameters of the model, counted from `model:` before it is built.
    public var maxParameters = 100_000_000
    /// Channels of one layer (`model.encoder_channels[i]`, `model.bottleneck_channels`).
    public var maxChannels = 2048
    /// Input channels of a multi-series pipeline (`model.input_channels`): series stacked per study.
    public var maxInputChannels = 8
    /// Encoder levels (entries of `model.encoder_channels`).
    public var maxLevels = 5
    /// Segments learned (`model.segments`); each a DICOM segment number 1...255.
    public var maxSegments = 64
    /// Names (the name and its synonyms) of one segment in `model.segment_names`, each at most 64 characters
    /// (the length of a (3006,0026) ROI Name, VR LO).
    public var maxSegmentNames = 32
    /// Classes of a classifier (`classification.classes`).
    public var maxClasses = 256
    /// Residual blocks per stage of a classifier (`model.blocks[i]`).
    public var maxBlocks = 16
    /// Entries of `classification.labels.map` (tag value → class).
    public var maxLabelMapEntries = 1024
    /// `classification.bootstrap.samples` (resamples for the AUC's confidence interval).
    public var maxBootstrapSamples = 100_000
    /// Voxels of a unet3d patch / inference window, and per axis `preprocessing.maxAxisVoxels`.
    public var maxPatchVoxels = 16_777_216
    /// Estimated activation memory of one training step: batch (with DP-SGD: slices per patient) × activations per
    /// sample × 4 bytes.
    public var maxActivationBytes = 8_589_934_592
    /// `training.batch_size`; also bounds `training.dp_sgd.patients_per_step` and `slices_per_patient`.
    public var maxBatchSize = 1024
    public var maxEpochs = 10_000
    /// `training.slices_per_epoch`, `training.patches_per_epoch`.
    public var maxSamplesPerEpoch = 1_000_000
    /// `training.optimizer.learning_rate` range.
    public var minLearningRate = 1e-9
    public var maxLearningRate = 10.0
    /// `federation.rounds`.
    public var maxRounds = 10_000
    /// Sites of one job (`federation.sites`, no duplicates).
    public var maxSites = 256
    /// `federation.round_timeout_seconds` and `grace_period_seconds`: 7 days.
    public var maxRoundTimeoutSeconds = 604_800
    public var maxRoundRetries = 100
    /// `federation.proximal_mu` and `federation.server_learning_rate`.
    public var maxProximalMu = 1000.0
    public var maxServerLearningRate = 100.0
    /// Bytes of diffs the server may hold at once for a robust rule that needs every site's diff (median, trimmed
    /// mean, Krum: `federation.robust_aggregation.rule`): sites × parameters × 4. 4 GiB.
    public var maxHeldUpdateBytes = 4 << 30

    public init() {}

    /// The defaults.
    public static let `default` = PipelineLimits()

    // MARK: - Checks

    /// Checks the sections the training engine reads against these limits (the parsers already checked types,
    /// ranges and per-key sizes): the model's parameter count and a training step's activation memory.
    /// - Parameter spatial: voxels of one training input (a slice for unet2d) when known from the data; nil takes it
    ///   from the configuration (patch size for unet3d; the fixed shape of `preprocessing` for unet2d, if any).
    /// - Throws: `.configuration` naming the key and the limit.
    public func validate(
        _ training: TrainingConfiguration, preprocessing: PreprocessingConfiguration,
        spatial: Int? = nil
    ) throws(TrainingError) {
        do { try preprocessing.validate(limits: self.preprocessing) } catch {
            throw TrainingError(.configuration, "`\(error.transform)`: \(error.message)", cause: error.description)
        }
        try training.validate(limits: self)
        let m = training.model
        if m.isClassifier {
            try validateClassifier(training, preprocessing: preprocessing, spatial: spatial)
            return
        }
        guard
            let parameters = UNet.parameterCount(
                dimensions: m.dimensions, encoderChannels: m.encoderChannels,
                bottleneckChannels: m.bottleneckChannels, classes: m.classes, normalization: m.normalization),
            parameters <= maxParameters
        else {
            throw TrainingError(
                .configuration,
                "`model.encoder_channels` \(m.encoderChannels) with "
                    + "`model.bottleneck_channels` \(m.bottleneckChannels) gives a model of "
                    + "\(Self.describe(Self.parameterCount(m))) parameters, more than \(maxParameters) "
                    + "(limit max_parameters); use fewer channels")
        }
        let input = spatial ?? Self.trainingInputVoxels(training, preprocessing: preprocessing)
        guard let input else { return }
        let perSample = UNet.activationValuesPerSample(
            dimensions: m.dimensions, spatial: input,
            encoderChannels: m.encoderChannels,
            bottleneckChannels: m.bottleneckChannels, classes: m.classes)
        // One step's forward/backward holds one batch, or with DP-SGD one patient's micro-batch at a time.
        let (perStep, key) =
            training.dpSGD.map { ($0.slicesPerPatient, "training.dp_sgd.slices_per_patient") }
            ?? (training.batchSize, "training.batch_size")
        let bytes = perSample.flatMap { v -> Int? in
            let (a, o1) = v.multipliedReportingOverflow(by: perStep)
            let (b, o2) = a.multipliedReportingOverflow(by: 4)
            return o1 || o2 ? nil : b
        }
        guard let bytes, bytes <= maxActivationBytes else {
            let what = m.dimensions == 3 ? "`model.patch_size` \(m.patchSize)" : "slices of \(input) voxels"
            throw TrainingError(
                .configuration,
                "`\(key)` \(perStep) with \(what) and "
                    + "`model.encoder_channels` \(m.encoderChannels) needs about "
                    + "\(bytes.map { "\($0 >> 20) MiB" } ?? "more than 8 EiB") of activations per step, "
                    + "more than \(maxActivationBytes >> 20) MiB (limit max_activation_bytes); lower the "
                    + "batch size, the input size or the channels")
        }
    }

    /// The classifier's parameter count and a step's activations (batch × `ResNet.activationValuesPerSample` × 4
    /// bytes), the input's voxels from `spatial` or the fixed preprocessing shape.
    func validateClassifier(
        _ training: TrainingConfiguration, preprocessing: PreprocessingConfiguration, spatial: Int?
    ) throws(TrainingError) {
        let m = training.model
        guard let parameters = Self.parameterCount(m), parameters <= maxParameters else {
            throw TrainingError(
                .configuration,
                "`model.widths` \(m.widths) with `model.blocks` \(m.blocks) gives a model of "
                    + "\(Self.describe(Self.parameterCount(m))) parameters, more than \(maxParameters) "
                    + "(limit max_parameters); use fewer channels or blocks")
        }
        let shape = preprocessing.preprocessing.cropPad?.shape ?? preprocessing.preprocessing.resize
        let input =
            spatial
            ?? shape.flatMap { s in
                s.count == 3 ? CheckedConversion.product(m.dimensions == 3 ? s : Array(s.prefix(2))) : nil
            }
        guard let input else { return }
        let bytes = ResNet.activationValuesPerSample(
            dimensions: m.dimensions, spatial: input, widths: m.widths, blocks: m.blocks
        ).flatMap { v -> Int? in
            let (a, o1) = v.multipliedReportingOverflow(by: training.batchSize)
            let (b, o2) = a.multipliedReportingOverflow(by: 4)
            return o1 || o2 ? nil : b
        }
        guard let bytes, bytes <= maxActivationBytes else {
            throw TrainingError(
                .configuration,
                "`training.batch_size` \(training.batchSize) with inputs of \(input) voxels and `model.widths` "
                    + "\(m.widths) needs about \(bytes.map { "\($0 >> 20) MiB" } ?? "more than 8 EiB") of activations "
                    + "per step, more than \(maxActivationBytes >> 20) MiB (limit max_activation_bytes)")
        }
    }

    /// Trainable parameters of `m` (a U-Net or a ResNet classifier), counted from the configuration (nil on
    /// overflow).
    public static func parameterCount(_ m: TrainingConfiguration.Model) -> Int? {
        if m.isClassifier {
            return ResNet.parameterCount(
                dimensions: m.dimensions, inputChannels: 1, classes: m.classes, widths: m.widths, blocks: m.blocks)
        }
        return UNet.parameterCount(
            dimensions: m.dimensions, inputChannels: m.inputChannelCount, encoderChannels: m.encoderChannels,
            bottleneckChannels: m.bottleneckChannels, classes: m.classes, normalization: m.normalization)
    }

    static func describe(_ count: Int?) -> String { count.map { "\($0)" } ?? "more than \(Int.max)" }

    /// Voxels of one training input as the configuration fixes them: the unet3d patch, or for unet2d an axial
    /// slice of the last fixed shape (random crop, crop/pad shape, resize); nil when the data decides.
    static func trainingInputVoxels(
        _ training: TrainingConfiguration,
        preprocessing: PreprocessingConfiguration
    ) -> Int? {
        if training.model.dimensions == 3 { return CheckedConversion.product(training.model.patchSize) }
        let shape =
            preprocessing.augmentation?.randomCrop?.shape ?? preprocessing.preprocessing.cropPad?.shape
            ?? preprocessing.preprocessing.resize
        guard let shape, shape.count == 3 else { return nil }
        return CheckedConversion.product(Array(shape.prefix(2)))
    }
}

extension TrainingConfiguration.Model {
    /// Trainable parameters of the configured model, counted without building it (nil on overflow).
    public var parameterCount: Int? { PipelineLimits.parameterCount(self) }
}

// MARK: - limits.yaml

extension PipelineLimits {
    /// The keys of the `pipeline:` section of `limits.yaml` (and `pipeline.preprocessing`), with their setters.
    nonisolated(unsafe) static let integerKeys: [String: WritableKeyPath<PipelineLimits, Int>] = [
        "max_pipeline_bytes": \.maxPipelineBytes, "max_parameters": \.maxParameters, "max_channels": \.maxChannels,
        "max_input_channels": \.maxInputChannels, "max_levels": \.maxLevels, "max_segments": \.maxSegments,
        "max_segment_names": \.maxSegmentNames, "max_classes": \.maxClasses,
        "max_blocks": \.maxBlocks, "max_label_map_entries": \.maxLabelMapEntries,
        "max_bootstrap_samples": \.maxBootstrapSamples, "max_patch_voxels": \.maxPatchVoxels,
        "max_activation_bytes": \.maxActivationBytes, "max_batch_size": \.maxBatchSize, "max_epochs": \.maxEpochs,
        "max_samples_per_epoch": \.maxSamplesPerEpoch, "max_rounds": \.maxRounds, "max_sites": \.maxSites,
        "max_round_timeout_seconds": \.maxRoundTimeoutSeconds, "max_round_retries": \.maxRoundRetries,
        "max_held_update_bytes": \.maxHeldUpdateBytes,
    ]
    nonisolated(unsafe) static let doubleKeys: [String: WritableKeyPath<PipelineLimits, Double>] = [
        "min_learning_rate": \.minLearningRate, "max_learning_rate": \.maxLearningRate,
        "max_proximal_mu": \.maxProximalMu, "max_server_learning_rate": \.maxServerLearningRate,
    ]
    nonisolated(unsafe) static let preprocessingIntegerKeys: [String: WritableKeyPath<PreprocessingLimits, Int>] = [
        "max_voxels_per_volume": \.maxVoxelsPerVolume, "max_axis_voxels": \.maxAxisVoxels,
        "max_margin_voxels": \.maxMarginVoxels, "max_control_points": \.maxControlPoints,
        "max_histogram_landmarks": \.maxHistogramLandmarks,
    ]
    nonisolated(unsafe) static let preprocessingDoubleKeys: [String: WritableKeyPath<PreprocessingLimits, Double>] = [
        "min_spacing_mm": \.minSpacingMM, "max_spacing_mm": \.maxSpacingMM,
        "max_intensity_magnitude": \.maxIntensityMagnitude, "max_displacement_mm": \.maxDisplacementMM,
        "max_intensity_augmentation": \.maxIntensityAugmentation, "min_factor": \.minFactor, "max_factor": \.maxFactor,
    ]

    /// The `pipeline:` section of a `limits.yaml` (other sections belong to other modules); absent keys keep their
    /// defaults. Every value must be a positive number.
    /// - Throws: `.configuration` naming the key for unknown keys and bad values.
    public init(yaml: String) throws(TrainingError) {
        self.init()
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw TrainingError(.configuration, "the limits file is not valid YAML", cause: "\(error)")
        }
        guard let section = root?.mapping?["pipeline"] else { return }
        guard let mapping = section.mapping else {
            throw TrainingError(.configuration, "`pipeline` in the limits file must be a mapping")
        }
        for (k, v) in mapping {
            let key = k.string ?? ""
            if key == "preprocessing" {
                guard let inner = v.mapping else {
                    throw TrainingError(.configuration, "`pipeline.preprocessing` in the limits file must be a mapping")
                }
                for (k2, v2) in inner {
                    let key2 = k2.string ?? ""
                    let path = "pipeline.preprocessing.\(key2)"
                    if let p = Self.preprocessingIntegerKeys[key2] {
                        preprocessing[keyPath: p] = try Self.positiveInt(v2, path)
                    } else if let p = Self.preprocessingDoubleKeys[key2] {
                        preprocessing[keyPath: p] = try Self.positiveDouble(v2, path)
                    } else {
                        throw TrainingError(.configuration, "unknown key `\(path)` in the limits file")
                    }
                }
            } else if let p = Self.integerKeys[key] {
                self[keyPath: p] = try Self.positiveInt(v, "pipeline.\(key)")
            } else if let p = Self.doubleKeys[key] {
                self[keyPath: p] = try Self.positiveDouble(v, "pipeline.\(key)")
            } else {
                throw TrainingError(
                    .configuration,
                    "unknown key `pipeline.\(String(key.prefix(64)))` in the limits file")
            }
        }
    }

    static func positiveInt(_ node: Node, _ path: String) throws(TrainingError) -> Int {
        guard let v = node.int, v > 0 else { throw TrainingError(.configuration, "`\(path)` must be an integer > 0") }
        return v
    }

    static func positiveDouble(_ node: Node, _ path: String) throws(TrainingError) -> Double {
        guard let v = node.float, v > 0, v.isFinite else {
            throw TrainingError(.configuration, "`\(path)` must be a finite number > 0")
        }
        return v
    }
}
