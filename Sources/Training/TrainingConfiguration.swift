import DICOMIO
import Foundation
import NeuralNetwork
import Volumes
import Yams

/// The `model:` and `training:` sections of a pipeline YAML (`pipelines/segmentation-unet2d.yaml`).
public struct TrainingConfiguration: Sendable, Equatable {
    public struct Model: Sendable, Equatable {
        /// unet2d: a 2-D U-Net (the reference module's layout) trained on axial slices; unet3d: the same layout in
        /// 3-D, trained on class-balanced patches and applied by sliding windows; resnet2d / resnet3d: ResNet-style
        /// study classifiers (a `classification:` section is then required).
        public var architecture = "unet2d"
        public var encoderChannels = [16, 32, 64, 128]
        public var bottleneckChannels = 256
        /// DICOM SEG segment numbers to learn; class i (1-based) is the i-th of them, everything else background.
        public var segments = [1]
        /// `model.segment_names`: the RT Structure Set ROI names (and each site's synonyms) of segment numbers, so
        /// an RTSTRUCT can stand in for a SEG; nil: an ROI's (3006,0022) ROI Number is its segment number.
        public var segmentNames: ROILabelMapping?
        /// `model.nifti_labels`: where a site keeps NIfTI-1 label maps (voxel values = segment numbers) for series
        /// without a SEG or an RT Structure Set; nil: NIfTI labels are not looked for.
        public var niftiLabels: NIfTILabelFiles?
        /// `model.input_channels`: the series stacked as input channels per study (the first is the reference grid
        /// and carries the labels); nil: one channel, the labelled series. See `InputChannels`.
        public var inputChannels: InputChannels?
        /// `model.nifti_images`: a site whose images and labels are NIfTI files in two folders, without DICOM;
        /// nil: DICOM images. See `NIfTIImageFolders`.
        public var niftiImages: NIfTIImageFolders?
        /// Channels of the model's input: one per `inputChannels` entry, else 1.
        public var inputChannelCount: Int { inputChannels?.channels.count ?? 1 }
        /// Seed of the weight initialisation.
        public var seed: UInt64 = 7
        /// resnet2d / resnet3d: output channels of each stage (`layer1`, `layer2`, …).
        public var widths = [16, 32, 64]
        /// resnet2d / resnet3d: residual blocks per stage.
        public var blocks = [1, 1, 1]
        /// resnet2d / resnet3d: batch (torchvision's default) or instance normalisation.
        public var norm = FeatureNorm.Kind.batch
        /// unet2d / unet3d (`model.norm: none | instance`): an affine instance norm after every 3×3 convolution, or
        /// none (the reference module's layout, the default).
        public var normalization = DoubleConv.Normalization.none
        /// Classifier outputs (set from `classification.classes`); nil for segmentation.
        public var classifierClasses: Int?
        public var classes: Int { classifierClasses ?? segments.count + 1 }
        /// True for the ResNet classifiers.
        public var isClassifier: Bool { architecture.hasPrefix("resnet") }
        /// unet3d: training patch and inference window, [x, y, z] voxels (each a multiple of 2^levels).
        public var patchSize = [64, 64, 32]
        /// unet3d: overlap of neighbouring inference windows, in [0, 1).
        public var windowOverlap = 0.25
        /// unet3d: how overlapping windows are blended (gaussian | constant).
        public var windowBlending = SlidingWindowInference.Blending.gaussian
        /// 2 for unet2d, 3 for unet3d.
        public var dimensions: Int { architecture == "unet3d" || architecture == "resnet3d" ? 3 : 2 }
        /// The patch as a tensor's `[depth, height, width]`.
        public var patchExtents: [Int] { [patchSize[2], patchSize[1], patchSize[0]] }
    }

    public struct Optimizer: Sendable, Equatable {
        /// sgd | adam | adamw
        public var name = "adam"
        public var learningRate: Float = 1e-3
        public var momentum: Float = 0.9
        public var nesterov = false
        public var weightDecay: Float = 0
    }

    /// `training.early_stopping`: stop once the validation score has not improved for `patience` epochs in a row
    /// (`ConvergenceMonitor`).
    public struct EarlyStopping: Sendable, Equatable {
        /// Epochs in a row without improvement after which training stops, 1...`max_epochs`.
        public var patience: Int
        /// The least rise of the score (mean validation Dice, or AUC) that counts as an improvement, in 0...1.
        public var minDelta: Double

        public init(patience: Int, minDelta: Double = 0) {
            self.patience = patience
            self.minDelta = minDelta
        }
    }

    public var model = Model()
    public var optimizer = Optimizer()
    /// The epoch budget of a training run: at most this many epochs (fewer with `earlyStopping` or
    /// `timeBudgetSeconds`). A federated round trains `federation.local_epochs` instead.
    public var epochs = 20
    /// Early stopping on the validation score (nil: none). Applies only when there are validation cases.
    public var earlyStopping: EarlyStopping?
    /// `training.time_budget_seconds`: a run stops after the epoch that ends past this many seconds since it began
    /// (nil: no time budget), in 1...`maxTimeBudgetSeconds`. Not applied to a federated round's local epochs.
    public var timeBudgetSeconds: Double?
    /// Slices (unet2d) or patches (unet3d) per optimiser step. Does not apply with `dpSGD` (lots of patients instead).
    public var batchSize = 8
    /// Slices drawn per epoch (class-balanced: `foregroundFraction` of them contain a segment).
    public var slicesPerEpoch = 256
    /// unet3d: patches drawn per epoch (class-balanced like the slices).
    public var patchesPerEpoch = 64
    public var foregroundFraction = 0.7
    /// Patients held out for validation (at least one when there are two or more).
    public var validationFraction = 0.25
    /// Loss: dice_ce (soft Dice + cross-entropy) | ce | dice.
    public var loss = "dice_ce"
    /// Gradient clipping by global norm (0: off). Does not apply with `dpSGD` (per-patient clipping instead).
    public var gradientClipNorm: Float = 5
    /// Sample-level DP-SGD with the patient as the privacy unit (`training.dp_sgd`); nil: ordinary training.
    public var dpSGD: DPSGD?
    /// Seed for the split, the slice sampling and the augmentation order.
    public var seed: UInt64 = 20_261_121
    /// The `classification:` section (classifier architectures only).
    public var classification: ClassificationConfiguration?

    public init() {}

    static let architectures = ["unet2d", "unet3d", "resnet2d", "resnet3d"]
    /// The largest `training.time_budget_seconds`: one week.
    public static let maxTimeBudgetSeconds = 604_800.0

    static let modelKeys: Set<String> = [
        "architecture", "encoder_channels", "bottleneck_channels", "segments", "segment_names", "nifti_labels", "seed",
        "input_channels", "nifti_images", "patch_size", "window_overlap", "window_blending", "widths", "blocks", "norm",
    ]
    static let trainingKeys: Set<String> = [
        "epochs", "batch_size", "slices_per_epoch", "patches_per_epoch",
        "foreground_fraction",
        "validation_fraction", "loss", "gradient_clip_norm", "seed", "optimizer",
        "dp_sgd", "early_stopping", "time_budget_seconds",
    ]
    static let earlyStoppingKeys: Set<String> = ["patience", "min_delta"]
    static let optimizerKeys: Set<String> = ["name", "learning_rate", "momentum", "nesterov", "weight_decay"]
    static let dpSGDKeys: Set<String> = [
        "noise_multiplier", "max_grad_norm", "sampling", "patients_per_step",
        "slices_per_patient",
    ]

    /// Parses the `model:` and `training:` sections (both optional; defaults above) and checks them against
    /// `limits` (sizes only; `PipelineLimits.validate` adds the model's parameter count and activation memory).
    /// Unknown keys, wrong types and values out of range are errors naming the key (`model.encoder_channels[0]`).
    public init(yaml: String, limits: PipelineLimits = .default) throws(TrainingError) {
        let node: Node?
        do { node = try YAMLSize.compose(yaml, maxBytes: limits.maxPipelineBytes) } catch {
            if let parserError = error.parserError {
                throw TrainingError(.configuration, "the pipeline is not valid YAML", cause: "\(parserError)")
            }
            throw TrainingError(.configuration, "the pipeline is refused: \(error.problem)")
        }
        let root = node?.mapping
        guard let root else { throw TrainingError(.configuration, "the pipeline YAML must be a mapping") }
        func fail(_ path: String, _ message: String) -> TrainingError {
            TrainingError(.configuration, "`\(path)` \(message)")
        }
        func mapping(_ node: Node?, _ path: String, _ allowed: Set<String>) throws(TrainingError) -> [String: Node] {
            guard let node else { return [:] }
            guard let m = node.mapping else { throw fail(path, "must be a mapping") }
            var out: [String: Node] = [:]
            for (k, v) in m {
                let key = k.string ?? ""
                guard allowed.contains(key) else {
                    throw TrainingError(
                        .configuration,
                        "unknown key `\(path).\(String(key.prefix(64)))`; known: "
                            + allowed.sorted().joined(separator: ", "))
                }
                out[key] = v
            }
            return out
        }
        func int(_ n: Node?, _ path: String, _ range: ClosedRange<Int>) throws(TrainingError) -> Int? {
            guard let n else { return nil }
            guard n.scalar != nil, let v = n.int, range.contains(v) else {
                throw fail(path, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func unsigned(_ n: Node?, _ path: String) throws(TrainingError) -> UInt64? {
            guard let n else { return nil }
            guard let text = n.scalar?.string, let v = UInt64(text) else {
                throw fail(path, "must be an integer in 0...\(UInt64.max)")
            }
            return v
        }
        func double(_ n: Node?, _ path: String, _ range: ClosedRange<Double>) throws(TrainingError) -> Double? {
            guard let n else { return nil }
            guard n.scalar != nil, let v = n.float, v.isFinite, range.contains(v) else {
                throw fail(path, "must be a number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func string(_ n: Node?, _ path: String, _ allowed: [String]) throws(TrainingError) -> String? {
            guard let n else { return nil }
            guard let v = n.scalar?.string, allowed.contains(v) else {
                let kind = n.mapping != nil ? "mapping" : "list"
                let shown = n.scalar.map { CheckedConversion.quoted($0.string) } ?? "a \(kind)"
                let names = allowed.dropLast().joined(separator: ", ") + " or " + (allowed.last ?? "")
                throw fail(path, "is \(shown): must be \(names)")
            }
            return v
        }
        func ints(
            _ n: Node?, _ path: String, count: ClosedRange<Int>, values: ClosedRange<Int>,
            shape: String? = nil
        ) throws(TrainingError) -> [Int]? {
            guard let n else { return nil }
            guard let seq = n.sequence else { throw fail(path, "must be a list of integers") }
            guard count.contains(seq.count) else {
                throw fail(
                    path,
                    "has \(seq.count) entries: give "
                        + (shape
                            ?? "\(count.lowerBound)...\(count.upperBound)"))
            }
            var out: [Int] = []
            for (i, item) in seq.enumerated() {
                guard item.scalar != nil, let v = item.int, values.contains(v) else {
                    throw fail("\(path)[\(i)]", "must be an integer in \(values.lowerBound)...\(values.upperBound)")
                }
                out.append(v)
            }
            return out
        }
        let model = try mapping(root["model"], "model", Self.modelKeys)
        let training = try mapping(root["training"], "training", Self.trainingKeys)
        let optimizer = try mapping(training["optimizer"], "training.optimizer", Self.optimizerKeys)
        if let a = try string(model["architecture"], "model.architecture", Self.architectures) {
            self.model.architecture = a
        }
        let channels = 1...limits.maxChannels
        self.model.encoderChannels =
            try ints(
                model["encoder_channels"], "model.encoder_channels",
                count: 1...limits.maxLevels, values: channels)
            ?? self.model.encoderChannels
        self.model.bottleneckChannels =
            try int(model["bottleneck_channels"], "model.bottleneck_channels", channels)
            ?? self.model.bottleneckChannels
        self.model.segments =
            try ints(
                model["segments"], "model.segments", count: 1...limits.maxSegments,
                values: 1...255) ?? self.model.segments
        if Set(self.model.segments).count != self.model.segments.count {
            throw fail("model.segments", "\(self.model.segments) lists a segment twice")
        }
        if let node = model["segment_names"] {
            self.model.segmentNames = try Self.segmentNames(node, limits: limits)
        }
        if let node = model["nifti_labels"] {
            guard let text = node.scalar?.string else {
                throw fail("model.nifti_labels", "must be a path such as labels/{SeriesInstanceUID}.nii.gz")
            }
            self.model.niftiLabels = try NIfTILabelFiles(template: text)
        }
        if let node = model["input_channels"] {
            self.model.inputChannels = try InputChannels.parse(node, limits: limits)
        }
        if let node = model["nifti_images"] {
            self.model.niftiImages = try NIfTIImageFolders.parse(node)
        }
        if let s = try unsigned(model["seed"], "model.seed") { self.model.seed = s }
        self.model.widths =
            try ints(model["widths"], "model.widths", count: 1...limits.maxLevels, values: channels)
            ?? self.model.widths
        self.model.blocks =
            try ints(model["blocks"], "model.blocks", count: 1...limits.maxLevels, values: 1...limits.maxBlocks)
            ?? self.model.blocks
        if self.model.isClassifier {
            if let n = try string(model["norm"], "model.norm", ["batch", "instance"]),
                let kind = FeatureNorm.Kind(rawValue: n)
            {
                self.model.norm = kind
            }
        } else if let n = try string(model["norm"], "model.norm", ["none", "instance"]) {
            self.model.normalization = n == "instance" ? .instance : .none
        }
        if let section = root["classification"] {
            let c = try ClassificationConfiguration(node: section, limits: limits)
            classification = c
            self.model.classifierClasses = c.classes.count
        }
        if self.model.isClassifier && training["loss"] == nil { loss = "ce" }
        let axis = limits.preprocessing.maxAxisVoxels
        if let p = try ints(
            model["patch_size"], "model.patch_size", count: 3...3, values: 1...axis,
            shape: "[x, y, z]")
        {
            self.model.patchSize = p
        }
        if let v = try double(model["window_overlap"], "model.window_overlap", 0...0.95) {
            self.model.windowOverlap = v
        }
        if let b = try string(model["window_blending"], "model.window_blending", ["gaussian", "constant"]),
            let blending = SlidingWindowInference.Blending(rawValue: b)
        {
            self.model.windowBlending = blending
        }
        epochs = try int(training["epochs"], "training.epochs", 1...limits.maxEpochs) ?? epochs
        let samples = 1...limits.maxSamplesPerEpoch
        patchesPerEpoch =
            try int(training["patches_per_epoch"], "training.patches_per_epoch", samples)
            ?? patchesPerEpoch
        batchSize = try int(training["batch_size"], "training.batch_size", 1...limits.maxBatchSize) ?? batchSize
        slicesPerEpoch = try int(training["slices_per_epoch"], "training.slices_per_epoch", samples) ?? slicesPerEpoch
        foregroundFraction =
            try double(training["foreground_fraction"], "training.foreground_fraction", 0...1)
            ?? foregroundFraction
        validationFraction =
            try double(training["validation_fraction"], "training.validation_fraction", 0...0.9)
            ?? validationFraction
        loss = try string(training["loss"], "training.loss", ["dice_ce", "ce", "dice"]) ?? loss
        if let c = try double(training["gradient_clip_norm"], "training.gradient_clip_norm", 0...1e6) {
            gradientClipNorm = Float(c)
        }
        if let s = try unsigned(training["seed"], "training.seed") { seed = s }
        self.optimizer.name =
            try string(optimizer["name"], "training.optimizer.name", ["sgd", "adam", "adamw"])
            ?? self.optimizer.name
        if let v = try double(
            optimizer["learning_rate"], "training.optimizer.learning_rate",
            limits.minLearningRate...limits.maxLearningRate)
        {
            self.optimizer.learningRate = Float(v)
        }
        if let v = try double(optimizer["momentum"], "training.optimizer.momentum", 0...0.999) {
            self.optimizer.momentum = Float(v)
        }
        if let v = try double(optimizer["weight_decay"], "training.optimizer.weight_decay", 0...1) {
            self.optimizer.weightDecay = Float(v)
        }
        if let n = optimizer["nesterov"] {
            guard let v = n.bool else { throw fail("training.optimizer.nesterov", "must be true or false") }
            self.optimizer.nesterov = v
        }
        if let section = training["early_stopping"] {
            let p = "training.early_stopping"
            let e = try mapping(section, p, Self.earlyStoppingKeys)
            guard let patience = try int(e["patience"], "\(p).patience", 1...limits.maxEpochs) else {
                throw fail("\(p).patience", "is missing: give the epochs without improvement after which to stop")
            }
            earlyStopping = EarlyStopping(
                patience: patience, minDelta: try double(e["min_delta"], "\(p).min_delta", 0...1) ?? 0)
        }
        timeBudgetSeconds = try double(
            training["time_budget_seconds"], "training.time_budget_seconds", 1...Self.maxTimeBudgetSeconds)
        if let section = training["dp_sgd"] {
            let p = "training.dp_sgd"
            let dp = try mapping(section, p, Self.dpSGDKeys)
            func required<T>(_ value: T?, _ key: String) throws(TrainingError) -> T {
                guard let value else {
                    throw fail(
                        "\(p).\(key)",
                        "is missing: DP-SGD needs noise_multiplier, max_grad_norm and "
                            + "patients_per_step")
                }
                return value
            }
            // Ranges here are the parser's; `validate` adds the positivity and the limits with their names.
            let sigma = try required(
                double(dp["noise_multiplier"], "\(p).noise_multiplier", 0...DPSGD.maxValue),
                "noise_multiplier")
            let clip = try required(
                double(dp["max_grad_norm"], "\(p).max_grad_norm", 0...DPSGD.maxValue),
                "max_grad_norm")
            let lot = try required(
                int(dp["patients_per_step"], "\(p).patients_per_step", 1...limits.maxBatchSize),
                "patients_per_step")
            var config = DPSGD(noiseMultiplier: sigma, maxGradNorm: clip, patientsPerStep: lot)
            if let s = try string(dp["sampling"], "\(p).sampling", ["poisson", "fixed"]),
                let sampling = DPSGD.Sampling(rawValue: s)
            {
                config.sampling = sampling
            }
            config.slicesPerPatient =
                try int(
                    dp["slices_per_patient"], "\(p).slices_per_patient",
                    1...limits.maxBatchSize) ?? config.slicesPerPatient
            dpSGD = config
        }
        try validate(limits: limits)
    }

    /// Checks the values against `limits` (for a configuration built in code or parsed with other limits).
    /// - Throws: `.configuration` naming the key and the limit.
    public func validate(limits: PipelineLimits = .default) throws(TrainingError) {
        func fail(_ path: String, _ message: String) -> TrainingError {
            TrainingError(.configuration, "`\(path)` \(message)")
        }
        guard Self.architectures.contains(model.architecture) else {
            throw fail("model.architecture", "must be " + Self.architectures.joined(separator: ", "))
        }
        if let e = earlyStopping {
            guard (1...limits.maxEpochs).contains(e.patience) else {
                throw fail(
                    "training.early_stopping.patience",
                    "is \(e.patience): must be in 1...\(limits.maxEpochs) (limit max_epochs)")
            }
            guard e.minDelta.isFinite, (0...1).contains(e.minDelta) else {
                throw fail("training.early_stopping.min_delta", "is \(e.minDelta): must be in 0...1")
            }
        }
        if let t = timeBudgetSeconds, !(t.isFinite && (1...Self.maxTimeBudgetSeconds).contains(t)) {
            throw fail(
                "training.time_budget_seconds", "is \(t): must be in 1...\(Int(Self.maxTimeBudgetSeconds)) (one week)")
        }
        if model.isClassifier {
            guard let c = classification else {
                throw fail(
                    "model.architecture", "\(model.architecture) classifies studies: add a `classification:` section")
            }
            guard model.widths.count == model.blocks.count, (1...limits.maxLevels).contains(model.widths.count) else {
                throw fail(
                    "model.blocks",
                    "has \(model.blocks.count) entries for \(model.widths.count) widths: give one per stage")
            }
            guard loss == "ce" else { throw fail("training.loss", "is \(loss): classifiers train with ce") }
            guard (2...limits.maxClasses).contains(c.classes.count) else {
                throw fail("classification.classes", "must name 2...\(limits.maxClasses) classes (limit max_classes)")
            }
            guard (c.input == .volume) == (model.dimensions == 3) else {
                throw fail(
                    "classification.input",
                    "is \(c.input.rawValue): resnet3d reads the whole volume (`input: volume`), resnet2d a projection "
                        + "or slice (mip, minip, mean, middle_slice)")
            }
            guard dpSGD == nil else { throw fail("training.dp_sgd", "is not supported for classifiers yet") }
            guard model.inputChannels == nil, model.niftiImages == nil else {
                throw fail(
                    model.inputChannels != nil ? "model.input_channels" : "model.nifti_images",
                    "is for segmentation models; a classifier reads one DICOM series per study "
                        + "(`classification.series`)")
            }
            return
        } else if classification != nil {
            throw fail("classification", "needs a classifier `model.architecture` (resnet2d or resnet3d)")
        }
        if let channels = model.inputChannels {
            guard (1...limits.maxInputChannels).contains(channels.channels.count) else {
                throw fail(
                    "model.input_channels",
                    "has \(channels.channels.count) entries: give 1...\(limits.maxInputChannels) "
                        + "(limit max_input_channels)")
            }
            guard dpSGD == nil || channels.channels.count == 1 else {
                throw fail("training.dp_sgd", "is not supported with several `model.input_channels` yet")
            }
            guard model.niftiImages == nil else {
                throw fail(
                    "model.input_channels",
                    "selects DICOM series; a NIfTI site (`model.nifti_images`) has one image per case")
            }
        }
        let levels = model.encoderChannels.count
        guard (1...limits.maxLevels).contains(levels) else {
            throw fail(
                "model.encoder_channels",
                "has \(levels) levels; give 1...\(limits.maxLevels) "
                    + "(limit max_levels)")
        }
        for (i, c) in model.encoderChannels.enumerated() where !(1...limits.maxChannels).contains(c) {
            throw fail(
                "model.encoder_channels[\(i)]",
                "is \(c): must be in 1...\(limits.maxChannels) "
                    + "(limit max_channels)")
        }
        guard (1...limits.maxChannels).contains(model.bottleneckChannels) else {
            throw fail(
                "model.bottleneck_channels",
                "is \(model.bottleneckChannels): must be in 1..."
                    + "\(limits.maxChannels) (limit max_channels)")
        }
        guard (1...limits.maxSegments).contains(model.segments.count) else {
            throw fail(
                "model.segments",
                "has \(model.segments.count) entries: give 1...\(limits.maxSegments) "
                    + "(limit max_segments)")
        }
        let ranges: [(String, Int, ClosedRange<Int>, String)] = [
            ("training.epochs", epochs, 1...limits.maxEpochs, "max_epochs"),
            ("training.batch_size", batchSize, 1...limits.maxBatchSize, "max_batch_size"),
            ("training.slices_per_epoch", slicesPerEpoch, 1...limits.maxSamplesPerEpoch, "max_samples_per_epoch"),
            ("training.patches_per_epoch", patchesPerEpoch, 1...limits.maxSamplesPerEpoch, "max_samples_per_epoch"),
        ]
        for (key, value, range, limit) in ranges where !range.contains(value) {
            throw fail(key, "is \(value): must be in \(range.lowerBound)...\(range.upperBound) (limit \(limit))")
        }
        let rate = Double(optimizer.learningRate)
        guard rate.isFinite, rate >= limits.minLearningRate, rate <= limits.maxLearningRate else {
            throw fail(
                "training.optimizer.learning_rate",
                "is \(rate): must be in \(limits.minLearningRate)..."
                    + "\(limits.maxLearningRate) (limits min_learning_rate, max_learning_rate)")
        }
        guard model.windowOverlap.isFinite, (0...0.95).contains(model.windowOverlap) else {
            throw fail("model.window_overlap", "is \(model.windowOverlap): must be in 0...0.95")
        }
        try dpSGD?.validate(limits: limits)
        guard model.dimensions == 3 else { return }
        guard model.patchSize.count == 3 else { throw fail("model.patch_size", "must be [x, y, z]") }
        for (i, n) in model.patchSize.enumerated() where !(1...limits.preprocessing.maxAxisVoxels).contains(n) {
            throw fail(
                "model.patch_size[\(i)]",
                "is \(n): must be in 1...\(limits.preprocessing.maxAxisVoxels) "
                    + "(limit max_axis_voxels)")
        }
        guard let voxels = CheckedConversion.product(model.patchSize), voxels <= limits.maxPatchVoxels else {
            throw fail(
                "model.patch_size",
                "\(model.patchSize) is more than \(limits.maxPatchVoxels) voxels "
                    + "(limit max_patch_voxels)")
        }
        let factor = 1 << levels
        for (i, n) in model.patchSize.enumerated() where n % factor != 0 {
            throw fail(
                "model.patch_size[\(i)]",
                "is \(n): \(model.patchSize) must be multiples of \(factor) "
                    + "(2^levels of `model.encoder_channels`)")
        }
    }

    public static func load(path: String) throws(TrainingError) -> TrainingConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError(.io, "cannot read the pipeline \(path)")
        }
        return try TrainingConfiguration(yaml: String(decoding: data, as: UTF8.self))
    }
}

extension TrainingConfiguration {
    /// Parses `model.segment_names`: a mapping of segment number (1...255) to a list of names, the first the
    /// segment's name and the others its synonyms (`1: [Liver, liver_1, LIVER_GTV]`); matched to ROI names
    /// ignoring case (`ROILabelMapping`).
    static func segmentNames(_ node: Node, limits: PipelineLimits) throws(TrainingError) -> ROILabelMapping {
        let path = "model.segment_names"
        guard let m = node.mapping else {
            throw TrainingError(
                .configuration, "`\(path)` must be a mapping of segment number to a list of ROI names")
        }
        guard m.count <= limits.maxSegments else {
            throw TrainingError(
                .configuration, "`\(path)` has \(m.count) entries, above max_segments (\(limits.maxSegments))")
        }
        var entries: [ROILabelMapping.Entry] = []
        for (key, value) in m {
            let shown = String((key.string ?? "").prefix(64))
            guard key.scalar != nil, let label = key.int, (1...255).contains(label) else {
                throw TrainingError(.configuration, "`\(path)` key `\(shown)` must be a segment number in 1...255")
            }
            guard let names = value.sequence, (1...limits.maxSegmentNames).contains(names.count) else {
                throw TrainingError(
                    .configuration,
                    "`\(path).\(label)` must be a list of 1...\(limits.maxSegmentNames) names "
                        + "(limit max_segment_names)")
            }
            var texts: [String] = []
            for (i, n) in names.enumerated() {
                guard let text = n.scalar?.string, (1...64).contains(text.count) else {
                    throw TrainingError(
                        .configuration, "`\(path).\(label)[\(i)]` must be a name of 1...64 characters")
                }
                texts.append(text)
            }
            entries.append(.init(label: label, name: texts[0], synonyms: Array(texts.dropFirst())))
        }
        do { return try ROILabelMapping(entries: entries) } catch {
            throw TrainingError(.configuration, "`\(path)`: \(error.message)")
        }
    }
}
