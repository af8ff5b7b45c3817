import Foundation
import NeuralNetwork
import Tensors
import TestSupport
import Testing
import Training
import Volumes

@Suite("Pipeline limits", .computeBound)
struct PipelineLimitsTests {
    static let refused: [(String, String)] = [
        ("model:\n  encoder_channels: [1000000]", "model.encoder_channels[0]"),
        ("model:\n  encoder_channels: [8, 0, 32]", "model.encoder_channels[1]"),
        ("model:\n  encoder_channels: [8, -16]", "model.encoder_channels[1]"),
        ("model:\n  encoder_channels: [8, 16, 32, 64, 128, 256]", "model.encoder_channels"),
        ("model:\n  encoder_channels: [8, .nan]", "model.encoder_channels[1]"),
        ("model:\n  encoder_channels: [8, 1.5]", "model.encoder_channels[1]"),
        ("model:\n  encoder_channels: 8", "model.encoder_channels"),
        ("model:\n  encoder_channels: []", "model.encoder_channels"),
        ("model:\n  bottleneck_channels: 1000000000", "model.bottleneck_channels"),
        ("model:\n  bottleneck_channels: [1]", "model.bottleneck_channels"),
        ("model:\n  architecture: [unet2d]", "model.architecture"),
        ("model:\n  architecture: vnet", "model.architecture"),
        ("model:\n  segments: [1, 1]", "model.segments"),
        ("model:\n  segments: [300]", "model.segments[0]"),
        ("model:\n  segments: [" + (1...65).map(String.init).joined(separator: ", ") + "]", "model.segments"),
        ("model:\n  seed: -3", "model.seed"),
        ("model:\n  architecture: unet3d\n  patch_size: [100000, 64, 32]", "model.patch_size[0]"),
        ("model:\n  architecture: unet3d\n  patch_size: [1024, 1024, 1024]", "model.patch_size"),
        ("model:\n  architecture: unet3d\n  patch_size: [60, 64, 32]", "model.patch_size[0]"),
        ("model:\n  patch_size: [64, 64]", "model.patch_size"),
        ("model:\n  window_overlap: .nan", "model.window_overlap"),
        ("model:\n  window_overlap: 1", "model.window_overlap"),
        ("model:\n  encoder_chanels: [8]", "model.encoder_chanels"),
        ("training:\n  epochs: 0", "training.epochs"),
        ("training:\n  epochs: 1000000000", "training.epochs"),
        ("training:\n  epochs: many", "training.epochs"),
        ("training:\n  epochs: 2.5", "training.epochs"),
        ("training:\n  batch_size: 1000000000", "training.batch_size"),
        ("training:\n  batch_size: -8", "training.batch_size"),
        ("training:\n  slices_per_epoch: 1000000000", "training.slices_per_epoch"),
        ("training:\n  patches_per_epoch: 0", "training.patches_per_epoch"),
        ("training:\n  foreground_fraction: .nan", "training.foreground_fraction"),
        ("training:\n  validation_fraction: 1", "training.validation_fraction"),
        ("training:\n  gradient_clip_norm: .inf", "training.gradient_clip_norm"),
        ("training:\n  loss: [dice]", "training.loss"),
        ("training:\n  optimizer:\n    learning_rate: 0", "training.optimizer.learning_rate"),
        ("training:\n  optimizer:\n    learning_rate: -0.1", "training.optimizer.learning_rate"),
        ("training:\n  optimizer:\n    learning_rate: .nan", "training.optimizer.learning_rate"),
        ("training:\n  optimizer:\n    learning_rate: .inf", "training.optimizer.learning_rate"),
        ("training:\n  optimizer:\n    learning_rate: 1e9", "training.optimizer.learning_rate"),
        ("training:\n  optimizer:\n    momentum: 2", "training.optimizer.momentum"),
        ("training:\n  optimizer:\n    nesterov: perhaps", "training.optimizer.nesterov"),
        ("training:\n  optimizer: adam", "training.optimizer"),
        ("training: [1, 2]", "training"),
    ]

    @Test("A crafted model or training section is refused with the key named", arguments: refused)
    func crafted(yaml: String, key: String) {
        do {
            _ = try TrainingConfiguration(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains(key), "\(error)")
        }
    }

    @Test(
        "The parameter count from the configuration equals the built model's",
        arguments: [
            (2, [8, 16, 32, 64], 128, 2, DoubleConv.Normalization.none),
            (3, [8, 16, 32], 64, 3, .none),
            (2, [4, 8], 16, 2, .instance),
            (3, [3], 5, 4, .instance),
        ])
    func parameterCount(
        dimensions: Int, channels: [Int], bottleneck: Int, classes: Int,
        normalization: DoubleConv.Normalization
    ) {
        var g = Tensors.SeededGenerator(seed: 1)
        let model = UNet(
            dimensions: dimensions, encoderChannels: channels, bottleneckChannels: bottleneck,
            classes: classes, normalization: normalization, generator: &g)
        let built = model.parameters.map { $0.tensor.shape.reduce(1, *) }.reduce(0, +)
        #expect(
            UNet.parameterCount(
                dimensions: dimensions, encoderChannels: channels, bottleneckChannels: bottleneck,
                classes: classes, normalization: normalization) == built)
    }

    @Test("A count that overflows is nil, never a trap")
    func overflow() {
        #expect(
            UNet.parameterCount(
                dimensions: 3, encoderChannels: [Int.max / 2], bottleneckChannels: 8,
                classes: 2) == nil)
        #expect(UNet.parameterCount(dimensions: 4, encoderChannels: [8], bottleneckChannels: 8, classes: 2) == nil)
        #expect(
            UNet.activationValuesPerSample(
                dimensions: 3, spatial: Int.max / 4, encoderChannels: [64],
                bottleneckChannels: 64, classes: 2) == nil)
    }

    @Test("A huge but legal-looking model (every key within its own limit) is refused by its parameter count")
    func hugeModel() throws {
        let yaml =
            "model:\n  architecture: unet3d\n  encoder_channels: [2048, 2048, 2048, 2048]\n"
            + "  bottleneck_channels: 2048\n  patch_size: [32, 32, 32]"
        let training = try TrainingConfiguration(yaml: yaml)
        let count = try #require(
            UNet.parameterCount(
                dimensions: 3, encoderChannels: training.model.encoderChannels,
                bottleneckChannels: 2048, classes: 2))
        #expect(count > PipelineLimits.default.maxParameters)
        do {
            try PipelineLimits.default.validate(training, preprocessing: PreprocessingConfiguration())
            Issue.record("accepted a model of \(count) parameters")
        } catch {
            #expect(
                error.message.contains("model.encoder_channels") && error.message.contains("max_parameters")
                    && error.message.contains("\(count)"), "\(error)")
        }
        var raised = PipelineLimits()
        raised.maxParameters = count
        raised.maxActivationBytes = Int.max
        try raised.validate(training, preprocessing: PreprocessingConfiguration())
    }

    @Test("Batch × patch beyond the activation budget is refused before anything is built")
    func activations() throws {
        let yaml =
            "model:\n  architecture: unet3d\n  encoder_channels: [32, 64, 128]\n  bottleneck_channels: 256\n"
            + "  patch_size: [256, 256, 256]\ntraining:\n  batch_size: 64"
        let training = try TrainingConfiguration(yaml: yaml)
        do {
            try PipelineLimits.default.validate(training, preprocessing: PreprocessingConfiguration())
            Issue.record("accepted")
        } catch {
            #expect(
                error.message.contains("training.batch_size") && error.message.contains("max_activation_bytes"),
                "\(error)")
        }
        // A 2-D slice size from the site's data is checked the same way.
        let slices = try TrainingConfiguration(yaml: "training:\n  batch_size: 1024")
        #expect(throws: TrainingError.self) {
            try PipelineLimits.default.validate(
                slices, preprocessing: PreprocessingConfiguration(),
                spatial: 2048 * 2048)
        }
    }

    @Test("An oversized pipeline text is refused before it is parsed")
    func size() {
        let yaml = "model:\n  segments: [1]\n# " + String(repeating: "x", count: 2_000_000)
        do {
            _ = try TrainingConfiguration(yaml: yaml)
            Issue.record("accepted")
        } catch {
            #expect(error.message.contains("max_pipeline_bytes"), "\(error)")
        }
    }

    @Test("limits.yaml raises limits; unknown keys and bad values are named")
    func limitsFile() throws {
        let limits = try PipelineLimits(
            yaml: """
                pipeline:
                  max_parameters: 200000000
                  max_rounds: 50
                  preprocessing:
                    max_voxels_per_volume: 1000
                query:
                  max_bins: 5
                """)
        #expect(limits.maxParameters == 200_000_000 && limits.maxRounds == 50)
        #expect(limits.preprocessing.maxVoxelsPerVolume == 1000 && limits.maxEpochs == PipelineLimits().maxEpochs)
        for (yaml, key) in [
            ("pipeline:\n  max_paramters: 1", "pipeline.max_paramters"),
            ("pipeline:\n  max_rounds: 0", "pipeline.max_rounds"),
            ("pipeline:\n  preprocessing:\n    min_spacing_mm: .nan", "min_spacing_mm"),
        ] {
            do {
                _ = try PipelineLimits(yaml: yaml)
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.message.contains(key), "\(error)")
            }
        }
    }

    @Test("Every shipped training pipeline passes the default limits")
    func shipped() throws {
        let folder = repositoryRoot + "/pipelines"
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() where name.hasSuffix(".yaml") {
            let text = try String(contentsOfFile: folder + "/" + name, encoding: .utf8)
            guard text.contains("\nmodel:") else { continue }
            let training = try TrainingConfiguration(yaml: text)
            try PipelineLimits.default.validate(training, preprocessing: PreprocessingConfiguration(yaml: text))
        }
    }
}

@Suite("Model sizes from the configuration", .computeBound)
struct ModelSizeTests {
    @Test(
        "BasicUNet: the count from the configuration equals the built model's",
        arguments: [
            (3, [4, 4, 8, 16, 32, 4]), (2, BasicUNet.defaultFeatures), (2, [3, 5, 7, 9, 11, 13]),
        ])
    func basicUNet(dimensions: Int, features: [Int]) {
        var g = Tensors.SeededGenerator(seed: 2)
        let model = BasicUNet(
            dimensions: dimensions, inputChannels: 2, outputChannels: 3, features: features,
            generator: &g)
        let built = model.parameters.map { $0.tensor.shape.reduce(1, *) }.reduce(0, +)
        #expect(
            BasicUNet.parameterCount(
                dimensions: dimensions, inputChannels: 2, outputChannels: 3,
                features: features) == built)
        #expect(BasicUNet.parameterCount(features: [Int.max / 4, 1, 1, 1, 1, 1]) == nil)
    }

    @Test(
        "ResNet: the count from the configuration equals the built model's",
        arguments: [
            ([16, 32, 64], [1, 1, 1], FeatureNorm.Kind.batch), ([8, 8, 16], [2, 1, 3], .instance), ([4], [2], .batch),
        ])
    func resNet(widths: [Int], blocks: [Int], norm: FeatureNorm.Kind) {
        var g = Tensors.SeededGenerator(seed: 3)
        let model = ResNet(inputChannels: 1, classes: 4, widths: widths, blocks: blocks, norm: norm, generator: &g)
        let built = model.parameters.map { $0.tensor.shape.reduce(1, *) }.reduce(0, +)
        #expect(ResNet.parameterCount(inputChannels: 1, classes: 4, widths: widths, blocks: blocks) == built)
        #expect(ResNet.parameterCount(widths: [Int.max / 2], blocks: [1]) == nil)
    }
}
