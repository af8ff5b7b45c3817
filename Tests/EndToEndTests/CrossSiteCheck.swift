import FederationClient
import FederationCore
import Foundation
import SafeTensorsFormat
import Training
import Volumes

/// Evaluates a model the way a site does for cross-site evaluation (the job's pipeline, the site's held-out
/// patients), in the test process: the reference the sites' reported figures are checked against.
enum CrossSiteCheck {
    static func dice(pipeline: String, data: String, model path: String) async throws -> Double {
        let preprocessing = try PreprocessingConfiguration(yaml: pipeline)
        let training = try TrainingConfiguration(yaml: pipeline)
        let cases = try SegmentationDataset.load(folder: data, model: training.model, preprocessing: preprocessing)
            .cases
        let trainer = SegmentationSiteTrainer(cases: cases, configuration: training, preprocessing: preprocessing)
        let file = try SafeTensorsFile.read(contentsOf: path)
        let weights = ParameterSet(
            file.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
        let task = TaskAssignment(jobID: "check", round: 0, kind: .evaluate, site: "check")
        let metrics = try await trainer.evaluate(weights, task: task)
        guard let dice = metrics["dice"] else { throw FederationError(.noResults, "no Dice for \(path)") }
        return dice
    }
}
