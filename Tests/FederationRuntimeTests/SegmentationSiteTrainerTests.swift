import FederationClient
import FederationCore
import Foundation
import Testing
import Training
import Volumes

/// Patients of 16 × 16 × 4 voxels, a bright square (label 1) in the middle slices, noise-free.
func squarePatients(_ count: Int) -> [SegmentationCase] {
    (0..<count).map { i in
        let geometry = VolumeGeometry(dimensions: SIMD3(16, 16, 4), origin: .zero, spacing: .init(1, 1, 1))
        var image = [Float](repeating: 0.2, count: 16 * 16 * 4)
        var labels = [UInt8](repeating: 0, count: 16 * 16 * 4)
        for z in 1..<3 {
            for y in 4..<(10 + i) {
                for x in 5..<11 {
                    image[(z * 16 + y) * 16 + x] = 0.8
                    labels[(z * 16 + y) * 16 + x] = 1
                }
            }
        }
        return SegmentationCase(
            patientID: "p\(i)", seriesInstanceUID: "1.2.\(i)",
            sample: Sample(
                image: Volume(geometry: geometry, voxels: image),
                label: Volume(geometry: geometry, voxels: labels)))
    }
}

@Suite("SegmentationSiteTrainer")
struct SegmentationSiteTrainerTests {
    @Test("With dp_sgd, a round's metrics carry what the accountant charges; without it, none of those keys")
    func dpSGDMetrics() async throws {
        var config = TrainingConfiguration()
        config.model.encoderChannels = [2, 4]
        config.model.bottleneckChannels = 8
        config.epochs = 1
        config.slicesPerEpoch = 4
        config.validationFraction = 0
        let keys = ["dp_sgd_steps", "dp_sgd_sampling_rate", "dp_sgd_noise_multiplier", "dp_sgd_max_grad_norm"]
        let global = SegmentationSiteTrainer.parameterSet(
            Trainer(configuration: config, preprocessing: PreprocessingConfiguration()).model.stateDict)
        let task = TaskAssignment(jobID: "j", round: 1, kind: .train, site: "a", config: ["local_epochs": .int(2)])

        let plain = SegmentationSiteTrainer(
            cases: squarePatients(4), configuration: config,
            preprocessing: PreprocessingConfiguration())
        let ordinary = try await plain.train(global: global, task: task).metrics
        #expect(keys.allSatisfy { ordinary[$0] == nil }, "\(ordinary)")

        config.dpSGD = .init(noiseMultiplier: 1.3, maxGradNorm: 0.5, patientsPerStep: 2, slicesPerPatient: 2)
        let dpTrainer = SegmentationSiteTrainer(
            cases: squarePatients(4), configuration: config,
            preprocessing: PreprocessingConfiguration())
        let metrics = try await dpTrainer.train(global: global, task: task).metrics
        // 2 local epochs × round(4 / 2) steps, q = 2 / 4.
        #expect(metrics["dp_sgd_steps"] == 4 && metrics["dp_sgd_sampling_rate"] == 0.5)
        #expect(metrics["dp_sgd_noise_multiplier"] == 1.3 && metrics["dp_sgd_max_grad_norm"] == 0.5)
    }
}
