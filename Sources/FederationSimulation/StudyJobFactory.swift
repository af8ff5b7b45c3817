import FederationClient
import FederationCore
import FederationServer
import Foundation
import Training
import Volumes

/// The server's job factory (`tessera server`): a pipeline YAML with `model:`, `training:` and `federation:`
/// becomes a training job run by a `Coordinator` — the initial model built from `model:` (seeded, so every start
/// builds the same one), the strategy from `federation.strategy`, and the pipeline itself sent with every task so
/// each site preprocesses and trains exactly as the study says.
public struct StudyJobFactory: JobFactory {
    public init() {}

    struct Parsed {
        var federation: FederationConfiguration
        var training: TrainingConfiguration
        var preprocessing: PreprocessingConfiguration
    }

    func parse(_ pipeline: String) throws(FederationError) -> Parsed {
        let federation = try FederationConfiguration(yaml: pipeline)
        let training: TrainingConfiguration, preprocessing: PreprocessingConfiguration
        do {
            training = try TrainingConfiguration(yaml: pipeline)
            preprocessing = try PreprocessingConfiguration(yaml: pipeline)
        } catch {
            throw FederationError(.invalidConfiguration, "the pipeline is not a valid training pipeline: \(error)")
        }
        guard !federation.sites.isEmpty else {
            throw FederationError(.invalidConfiguration, "the pipeline lists no sites: name the participating sites (their "
                                  + "kit names) under federation.sites")
        }
        guard federation.minClients <= federation.sites.count else {
            throw FederationError(.invalidConfiguration, "federation.min_clients is \(federation.minClients) but only "
                                  + "\(federation.sites.count) site(s) are listed")
        }
        return Parsed(federation: federation, training: training, preprocessing: preprocessing)
    }

    public func plan(pipeline: String) throws(FederationError) -> JobPlan {
        let p = try parse(pipeline)
        return JobPlan(kind: .training, rounds: p.federation.rounds, sites: p.federation.sites)
    }

    public func makeRunner(jobID: String, pipeline: String, store: SQLiteCheckpointStore) async throws(FederationError) -> any JobRunner {
        let p = try parse(pipeline)
        let initial = Trainer(configuration: p.training, preprocessing: p.preprocessing)
        var job = p.federation.jobConfiguration(jobID: jobID, sites: p.federation.sites)
        job.taskConfig = ["pipeline": .string(pipeline)]
        return Coordinator(configuration: job, initialModel: SegmentationSiteTrainer.parameterSet(initial.model.stateDict),
                           strategy: p.federation.makeStrategy(learningRate: Double(p.training.optimizer.learningRate)),
                           clock: ContinuousClock(), store: store)
    }
}

extension FederationConfiguration {
    /// The coordinator's settings for this section.
    public func jobConfiguration(jobID: String, sites: [String]) -> JobConfiguration {
        JobConfiguration(jobID: jobID, rounds: rounds, sites: sites, minClients: minClients,
                         roundTimeout: .seconds(roundTimeoutSeconds), gracePeriod: .seconds(gracePeriodSeconds),
                         maxRoundRetries: maxRoundRetries)
    }
}
