import Foundation
import Yams

/// The `model:` and `training:` sections of a pipeline YAML (`pipelines/segmentation-unet2d.yaml`).
public struct TrainingConfiguration: Sendable, Equatable {
    public struct Model: Sendable, Equatable {
        /// unet2d: a 2-D U-Net (the reference module's layout) trained on axial slices; unet3d: the same layout in
        /// 3-D, trained on class-balanced patches and applied by sliding windows.
        public var architecture = "unet2d"
        public var encoderChannels = [16, 32, 64, 128]
        public var bottleneckChannels = 256
        /// DICOM SEG segment numbers to learn; class i (1-based) is the i-th of them, everything else background.
        public var segments = [1]
        /// Seed of the weight initialisation.
        public var seed: UInt64 = 7
        public var classes: Int { segments.count + 1 }
        /// unet3d: training patch and inference window, [x, y, z] voxels (each a multiple of 2^levels).
        public var patchSize = [64, 64, 32]
        /// unet3d: overlap of neighbouring inference windows, in [0, 1).
        public var windowOverlap = 0.25
        /// unet3d: how overlapping windows are blended (gaussian | constant).
        public var windowBlending = SlidingWindowInference.Blending.gaussian
        /// 2 for unet2d, 3 for unet3d.
        public var dimensions: Int { architecture == "unet3d" ? 3 : 2 }
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

    public var model = Model()
    public var optimizer = Optimizer()
    public var epochs = 20
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
    /// Gradient clipping by global norm (0: off).
    public var gradientClipNorm: Float = 5
    /// Seed for the split, the slice sampling and the augmentation order.
    public var seed: UInt64 = 20261121

    public init() {}

    static let modelKeys: Set<String> = ["architecture", "encoder_channels", "bottleneck_channels", "segments", "seed",
                                         "patch_size", "window_overlap", "window_blending"]
    static let trainingKeys: Set<String> = ["epochs", "batch_size", "slices_per_epoch", "patches_per_epoch",
                                            "foreground_fraction",
                                            "validation_fraction", "loss", "gradient_clip_norm", "seed", "optimizer"]
    static let optimizerKeys: Set<String> = ["name", "learning_rate", "momentum", "nesterov", "weight_decay"]

    /// Parses the `model:` and `training:` sections (both optional; defaults above). Unknown keys are errors.
    public init(yaml: String) throws(TrainingError) {
        let root: Node.Mapping?
        do { root = try Yams.compose(yaml: yaml)?.mapping } catch {
            throw TrainingError(.configuration, "the pipeline is not valid YAML", cause: "\(error)")
        }
        guard let root else { throw TrainingError(.configuration, "the pipeline YAML must be a mapping") }
        func mapping(_ node: Node?, _ path: String, _ allowed: Set<String>) throws(TrainingError) -> [String: Node] {
            guard let node else { return [:] }
            guard let m = node.mapping else { throw TrainingError(.configuration, "`\(path)` must be a mapping") }
            var out: [String: Node] = [:]
            for (k, v) in m {
                let key = k.string ?? ""
                guard allowed.contains(key) else {
                    throw TrainingError(.configuration, "unknown key `\(path).\(key)`; known: \(allowed.sorted().joined(separator: ", "))")
                }
                out[key] = v
            }
            return out
        }
        func int(_ n: Node?, _ path: String, min: Int = 1) throws(TrainingError) -> Int? {
            guard let n else { return nil }
            guard let v = n.int, v >= min else { throw TrainingError(.configuration, "`\(path)` must be an integer ≥ \(min)") }
            return v
        }
        func double(_ n: Node?, _ path: String, _ range: ClosedRange<Double>) throws(TrainingError) -> Double? {
            guard let n else { return nil }
            guard let v = n.float, range.contains(v) else {
                throw TrainingError(.configuration, "`\(path)` must be a number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func ints(_ n: Node?, _ path: String) throws(TrainingError) -> [Int]? {
            guard let n else { return nil }
            guard let seq = n.sequence else { throw TrainingError(.configuration, "`\(path)` must be a list of integers") }
            var out: [Int] = []
            for item in seq {
                guard let v = item.int, v > 0 else { throw TrainingError(.configuration, "`\(path)` must hold positive integers") }
                out.append(v)
            }
            guard !out.isEmpty else { throw TrainingError(.configuration, "`\(path)` must not be empty") }
            return out
        }
        let model = try mapping(root["model"], "model", Self.modelKeys)
        let training = try mapping(root["training"], "training", Self.trainingKeys)
        let optimizer = try mapping(training["optimizer"], "training.optimizer", Self.optimizerKeys)
        if let a = model["architecture"]?.string {
            guard ["unet2d", "unet3d"].contains(a) else {
                throw TrainingError(.configuration, "`model.architecture` '\(a)': must be unet2d or unet3d")
            }
            self.model.architecture = a
        }
        self.model.encoderChannels = try ints(model["encoder_channels"], "model.encoder_channels") ?? self.model.encoderChannels
        self.model.bottleneckChannels = try int(model["bottleneck_channels"], "model.bottleneck_channels") ?? self.model.bottleneckChannels
        self.model.segments = try ints(model["segments"], "model.segments") ?? self.model.segments
        if let s = try int(model["seed"], "model.seed", min: 0) { self.model.seed = UInt64(s) }
        if let p = try ints(model["patch_size"], "model.patch_size") {
            guard p.count == 3 else { throw TrainingError(.configuration, "`model.patch_size` must be [x, y, z]") }
            self.model.patchSize = p
        }
        if let v = try double(model["window_overlap"], "model.window_overlap", 0...0.95) { self.model.windowOverlap = v }
        if let b = model["window_blending"]?.string {
            guard let blending = SlidingWindowInference.Blending(rawValue: b) else {
                throw TrainingError(.configuration, "`model.window_blending` must be gaussian or constant")
            }
            self.model.windowBlending = blending
        }
        epochs = try int(training["epochs"], "training.epochs") ?? epochs
        patchesPerEpoch = try int(training["patches_per_epoch"], "training.patches_per_epoch") ?? patchesPerEpoch
        batchSize = try int(training["batch_size"], "training.batch_size") ?? batchSize
        slicesPerEpoch = try int(training["slices_per_epoch"], "training.slices_per_epoch") ?? slicesPerEpoch
        foregroundFraction = try double(training["foreground_fraction"], "training.foreground_fraction", 0...1) ?? foregroundFraction
        validationFraction = try double(training["validation_fraction"], "training.validation_fraction", 0...0.9) ?? validationFraction
        if let l = training["loss"]?.string {
            guard ["dice_ce", "ce", "dice"].contains(l) else { throw TrainingError(.configuration, "`training.loss` must be dice_ce, ce or dice") }
            loss = l
        }
        if let c = try double(training["gradient_clip_norm"], "training.gradient_clip_norm", 0...1e6) { gradientClipNorm = Float(c) }
        if let s = try int(training["seed"], "training.seed", min: 0) { seed = UInt64(s) }
        if let n = optimizer["name"]?.string {
            guard ["sgd", "adam", "adamw"].contains(n) else { throw TrainingError(.configuration, "`training.optimizer.name` must be sgd, adam or adamw") }
            self.optimizer.name = n
        }
        if let v = try double(optimizer["learning_rate"], "training.optimizer.learning_rate", 1e-9...10) { self.optimizer.learningRate = Float(v) }
        if let v = try double(optimizer["momentum"], "training.optimizer.momentum", 0...0.999) { self.optimizer.momentum = Float(v) }
        if let v = try double(optimizer["weight_decay"], "training.optimizer.weight_decay", 0...1) { self.optimizer.weightDecay = Float(v) }
        if let v = optimizer["nesterov"]?.bool { self.optimizer.nesterov = v }
        guard self.model.encoderChannels.count <= 5 else {
            throw TrainingError(.configuration, "`model.encoder_channels` has \(self.model.encoderChannels.count) levels; at most 5")
        }
        let factor = 1 << self.model.encoderChannels.count
        if self.model.architecture == "unet3d", !self.model.patchSize.allSatisfy({ $0 % factor == 0 }) {
            throw TrainingError(.configuration, "`model.patch_size` \(self.model.patchSize) must be multiples of "
                                + "\(factor) (2^levels of `model.encoder_channels`)")
        }
    }

    public static func load(path: String) throws(TrainingError) -> TrainingConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError(.io, "cannot read the pipeline \(path)")
        }
        return try TrainingConfiguration(yaml: String(decoding: data, as: UTF8.self))
    }
}
