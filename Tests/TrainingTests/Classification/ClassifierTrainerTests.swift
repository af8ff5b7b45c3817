import DICOMIO
import Foundation
import NeuralNetwork
import Randomness
import Tensors
import TestSupport
import Testing
import Training
import Volumes

/// The classifier's inputs, imbalance handling, weighted loss, training and prediction files, on small synthetic
/// studies (a bright blob in the positive ones) so that every figure can be checked.
@Suite("Classifier trainer", .computeBound)
struct ClassifierTrainerTests {
    static func volume(_ d: SIMD3<Int>, _ voxels: [Float]) -> Volume<Float> {
        Volume(
            geometry: VolumeGeometry(dimensions: d, origin: Vector3(0, 0, 0), spacing: Vector3(1, 1, 1)),
            voxels: voxels)
    }

    @Test("Inputs by hand: MIP, MinIP, mean, middle slice, volume of a 2×2×3 volume")
    func inputs() {
        // z = 0: 1 2 3 4; z = 1: 5 0 -1 4; z = 2: 0 8 2 1 (x fastest).
        let v = Self.volume(SIMD3(2, 2, 3), [1, 2, 3, 4, 5, 0, -1, 4, 0, 8, 2, 1])
        #expect(ClassifierTrainer.input(v, mode: .mip).values == [5, 8, 3, 4])
        #expect(ClassifierTrainer.input(v, mode: .minip).values == [0, 0, -1, 1])
        let mean = ClassifierTrainer.input(v, mode: .mean).values
        #expect(zip(mean, [2, 10.0 / 3, 4.0 / 3, 3]).allSatisfy { abs(Double($0) - $1) < 1e-6 }, "\(mean)")
        #expect(ClassifierTrainer.input(v, mode: .middleSlice).values == [5, 0, -1, 4])
        #expect(ClassifierTrainer.input(v, mode: .mip).shape == [1, 2, 2])
        let whole = ClassifierTrainer.input(v, mode: .volume)
        #expect(whole.values == v.voxels && whole.shape == [1, 3, 2, 2])
    }

    @Test("Balanced class weights n / (classes · n_c), and balanced sampling draws each class about equally")
    func imbalance() {
        let labels = [0, 0, 0, 0, 0, 0, 1, 1]
        #expect(ClassifierTrainer.balancedWeights(labels, classes: 2) == [8.0 / 12, 8.0 / 4])
        #expect(ClassifierTrainer.balancedWeights([0, 0, 2], classes: 3) == [0.5, 0, 1])
        var g = SplitMix64(seed: 3)
        var positives = 0
        for _ in 0..<200 {
            positives += ClassifierTrainerTests.order(labels, &g).filter { labels[$0] == 1 }.count
        }
        // 1600 draws, each class with probability ½: 800 ± 4σ (σ = 20).
        #expect(abs(positives - 800) <= 80, "\(positives)")
        var h = SplitMix64(seed: 3)
        #expect(Set(ClassifierTrainerTests.order(labels, &h, balanced: false)) == Set(labels.indices))
    }

    static func order(_ labels: [Int], _ g: inout SplitMix64, balanced: Bool = true) -> [Int] {
        ClassifierTrainer.studyOrder(labels, balanced: balanced, generator: &g)
    }

    @Test("Class-weighted cross-entropy equals a naive double-precision reference, value and gradient")
    func weightedLoss() throws {
        let z: [Float] = [0.2, -1.0, 1.5, 0.3, -0.4, 0.9]
        let targets = [1, 0, 1]
        let w = [0.75, 1.5]
        let r = try Loss.crossEntropy(logits: Tensor(shape: [3, 2], storage: z), targets: targets, weights: w)
        var total = 0.0
        var weightSum = 0.0
        var gradient = [Double](repeating: 0, count: 6)
        for b in 0..<3 {
            let (a, c) = (Double(z[2 * b]), Double(z[2 * b + 1]))
            let m = max(a, c)
            let s = exp(a - m) + exp(c - m)
            let p = [exp(a - m) / s, exp(c - m) / s]
            let t = targets[b]
            total += w[t] * -log(p[t])
            weightSum += w[t]
            for k in 0..<2 { gradient[2 * b + k] = w[t] * (p[k] - (k == t ? 1 : 0)) }
        }
        #expect(abs(r.value - total / weightSum) < 1e-6)
        for i in 0..<6 { #expect(abs(Double(r.gradient.storage[i]) - gradient[i] / weightSum) < 1e-6) }
        // Without weights it is plain cross-entropy.
        let plain = try Loss.crossEntropy(logits: Tensor(shape: [3, 2], storage: z), targets: targets)
        let ones = try Loss.crossEntropy(logits: Tensor(shape: [3, 2], storage: z), targets: targets, weights: [1, 1])
        #expect(abs(plain.value - ones.value) < 1e-12)
        #expect(throws: NeuralNetworkError.self) {
            try Loss.crossEntropy(logits: Tensor(shape: [3, 2], storage: z), targets: targets, weights: [1])
        }
    }

    /// 24 studies of 16×16×4: positives hold a bright 4×4×2 blob at a random place.
    static func cases() -> [ClassificationCase] {
        var g = SplitMix64(seed: 11)
        return (0..<24).map { i in
            let label = i % 3 == 0 ? 1 : 0
            var voxels = (0..<(16 * 16 * 4)).map { _ in Float(g.normal() * 0.1) }
            if label == 1 {
                let (x0, y0, z0) = (g.integer(2, 10), g.integer(2, 10), g.integer(0, 2))
                for z in z0..<(z0 + 2) {
                    for y in y0..<(y0 + 4) { for x in x0..<(x0 + 4) { voxels[(z * 16 + y) * 16 + x] += 1 } }
                }
            }
            let sample = Sample(image: volume(SIMD3(16, 16, 4), voxels))
            return ClassificationCase(
                patientID: String(format: "P%02d", i), studyInstanceUID: "1.2.\(i)", seriesInstanceUID: "1.2.\(i).1",
                seriesDescription: "synthetic", label: label, sample: sample)
        }
    }

    static func configuration(_ architecture: String, input: String) throws -> TrainingConfiguration {
        try TrainingConfiguration(
            yaml: """
                model: {architecture: \(architecture), widths: [4, 8], blocks: [1, 1], seed: 3}
                training: {epochs: 8, batch_size: 4, validation_fraction: 0.25, seed: 5,
                  optimizer: {name: adam, learning_rate: 0.01}}
                classification:
                  classes: [negative, positive]
                  input: \(input)
                  imbalance: weighted_loss
                  bootstrap: {samples: 200, seed: 9}
                """)
    }

    @Test(
        "2-D (MIP) and 3-D classifiers learn the blob task; the checkpoint reloads to the same probabilities",
        arguments: [("resnet2d", "mip"), ("resnet3d", "volume")])
    func learns(architecture: String, input: String) throws {
        let config = try Self.configuration(architecture, input: input)
        var trainer = try ClassifierTrainer(configuration: config, preprocessing: PreprocessingConfiguration())
        let (train, validation) = trainer.split(Self.cases())
        #expect(train.count == 18 && validation.count == 6)
        #expect(Set(train.map(\.patientID)).isDisjoint(with: validation.map(\.patientID)))
        let before = try trainer.evaluate(validation)
        let folder = NSTemporaryDirectory() + "tessera-classifier-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let reports = try trainer.fit(train: train, validation: validation, checkpoint: folder + "/best.safetensors")
        #expect(reports.count == 8)
        let aucs = reports.compactMap { $0.validation?.auc }
        let best = try #require(aucs.max())
        #expect(
            best == 1, "AUC before \(String(describing: before.auc)), per epoch \(reports.map { $0.validation?.auc })")
        #expect(reports.last!.loss < reports.first!.loss)
        // The best checkpoint (first epoch with AUC 1) reloads to the same probabilities.
        let bestEpoch = try #require(reports.first { $0.validation?.auc == best })
        var reloaded = try ClassifierTrainer(configuration: config, preprocessing: PreprocessingConfiguration())
        try reloaded.load(checkpoint: folder + "/best.safetensors")
        #expect(try reloaded.evaluate(validation).auc == bestEpoch.validation?.auc)
        let metadata = try SafeTensors.read(contentsOf: folder + "/best.safetensors").metadata
        #expect(metadata["architecture"] == architecture && metadata["classes"] == "negative,positive")
        #expect(metadata["epoch"] == String(bestEpoch.epoch))
        // Bootstrap interval on request, seeded.
        let withCI = try reloaded.evaluate(validation, bootstrap: true)
        let again = try reloaded.evaluate(validation, bootstrap: true)
        #expect(withCI.aucInterval != nil && withCI.aucInterval == again.aucInterval)
    }

    @Test("Predictions: per-study probabilities in CSV (quoted, RFC 4180) and JSON, with the series used")
    func predictionFiles() throws {
        var k = ClassificationConfiguration()
        k.classes = ["no", "yes"]
        k.threshold = 0.3
        let cases = Array(Self.cases().prefix(2))
        let p = ClassificationPrediction(cases: cases, probabilities: [[0.9, 0.1], [0.6, 0.4]], configuration: k)
        #expect(p.studies.map(\.predicted) == ["no", "no"] && p.studies.map(\.positive) == [false, true])
        let lines = p.csv.split(separator: "\n").map(String.init)
        #expect(
            lines[0]
                == "\"PatientID\",\"StudyInstanceUID\",\"SeriesInstanceUID\",\"SeriesDescription\","
                + "\"p_no\",\"p_yes\",\"predicted\",\"positive\""
        )
        #expect(lines[2] == "\"P01\",\"1.2.1\",\"1.2.1.1\",\"synthetic\",0.600000,0.400000,\"no\",1")
        let folder = NSTemporaryDirectory() + "tessera-predictions-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let paths = try p.write(to: folder + "/predictions.csv")
        #expect(paths.json == folder + "/predictions.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: paths.json)))
        let studies = try #require((json as? [String: Any])?["studies"] as? [[String: Any]])
        #expect(studies[1]["series_instance_uid"] as? String == "1.2.1.1")
        #expect((studies[1]["probabilities"] as? [String: Double])?["yes"] == 0.4)
        // The CSV reads back with the labels reader's parser (one format, both directions).
        let back = try LabelTable(
            csv: Data(p.csv.utf8), key: .studyInstanceUID, keyColumn: "StudyInstanceUID", labelColumn: "predicted",
            classes: ["no", "yes"])
        #expect(back.labels == ["1.2.0": 0, "1.2.1": 0])
    }
}
