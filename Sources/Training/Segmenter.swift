import Foundation
import NeuralNetwork
import Tensors
import Volumes

/// Runs a trained U-Net over a preprocessed volume and returns the argmax labels: a 2-D model slice by slice, a 3-D
/// model by sliding windows (`window`).
public struct Segmenter: Sendable {
    public var model: UNet
    /// Slices per forward pass (2-D models).
    public var batchSize = 8
    /// How a 3-D model is applied (nil: one window over the whole volume, which must then fit the model).
    public var window: SlidingWindowInference?

    public init(model: UNet, window: SlidingWindowInference? = nil) {
        self.model = model
        self.window = window
    }

    /// Loads a checkpoint written by `Trainer.save` (the architecture is read from its metadata).
    /// - Throws: `.model` when the file is not a Tessera U-Net checkpoint or its tensors do not fit.
    public init(checkpoint path: String) throws(TrainingError) {
        let contents: SafeTensors.Contents
        do { contents = try SafeTensors.read(contentsOf: path) } catch {
            throw TrainingError(.model, "cannot read the model \(path): \(error)")
        }
        let m = contents.metadata
        func ints(_ key: String) -> [Int]? { m[key].map { $0.split(separator: ",").compactMap { Int($0) } } }
        let architecture = m["architecture"] ?? ""
        guard !architecture.hasPrefix("resnet") else {
            throw TrainingError(
                .model,
                "\(path) is a \(architecture) classifier, not a segmentation model: classify with its pipeline "
                    + "(`tessera predict --pipeline`, whose `classification:` section selects the series)")
        }
        guard ["unet2d", "unet3d"].contains(architecture), let encoder = ints("encoder_channels"), !encoder.isEmpty,
            let bottleneck = ints("bottleneck_channels")?.first, let segments = ints("segments"), !segments.isEmpty
        else {
            throw TrainingError(
                .model,
                "\(path) is not a Tessera unet2d/unet3d checkpoint (its metadata lacks architecture, "
                    + "encoder_channels, bottleneck_channels or segments); train one with `tessera train`")
        }
        var g = Tensors.SeededGenerator(seed: 0)
        if architecture == "unet3d" {
            // Patch [x, y, z] and the window settings travel in the metadata (Trainer.save).
            guard let patch = ints("patch_size"), patch.count == 3 else {
                throw TrainingError(.model, "\(path) is a unet3d checkpoint without `patch_size` metadata")
            }
            let blending = m["window_blending"].flatMap(SlidingWindowInference.Blending.init(rawValue:)) ?? .gaussian
            window = try SlidingWindowInference(
                windowSize: [patch[2], patch[1], patch[0]],
                overlap: m["window_overlap"].flatMap { Double($0) } ?? 0.25,
                blending: blending)
        }
        // One input channel unless the metadata names more (`model.input_channels`).
        let names = m["input_channels"].map { $0.split(separator: ",").map(String.init) } ?? []
        guard names.count <= PipelineLimits().maxInputChannels else {
            throw TrainingError(.model, "\(path) names \(names.count) input channels, more than max_input_channels")
        }
        var model = UNet(
            dimensions: architecture == "unet3d" ? 3 : 2, inputChannels: max(1, names.count),
            encoderChannels: encoder, bottleneckChannels: bottleneck,
            classes: segments.count + 1, normalization: m["norm"] == "instance" ? .instance : .none, generator: &g)
        do { try model.load(contents.tensors) } catch {
            throw TrainingError(.model, "the tensors of \(path) do not fit its declared architecture: \(error)")
        }
        self.model = model
        self.inputChannelNames = names
        self.segments = segments
        self.preprocessing = try CheckpointMetadata.preprocessing(m)
    }

    /// The names of the model's input channels (`model.input_channels`), from the checkpoint; empty for a
    /// one-channel model or one built from a model.
    public var inputChannelNames: [String] = []
    /// SEG segment numbers of classes 1, 2, … (from the checkpoint; empty when built from a model).
    public var segments: [Int] = []
    /// The preprocessing the checkpoint's metadata names (`CheckpointMetadata`); nil when built from a model or
    /// read from a file that names none.
    public var preprocessing: PreprocessingConfiguration?

    /// Labels (0 background, class index otherwise) on the volume's own grid.
    public func predict(_ image: Volume<Float>) throws(TrainingError) -> Volume<UInt8> {
        try predict([image])
    }

    /// Labels of stacked input channels (channel order as trained; all on the first's grid), on that grid.
    /// - Throws: `.model` when the count differs from the model's input channels or the model cannot take them.
    public func predict(_ inputs: [Volume<Float>]) throws(TrainingError) -> Volume<UInt8> {
        guard let image = inputs.first, inputs.count == model.inputChannels,
            inputs.allSatisfy({ $0.geometry.dimensions == image.geometry.dimensions })
        else {
            throw TrainingError(
                .model,
                "the model takes \(model.inputChannels) input channel(s) on one grid; \(inputs.count) given")
        }
        if model.dimensions == 3 {
            let d = image.geometry.dimensions
            let window: SlidingWindowInference
            if let configured = self.window {
                window = configured
            } else {
                window = try SlidingWindowInference(windowSize: [d.z, d.y, d.x], overlap: 0)
            }
            return try window.labels(inputs) { try model.forward($0).output }
        }
        let g = image.geometry
        let h = g.dimensions.y
        let w = g.dimensions.x
        let plane = h * w
        let depth = g.dimensions.z
        var out = Volume<UInt8>(geometry: g, repeating: 0)
        var k = 0
        while k < depth {
            let n = min(batchSize, depth - k)
            let channels = inputs.count
            var input = [Float](repeating: 0, count: n * channels * plane)
            for b in 0..<n {
                for (c, volume) in inputs.enumerated() {
                    let start = (b * channels + c) * plane
                    input.replaceSubrange(start..<(start + plane), with: volume.slice(k + b))
                }
            }
            let logits: Tensor
            do { logits = try model.forward(Tensor(shape: [n, channels, h, w], storage: input)).output } catch {
                throw TrainingError(.model, "the model cannot take \(h)×\(w) slices: \(error)")
            }
            let classes = logits.shape[1]
            logits.storage.withUnsafeBufferPointer { l in
                for b in 0..<n {
                    for p in 0..<plane {
                        var best = 0
                        var bestValue = l[(b * classes) * plane + p]
                        for c in 1..<classes {
                            let v = l[(b * classes + c) * plane + p]
                            if v > bestValue {
                                bestValue = v
                                best = c
                            }
                        }
                        out.voxels[(k + b) * plane + p] = UInt8(best)
                    }
                }
            }
            k += n
        }
        return out
    }
}
