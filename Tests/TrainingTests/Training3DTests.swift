import DICOMIO
import Foundation
import NeuralNetwork
import Randomness
import TestSupport
import Testing
import Training
import Volumes

/// A synthetic case of `x × y × z` voxels: a bright ball (label 1) on a dark noisy background.
func ballCase(_ id: String, size: SIMD3<Int>, centre: SIMD3<Double>, radius: Double, seed: UInt64) -> SegmentationCase {
    var g = SplitMix64(seed: seed)
    let geometry = VolumeGeometry(dimensions: size, origin: .zero, spacing: Vector3(1, 1, 1))
    var image = [Float]()
    var labels = [UInt8]()
    for z in 0..<size.z {
        for y in 0..<size.y {
            for x in 0..<size.x {
                let d = SIMD3(Double(x), Double(y), Double(z)) - centre
                let inside = (d * d).sum() <= radius * radius
                image.append((inside ? 0.8 : 0.2) + Float(g.uniform(-0.15, 0.15)))
                labels.append(inside ? 1 : 0)
            }
        }
    }
    return SegmentationCase(
        patientID: id, seriesInstanceUID: "1.2.3.\(seed)",
        sample: Sample(
            image: Volume(geometry: geometry, voxels: image),
            label: Volume(geometry: geometry, voxels: labels)))
}

@Suite("3-D training: patches, sliding-window validation, checkpoints", .computeBound)
struct Training3DTests {
    @Test("unet3d settings parse ([x, y, z] patch, overlap, blending, patches per epoch); bad ones are named")
    func configuration() throws {
        let c = try TrainingConfiguration(
            yaml: """
                model:
                  architecture: unet3d
                  encoder_channels: [4, 8]
                  bottleneck_channels: 8
                  patch_size: [32, 24, 16]
                  window_overlap: 0.5
                  window_blending: constant
                training:
                  patches_per_epoch: 12
                """)
        #expect(c.model.dimensions == 3 && c.model.patchExtents == [16, 24, 32] && c.patchesPerEpoch == 12)
        #expect(c.model.windowOverlap == 0.5 && c.model.windowBlending == .constant)
        #expect(try TrainingConfiguration(yaml: "training:\n  epochs: 2").model.dimensions == 2)
        for (yaml, words) in [
            (
                "model:\n  architecture: unet3d\n  encoder_channels: [4, 8]\n  patch_size: [30, 24, 16]",
                "multiples of 4"
            ),
            ("model:\n  patch_size: [32, 32]", "[x, y, z]"),
            ("model:\n  window_blending: cubic", "gaussian or constant"),
            ("model:\n  window_overlap: 1.5", "model.window_overlap"),
        ] {
            #expect { try TrainingConfiguration(yaml: yaml) } throws: { e in "\(e)".contains(words) }
        }
    }

    @Test("A 3-D U-Net trained on class-balanced patches segments the ball; the checkpoint reloads to the same labels")
    func shortRun() throws {
        var config = TrainingConfiguration()
        config.model.architecture = "unet3d"
        config.model.encoderChannels = [4, 8]
        config.model.bottleneckChannels = 8
        config.model.patchSize = [16, 16, 8]
        config.model.windowOverlap = 0.5
        config.epochs = 6
        config.batchSize = 4
        config.patchesPerEpoch = 24
        config.foregroundFraction = 0.5
        config.optimizer.learningRate = 0.01
        config.validationFraction = 0.25
        let cases = (0..<4).map { i in
            ballCase(
                "p\(i)", size: SIMD3(28, 24, 12), centre: SIMD3(10 + Double(i) * 2, 12, 6), radius: 4.5,
                seed: UInt64(i + 1))
        }
        var trainer = Trainer(configuration: config, preprocessing: PreprocessingConfiguration())
        #expect(trainer.model.dimensions == 3)
        let (train, validation) = trainer.split(cases)
        #expect(train.count == 3 && validation.count == 1)
        let path = NSTemporaryDirectory() + "tessera-train3d-\(UUID().uuidString)/best.safetensors"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        var steps: [StepProgress] = []
        let reports = try trainer.fit(
            train: train, validation: validation, checkpoint: path,
            onStep: { steps.append($0) })
        #expect(steps.count == 6 * 6 && steps.last?.step == 6 && steps.last?.steps == 6)
        #expect(reports.last!.loss < reports.first!.loss, "\(reports.map(\.loss))")
        let best = reports.map(\.meanDice).max() ?? 0
        #expect(best > 0.8, "validation Dice per epoch \(reports.map(\.meanDice))")
        let segmenter = try Segmenter(checkpoint: path)
        #expect(segmenter.model.dimensions == 3 && segmenter.window?.windowSize == [8, 16, 16])
        #expect(segmenter.window?.overlap == 0.5 && segmenter.window?.blending == .gaussian)
        let predicted = try segmenter.predict(validation[0].sample.image)
        #expect(predicted.geometry == validation[0].sample.image.geometry)
        let reloaded = Metrics.dice(predicted: predicted.voxels, truth: validation[0].sample.label!.voxels, label: 1)
        #expect(abs(reloaded - best) < 1e-9, "reloaded \(reloaded) vs best \(best)")
    }

    @Test("Same seed, same 3-D training: identical losses with batches prefetched on another task")
    func reproducible() throws {
        var config = TrainingConfiguration()
        config.model.architecture = "unet3d"
        config.model.encoderChannels = [2]
        config.model.bottleneckChannels = 4
        config.model.patchSize = [8, 8, 4]
        config.epochs = 2
        config.batchSize = 2
        config.patchesPerEpoch = 6
        let cases = (0..<2).map { i in
            ballCase("q\(i)", size: SIMD3(12, 10, 6), centre: SIMD3(5, 5, 3), radius: 2.5, seed: UInt64(10 + i))
        }
        var a = Trainer(configuration: config, preprocessing: PreprocessingConfiguration())
        var b = Trainer(configuration: config, preprocessing: PreprocessingConfiguration())
        let ra = try a.fit(train: cases, validation: []).map(\.loss)
        let rb = try b.fit(train: cases, validation: []).map(\.loss)
        #expect(ra == rb)
        #expect(a.model.parameters == b.model.parameters)
    }
}
