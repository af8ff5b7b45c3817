import FederatedAnalytics
import FederationClient
import FederationCore
import FederationServer
import Foundation
import NeuralNetwork
import Training
import Volumes
import Yams

/// The server's job factory (`tessera server`): a pipeline YAML with `model:`, `training:` and `federation:`
/// becomes a training job run by a `Coordinator` — the initial model built from `model:` (seeded, so every start
/// builds the same one), the strategy from `federation.strategy`, and the pipeline itself sent with every task so
/// each site preprocesses and trains exactly as the study says.
public struct StudyJobFactory: JobFactory {
    /// The server's limits for training pipelines (sizes, model, federation) and statistics queries; every
    /// pipeline is checked against them at submission (`plan`) and again when its job starts (`makeRunner`).
    public var limits: PipelineLimits
    public var queryLimits: QueryLimits

    public init(limits: PipelineLimits = .default, queryLimits: QueryLimits = .default) {
        self.limits = limits
        self.queryLimits = queryLimits
    }

    struct Parsed {
        var federation: FederationConfiguration
        var training: TrainingConfiguration
        var preprocessing: PreprocessingConfiguration
    }

    static let trainingSections: Set<String> = [
        "preprocessing", "augmentation", "model", "training", "federation", "classification",
    ]
    static let statisticsSections: Set<String> = ["query", "federation"]

    /// Refuses a pipeline larger than the limit before it is parsed, and a top-level key no reader knows.
    func checkTopLevel(_ pipeline: String, allowed: Set<String>) throws(FederationError) {
        let root = try FederationConfiguration.compose(pipeline, limits: limits)
        guard let mapping = root?.mapping else {
            throw FederationError(
                .invalidConfiguration,
                "the pipeline must be a YAML mapping of sections ("
                    + allowed.sorted().joined(separator: ", ") + ")")
        }
        for (key, _) in mapping {
            let name = key.string ?? ""
            guard allowed.contains(name) else {
                throw FederationError(
                    .invalidConfiguration,
                    "unknown top-level key `\(String(name.prefix(64)))`; this "
                        + "pipeline accepts: " + allowed.sorted().joined(separator: ", "))
            }
        }
    }

    /// Parses and checks every section of a training pipeline against `limits`, before anything is built.
    func parse(_ pipeline: String) throws(FederationError) -> Parsed {
        try checkTopLevel(pipeline, allowed: Self.trainingSections)
        let federation = try FederationConfiguration(yaml: pipeline, limits: limits)
        let training: TrainingConfiguration
        let preprocessing: PreprocessingConfiguration
        do {
            preprocessing = try PreprocessingConfiguration(yaml: pipeline, limits: limits.preprocessing)
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "the pipeline is not a valid training pipeline: "
                    + "\(error.transform): \(error.message)", cause: error.description)
        }
        do {
            training = try TrainingConfiguration(yaml: pipeline, limits: limits)
            try limits.validate(training, preprocessing: preprocessing)
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "the pipeline is not a valid training pipeline: "
                    + error.message, cause: error.description)
        }
        guard !federation.sites.isEmpty else {
            throw FederationError(
                .invalidConfiguration,
                "`federation.sites` is empty: name the participating sites "
                    + "(their kit names)")
        }
        guard federation.minClients <= federation.sites.count else {
            throw FederationError(
                .invalidConfiguration,
                "`federation.min_clients` is \(federation.minClients) but "
                    + "only \(federation.sites.count) site(s) are listed")
        }
        try federation.checkPersonalization(of: training.model)
        // Rules that hold every site's diff: sites × parameters × 4 bytes, refused here rather than at a round's close.
        try federation.robustAggregation.checkHeldMemory(
            parameters: PipelineLimits.parameterCount(training.model) ?? Int.max, sites: federation.sites.count,
            limit: limits.maxHeldUpdateBytes)
        return Parsed(federation: federation, training: training, preprocessing: preprocessing)
    }

    /// A pipeline with a top-level `query:` is a cohort-statistics job; any other a training job.
    public static func isStatistics(_ pipeline: String) -> Bool {
        ((try? Yams.compose(yaml: pipeline))??.mapping?["query"]) != nil
    }

    func parseStatistics(_ pipeline: String) throws(FederationError) -> (StatisticsQuery, FederationConfiguration) {
        try checkTopLevel(pipeline, allowed: Self.statisticsSections)
        let federation = try FederationConfiguration(yaml: pipeline, limits: limits)
        let query: StatisticsQuery
        do { query = try StatisticsQuery.parse(pipeline, source: "the submitted query", limits: queryLimits) } catch {
            throw FederationError(.invalidConfiguration, error.message, cause: error.cause)
        }
        guard !federation.sites.isEmpty else {
            throw FederationError(
                .invalidConfiguration,
                "`federation.sites` is empty: name the participating sites "
                    + "(their kit names)")
        }
        return (query, federation)
    }

    /// Checks the whole pipeline against the server's limits (at submission, before the job is queued).
    /// - Throws: `.invalidConfiguration` naming the key (`preprocessing.resize[0]`, `model.encoder_channels[0]`,
    ///   `query.features[1].bins`) and the limit.
    public func plan(pipeline: String) throws(FederationError) -> JobPlan {
        if let problem = YAMLSize.problem(in: pipeline, maxBytes: limits.maxPipelineBytes) {
            throw FederationError(.invalidConfiguration, "the pipeline is refused: \(problem)")
        }
        if Self.isStatistics(pipeline) {
            let (_, federation) = try parseStatistics(pipeline)
            return JobPlan(kind: .statistics, rounds: 0, sites: federation.sites)
        }
        let p = try parse(pipeline)
        return JobPlan(kind: .training, rounds: p.federation.rounds, sites: p.federation.sites)
    }

    /// Checks the pipeline again (the limits may have changed since it was queued, or it was queued by an older
    /// server), then builds the job: an error here fails the job with the reason, nothing is allocated first.
    public func makeRunner(jobID: String, pipeline: String, submittedBy: String, store: SQLiteCheckpointStore)
        async throws(FederationError)
        -> any JobRunner
    {
        if let problem = YAMLSize.problem(in: pipeline, maxBytes: limits.maxPipelineBytes) {
            throw FederationError(.invalidConfiguration, "the pipeline is refused: \(problem)")
        }
        if Self.isStatistics(pipeline) {
            let (query, federation) = try parseStatistics(pipeline)
            return try StatisticsCoordinator(
                jobID: jobID, query: query, sites: federation.sites,
                minimumSites: min(federation.minClients, federation.sites.count),
                phaseTimeout: .seconds(federation.roundTimeoutSeconds), clock: ContinuousClock(),
                checkpointPath: store.jobFolder(jobID) + "/statistics.json",
                limits: queryLimits)
        }
        let p = try parse(pipeline)
        let initial: NamedTensors
        let modelMetadata: [String: String]
        do {
            initial = try p.training.initialState(preprocessing: p.preprocessing)
            modelMetadata = try CheckpointMetadata.describe(p.training, preprocessing: p.preprocessing)
        } catch {
            throw FederationError(.invalidConfiguration, "the job's model cannot be built: \(error.message)")
        }
        var job = p.federation.jobConfiguration(jobID: jobID, sites: p.federation.sites)
        job.modelMetadata = modelMetadata
        job.taskConfig["pipeline"] = .string(pipeline)
        job.taskConfig["submitted_by"] = .string(submittedBy)
        job.maxHeldUpdateBytes = limits.maxHeldUpdateBytes
        let coordinator = Coordinator(
            configuration: job, initialModel: SegmentationSiteTrainer.parameterSet(initial),
            strategy: p.federation.makeStrategy(learningRate: Double(p.training.optimizer.learningRate)),
            clock: ContinuousClock(), store: store, workDirectory: store.jobFolder(jobID) + "/spill")
        guard p.federation.crossSiteEvaluation else { return coordinator }
        return TrainingJob(
            coordinator: coordinator,
            evaluation: try p.federation.crossSiteEvaluation(
                jobID: jobID, sites: p.federation.sites,
                folder: store.jobFolder(jobID) + "/cross-site",
                taskConfig: job.taskConfig, modelMetadata: modelMetadata))
    }
}

extension FederationConfiguration {
    /// The cross-site evaluation that follows the last round (see `CrossSiteEvaluation`): each step has the round
    /// deadline.
    public func crossSiteEvaluation(
        jobID: String, sites: [String], folder: String, taskConfig: [String: ConfigValue],
        modelMetadata: [String: String] = [:]
    ) throws(FederationError) -> CrossSiteEvaluation<ContinuousClock> {
        try CrossSiteEvaluation(
            jobID: jobID, sites: sites, firstRound: rounds + 1, timeout: .seconds(roundTimeoutSeconds),
            clock: ContinuousClock(), folder: folder, taskConfig: taskConfig, modelMetadata: modelMetadata)
    }

    /// The coordinator's settings for this section. With cross-site evaluation, every task says so
    /// (`cross_site_evaluation`): sites keep their last local weights only when the job will ask for them.
    public func jobConfiguration(jobID: String, sites: [String]) -> JobConfiguration {
        var job = JobConfiguration(
            jobID: jobID, rounds: rounds, sites: sites, minClients: minClients,
            roundTimeout: .seconds(roundTimeoutSeconds), gracePeriod: .seconds(gracePeriodSeconds),
            maxRoundRetries: maxRoundRetries)
        job.maxSampleCount = maxSampleCount
        job.maxUpdateMagnitude = Float(maxUpdateValue)
        job.clientDP = clientDP
        job.secureAggregation = secureAggregation
        job.robustAggregation = robustAggregation
        if crossSiteEvaluation { job.taskConfig["cross_site_evaluation"] = .bool(true) }
        // How the sites encode their updates (nothing for float32).
        job.taskConfig.merge(compression.taskConfig) { _, encoding in encoding }
        job.downloadEncoding = downloadCompression
        if personalization != .none { job.taskConfig["personalization"] = .string(personalization.rawValue) }
        if fineTuneEpochs > 0 { job.taskConfig["fine_tune_epochs"] = .int(fineTuneEpochs) }
        return job
    }
}
