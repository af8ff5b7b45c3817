import Foundation
import NeuralNetwork
import Volumes
import Yams

/// The safetensors `__metadata__` that makes a model file self-describing: what `tessera predict` needs to rebuild
/// the model and prepare its input. Every model file Tessera writes carries it (`tessera train`'s checkpoints,
/// `tessera simulate`'s, and the server's round, global and local models, which get it from the job factory).
///
/// Keys (all values are strings, lists comma-separated):
/// - `architecture`: unet2d | unet3d | resnet2d | resnet3d.
/// - U-Nets: `encoder_channels`, `bottleneck_channels`, `segments` (DICOM SEG segment numbers of classes 1, 2, …),
///   `norm` = `instance` when the model has instance norms (absent: none);
///   `input_channels` = the channel names of `model.input_channels` in tensor order (absent: one channel; the
///   channels' series criteria are the pipeline's, so predicting with several channels needs `--pipeline`);
///   unet3d also `patch_size` ([x, y, z] voxels), `window_overlap` ([0, 1)) and `window_blending`.
/// - ResNets: `widths`, `blocks`, `norm`, `classes` (class names), `input` (how a volume becomes the input).
/// - `preprocessing`: the pipeline's `preprocessing:` section as YAML (augmentation left out: it is training only),
///   readable by `PreprocessingConfiguration(yaml:)`.
public enum CheckpointMetadata {
    /// Writes a model's `state_dict` (safetensors) with what `describe` says of `configuration` and `preprocessing`,
    /// plus `metadata` (never overriding a described key), making `path`'s folder when missing: the checkpoint every
    /// trainer saves and `tessera predict` reads.
    /// - Throws: `.io` when the file cannot be written; what `describe` throws.
    public static func write(
        _ state: NamedTensors, configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration,
        metadata: [String: String], to path: String
    ) throws(TrainingError) {
        let meta = try describe(configuration, preprocessing: preprocessing).merging(metadata) { described, _ in
            described
        }
        do {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            try SafeTensors.write(state, metadata: meta, to: path)
        } catch {
            throw TrainingError(.io, "cannot write the checkpoint \(path)", cause: "\(error)")
        }
    }

    /// Key of the preprocessing section.
    public static let preprocessingKey = "preprocessing"

    /// The metadata of a model trained with `configuration` on data prepared by `preprocessing`.
    /// - Throws: `.configuration` when the preprocessing section cannot be written as YAML.
    public static func describe(
        _ configuration: TrainingConfiguration, preprocessing: PreprocessingConfiguration
    ) throws(TrainingError) -> [String: String] {
        let m = configuration.model
        func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ",") }
        var meta = ["architecture": m.architecture]
        if m.isClassifier {
            let k = configuration.classification ?? ClassificationConfiguration()
            meta["widths"] = list(m.widths)
            meta["blocks"] = list(m.blocks)
            meta["norm"] = m.norm.rawValue
            meta["classes"] = k.classes.joined(separator: ",")
            meta["input"] = k.input.rawValue
        } else {
            if m.dimensions == 3 {
                meta["patch_size"] = list(m.patchSize)
                meta["window_overlap"] = String(m.windowOverlap)
                meta["window_blending"] = m.windowBlending.rawValue
            }
            meta["encoder_channels"] = list(m.encoderChannels)
            meta["bottleneck_channels"] = String(m.bottleneckChannels)
            meta["segments"] = list(m.segments)
            if m.normalization == .instance { meta["norm"] = "instance" }
            if let channels = m.inputChannels { meta["input_channels"] = channels.names.joined(separator: ",") }
        }
        do {
            meta[preprocessingKey] = try YAMLEncoder().encode(
                PreprocessingConfiguration(preprocessing: preprocessing.preprocessing, augmentation: nil))
        } catch {
            throw TrainingError(
                .configuration, "the preprocessing section cannot be written into the model's metadata",
                cause: "\(error)")
        }
        return meta
    }

    /// The preprocessing a model file names in its metadata; nil when it names none (a file from an older Tessera).
    /// - Throws: `.model` when the section is present but not a valid preprocessing section.
    public static func preprocessing(_ metadata: [String: String]) throws(TrainingError) -> PreprocessingConfiguration?
    {
        guard let text = metadata[preprocessingKey] else { return nil }
        do { return try PreprocessingConfiguration(yaml: text) } catch {
            throw TrainingError(
                .model, "the model's `preprocessing` metadata is not a valid preprocessing section: \(error.message)",
                cause: error.description)
        }
    }
}
