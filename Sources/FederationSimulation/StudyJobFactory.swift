import FederationClient
import FederationCore
import FederationServer
import FederatedAnalytics
import Foundation
import Training
import Volumes
import Yams

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

    /// A pipeline with a top-level `query:` is a cohort-statistics job; any other a training job.
    public static func isStatistics(_ pipeline: String) -> Bool {
        ((try? Yams.compose(yaml: pipeline))??.mapping?["query"]) != nil
    }

    func parseStatistics(_ pipeline: String) throws(FederationError) -> (StatisticsQuery, FederationConfiguration) {
        let federation = try FederationConfiguration(yaml: pipeline)
        let query: StatisticsQuery
        do { query = try StatisticsQuery.parse(pipeline, source: "the submitted query") } catch {
            throw FederationError(.invalidConfiguration, error.message)
        }
        guard !federation.sites.isEmpty else {
            throw FederationError(.invalidConfiguration, "the query lists no sites: name the participating sites (their "
                                  + "kit names) under federation.sites")
        }
        return (query, federation)
    }

    public func plan(pipeline: String) throws(FederationError) -> JobPlan {
        if Self.isStatistics(pipeline) {
            let (_, federation) = try parseStatistics(pipeline)
            return JobPlan(kind: .statistics, rounds: 0, sites: federation.sites)
        }
        let p = try parse(pipeline)
        return JobPlan(kind: .training, rounds: p.federation.rounds, sites: p.federation.sites)
    }

    public func makeRunner(jobID: String, pipeline: String, store: SQLiteCheckpointStore) async throws(FederationError) -> any JobRunner {
        if Self.isStatistics(pipeline) {
            let (query, federation) = try parseStatistics(pipeline)
            return try StatisticsCoordinator(jobID: jobID, query: query, sites: federation.sites,
                                             minimumSites: min(federation.minClients, federation.sites.count),
                                             phaseTimeout: .seconds(federation.roundTimeoutSeconds), clock: ContinuousClock(),
                                             checkpointPath: store.jobFolder(jobID) + "/statistics.json")
        }
        let p = try parse(pipeline)
        let initial = Trainer(configuration: p.training, preprocessing: p.preprocessing)
        var job = p.federation.jobConfiguration(jobID: jobID, sites: p.federation.sites)
        job.taskConfig["pipeline"] = .string(pipeline)
        let coordinator = Coordinator(configuration: job, initialModel: SegmentationSiteTrainer.parameterSet(initial.model.stateDict),
                                      strategy: p.federation.makeStrategy(learningRate: Double(p.training.optimizer.learningRate)),
                                      clock: ContinuousClock(), store: store, workDirectory: store.jobFolder(jobID) + "/spill")
        guard p.federation.crossSiteEvaluation else { return coordinator }
        return TrainingJob(coordinator: coordinator,
                           evaluation: try p.federation.crossSiteEvaluation(jobID: jobID, sites: p.federation.sites,
                                                                            folder: store.jobFolder(jobID) + "/cross-site",
                                                                            taskConfig: job.taskConfig))
    }
}

extension FederationConfiguration {
    /// The cross-site evaluation that follows the last round (see `CrossSiteEvaluation`): each step has the round
    /// deadline.
    public func crossSiteEvaluation(jobID: String, sites: [String], folder: String, taskConfig: [String: ConfigValue])
        throws(FederationError) -> CrossSiteEvaluation<ContinuousClock>
    {
        try CrossSiteEvaluation(jobID: jobID, sites: sites, firstRound: rounds + 1, timeout: .seconds(roundTimeoutSeconds),
                                clock: ContinuousClock(), folder: folder, taskConfig: taskConfig)
    }

    /// The coordinator's settings for this section. With cross-site evaluation, every task says so
    /// (`cross_site_evaluation`): sites keep their last local weights only when the job will ask for them.
    public func jobConfiguration(jobID: String, sites: [String]) -> JobConfiguration {
        var job = JobConfiguration(jobID: jobID, rounds: rounds, sites: sites, minClients: minClients,
                                   roundTimeout: .seconds(roundTimeoutSeconds), gracePeriod: .seconds(gracePeriodSeconds),
                                   maxRoundRetries: maxRoundRetries)
        if crossSiteEvaluation { job.taskConfig["cross_site_evaluation"] = .bool(true) }
        return job
    }
}
