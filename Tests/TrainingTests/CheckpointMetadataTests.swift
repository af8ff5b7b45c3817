import Foundation
import NeuralNetwork
import TestSupport
import Testing
import Training
import Volumes

/// Every model file names its architecture and preprocessing (`CheckpointMetadata`), so `tessera predict` rebuilds
/// the model from the file alone.
@Suite("Checkpoint metadata", .computeBound)
struct CheckpointMetadataTests {
    static let pipeline = """
        preprocessing:
          orientation: RAS
          spacing: [2.8, 2.8, 4.0]
          interpolation: linear
          anti_alias: true
          crop_pad: {mode: foreground, threshold: -500, margin: [4, 4, 0], shape: [32, 32, 16], fill: -1024}
          window: {width: 400, level: 40}
          normalize: {method: percentile, percentiles: [1, 99], range: symmetric}
        augmentation:
          seed: 3
          flip: {probability: 0.5, axes: [x]}
        model:
          architecture: unet3d
          encoder_channels: [4, 8]
          bottleneck_channels: 8
          segments: [2, 5]
          patch_size: [32, 32, 16]
          window_overlap: 0.5
          window_blending: constant
        """

    @Test("A U-Net's file names its architecture, window and preprocessing (without augmentation), read back equal")
    func unetRoundTrip() throws {
        let preprocessing = try PreprocessingConfiguration(yaml: Self.pipeline)
        let configuration = try TrainingConfiguration(yaml: Self.pipeline)
        let meta = try CheckpointMetadata.describe(configuration, preprocessing: preprocessing)
        #expect(meta["architecture"] == "unet3d")
        #expect(meta["encoder_channels"] == "4,8" && meta["bottleneck_channels"] == "8" && meta["segments"] == "2,5")
        #expect(meta["patch_size"] == "32,32,16" && meta["window_overlap"] == "0.5")
        #expect(meta["window_blending"] == "constant")
        let read = try #require(try CheckpointMetadata.preprocessing(meta))
        #expect(read == PreprocessingConfiguration(preprocessing: preprocessing.preprocessing, augmentation: nil))
        #expect(read.preprocessing.window?.window.minimum == -160 && read.preprocessing.window?.window.maximum == 240)

        // Through a file: the trainer's checkpoint loads as a segmenter that carries the same preprocessing.
        let folder = NSTemporaryDirectory() + "tessera-meta-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = Trainer(configuration: configuration, preprocessing: preprocessing)
        try trainer.save(to: folder + "/model.safetensors", metadata: ["job": "j1", "architecture": "forged"])
        let segmenter = try Segmenter(checkpoint: folder + "/model.safetensors")
        #expect(segmenter.segments == [2, 5] && segmenter.model.dimensions == 3)
        #expect(segmenter.window?.overlap == 0.5 && segmenter.window?.windowSize == [16, 32, 32])
        #expect(segmenter.preprocessing == read)
        let stored = try SafeTensors.read(contentsOf: folder + "/model.safetensors").metadata
        // Extra keys are kept; the described ones cannot be overridden.
        #expect(stored["job"] == "j1" && stored["architecture"] == "unet3d")
    }

    /// Batch norm is refused for U-Nets.
    @Test("A U-Net with `model.norm: instance` names it in its file and loads back with its instance norms")
    func unetInstanceNorm() throws {
        let text = "model: {architecture: unet2d, encoder_channels: [2, 4], bottleneck_channels: 8, norm: instance}"
        let configuration = try TrainingConfiguration(yaml: text)
        #expect(configuration.model.normalization == .instance)
        #expect(try TrainingConfiguration(yaml: "model: {architecture: unet2d}").model.normalization == .none)
        let meta = try CheckpointMetadata.describe(configuration, preprocessing: PreprocessingConfiguration())
        #expect(meta["norm"] == "instance")
        // Parameters counted before building include the norms' γ and β: 5 blocks × 2 norms × 2 × channels.
        let trainer = Trainer(configuration: configuration, preprocessing: PreprocessingConfiguration())
        #expect(configuration.model.parameterCount == trainer.model.parameters.elementCount)
        let folder = NSTemporaryDirectory() + "tessera-meta-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try trainer.save(to: folder + "/model.safetensors", metadata: [:])
        let segmenter = try Segmenter(checkpoint: folder + "/model.safetensors")
        #expect(segmenter.model.normalizationVariables == trainer.model.normalizationVariables)
        #expect(segmenter.model.normalizationVariables.count == 20)
        #expect { try TrainingConfiguration(yaml: "model: {architecture: unet2d, norm: batch}") } throws: {
            "\($0)".contains("model.norm")
        }
    }

    @Test("A classifier's file names its widths, blocks, classes and input; a segmenter refuses it by name")
    func classifier() throws {
        let text = """
            preprocessing: {orientation: RAS, resize: [16, 16, 8], window: soft_tissue, scale: unit}
            model: {architecture: resnet2d, widths: [4, 8], blocks: [1, 2], norm: instance}
            classification: {classes: [benign, malignant], input: minip}
            """
        let preprocessing = try PreprocessingConfiguration(yaml: text)
        let configuration = try TrainingConfiguration(yaml: text)
        let meta = try CheckpointMetadata.describe(configuration, preprocessing: preprocessing)
        #expect(meta["architecture"] == "resnet2d" && meta["widths"] == "4,8" && meta["blocks"] == "1,2")
        #expect(meta["norm"] == "instance" && meta["classes"] == "benign,malignant" && meta["input"] == "minip")
        #expect(meta["encoder_channels"] == nil)
        #expect(try CheckpointMetadata.preprocessing(meta) == preprocessing)

        let path = NSTemporaryDirectory() + "tessera-meta-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ClassifierTrainer(configuration: configuration, preprocessing: preprocessing).save(to: path)
        #expect(try SafeTensors.read(contentsOf: path).metadata["input"] == "minip")
        let error = #expect(throws: TrainingError.self) { try Segmenter(checkpoint: path) }
        #expect(error?.message.contains("resnet2d classifier") == true)
    }

    @Test("A file whose preprocessing metadata is damaged is refused, one without it reads as nil")
    func damaged() throws {
        #expect(try CheckpointMetadata.preprocessing(["architecture": "unet2d"]) == nil)
        #expect(throws: TrainingError.self) {
            try CheckpointMetadata.preprocessing(["preprocessing": "preprocessing: {window: nowhere}"])
        }
    }
}
