import Foundation
import NeuralNetwork
import TestSupport
import Testing
import Training
import Volumes

let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

@Suite("Training", .computeBound)
struct TrainingTests {
    let pipelineText = String(
        decoding: FileManager.default.contents(atPath: repositoryRoot + "/pipelines/segmentation-unet2d.yaml")
            ?? Data(), as: UTF8.self)

    @Test("Dice: hand-computed")
    func diceValues() {
        #expect(dice([1, 1, 0, 0], [1, 0, 1, 0], label: 1) == 0.5)
        #expect(dice([0, 0], [0, 0], label: 1) == 1)
        #expect(dice([2, 2, 2], [2, 2, 2], label: 2) == 1)
    }

    @Test("The shipped pipeline's model and training sections parse; unknown keys and bad values are named")
    func configuration() throws {
        let c = try TrainingConfiguration(yaml: pipelineText)
        #expect(c.model.encoderChannels == [8, 16, 32, 64] && c.model.segments == [1] && c.model.classes == 2)
        #expect(c.optimizer.name == "adam" && c.epochs >= 1)
        for (yaml, words) in [
            ("training:\n  epoch: 3", "training.epoch"),
            ("training:\n  batch_size: 0", "training.batch_size"),
            ("model:\n  architecture: vnet", "unet2d"),
            ("training:\n  optimizer:\n    name: lbfgs", "sgd, adam or adamw"),
            ("model:\n  segments: []", "model.segments"),
        ] {
            do {
                _ = try TrainingConfiguration(yaml: yaml)
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.description.contains(words), "\(error)")
            }
        }
    }

    @Test("A short run on one sample site learns the liver; the checkpoint reloads to the same predictions")
    func shortRun() throws {
        let preprocessing = try PreprocessingConfiguration(yaml: pipelineText)
        var config = try TrainingConfiguration(yaml: pipelineText)
        config.model.encoderChannels = [8, 16, 32]
        config.model.bottleneckChannels = 64
        config.epochs = 6
        config.slicesPerEpoch = 80
        config.optimizer.learningRate = 0.003
        let cases = try SegmentationDataset.load(
            folder: repositoryRoot + "/sample-data/research-center",
            preprocessing: preprocessing, segments: [1], segmentNames: config.model.segmentNames)
        #expect(cases.count == 4)
        #expect(cases.allSatisfy { $0.sample.image.geometry.dimensions == SIMD3(128, 128, 48) })
        var trainer = Trainer(configuration: config, preprocessing: preprocessing)
        let (train, validation) = trainer.split(cases)
        #expect(train.count == 3 && validation.count == 1)
        #expect(Set(train.map(\.patientID)).isDisjoint(with: validation.map(\.patientID)))
        let before = try trainer.validate(validation)
        let path = NSTemporaryDirectory() + "tessera-train-\(UUID().uuidString)/best.safetensors"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let reports = try trainer.fit(train: train, validation: validation, checkpoint: path)
        #expect(reports.count == 6)
        #expect(reports.last!.loss < reports.first!.loss, "\(reports.map(\.loss)) \(reports.map(\.validationDice))")
        let best = reports.map(\.meanDice).max() ?? 0
        #expect(best > before[0] + 0.2, "Dice before \(before[0]), best \(best)")
        // Reloaded checkpoint: same architecture from metadata, same predictions as the best epoch's model.
        let segmenter = try Segmenter(checkpoint: path)
        #expect(segmenter.segments == [1])
        let predicted = try segmenter.predict(validation[0].sample.image)
        let reloadedDice = dice(predicted.voxels, validation[0].sample.label!.voxels, label: 1)
        #expect(abs(reloadedDice - best) < 1e-9)
    }

    @Test("A checkpoint that is not a Tessera U-Net is refused with a clear error")
    func badCheckpoint() throws {
        let path = NSTemporaryDirectory() + "tessera-bad-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(NamedTensors(), metadata: ["architecture": "resnet"], to: path)
        #expect(throws: TrainingError.self) { try Segmenter(checkpoint: path) }
        #expect(throws: TrainingError.self) { try Segmenter(checkpoint: "/nonexistent.safetensors") }
    }
}
