import DifferentialPrivacy
import FederationClient
import FederationCore
import FederationInProcess
import FederationJobs
import FederationServer
import Foundation
import NeuralNetwork
import Provisioning
import SecureAggregation
import SwiftASN1
import Synchronization
import Training
import Volumes

/// One round as the study lead sees it.
public struct RoundSummary: Sendable, Codable {
    public var round: Int
    public var participants: [String]
    public var closedBy: String
    /// The study's metric (`StudyReport.metric`: Dice, or ROC AUC for classification) each site reported after its
    /// local training this round, on its held-out patients.
    public var siteScore: [String: Double]
    /// The new global model's metric on every site's held-out patients.
    public var globalScore: [String: Double]
    public var seconds: Double
    /// ε each site's privacy ledger says the job has spent there after this round (DP jobs; at the site's
    /// accounting δ, `dp_delta`), as the site reported it with its update.
    public var epsilon: [String: Double] = [:]

    public init(
        round: Int, participants: [String], closedBy: String, siteScore: [String: Double],
        globalScore: [String: Double], seconds: Double, epsilon: [String: Double] = [:]
    ) {
        self.epsilon = epsilon
        self.round = round
        self.participants = participants
        self.closedBy = closedBy
        self.siteScore = siteScore
        self.globalScore = globalScore
        self.seconds = seconds
    }
}

/// A model evaluated on every site's held-out patients: `scores` holds the study's metric (`StudyReport.metric`)
/// per site.
public struct ComparisonRow: Sendable, Codable {
    /// What the model is.
    public enum Kind: String, Sendable, Codable, Equatable {
        /// The final global model (under FedBN, at each site with its own normalisation layers).
        case federated
        /// The global model fine-tuned at each site (`federation.fine_tune_epochs`), each at its own site.
        case personalised
        /// One site's own model (`local only: <site>`).
        case localOnly = "local_only"
        /// A model trained on every site's training patients pooled.
        case centralised
    }

    public var model: String
    public var kind: Kind
    public var scores: [String: Double]
    public var mean: Double
    /// A baseline's training run: its best epoch (whose weights were scored) and why it stopped; nil for the
    /// federated models.
    public var convergence: ConvergenceRecord?

    public init(
        model: String, kind: Kind, scores: [String: Double], mean: Double, convergence: ConvergenceRecord? = nil
    ) {
        self.model = model
        self.kind = kind
        self.scores = scores
        self.mean = mean
        self.convergence = convergence
    }
}

/// What `tessera simulate` reports.
public struct StudyReport: Sendable, Codable {
    /// What the per-site figures are: `dice` (segmentation) or `auc` (classification: ROC AUC of the positive
    /// class on the held-out studies).
    public var metric = "dice"
    public var strategy: String
    public var sites: [String]
    public var rounds: [RoundSummary]
    /// Federated (the final global model), personalised (when the sites fine-tuned it), local-only per site, and
    /// centralised (pooled data), the last two trained to convergence as `tessera train` trains (`baseline`).
    public var comparison: [ComparisonRow]
    /// Cross-site evaluation run by the federation itself (`federation.cross_site_evaluation`): the final global
    /// model and each site's last local model, evaluated by every site on its held-out patients.
    public var crossSite: CrossSiteMatrix?
    /// The learning-quality target judged on `comparison` (nil without the baselines).
    public var learningQuality: LearningQuality?
    public var totalSeconds: Double
    /// The ε each site spent on the job (its last reported value), for DP jobs; empty otherwise.
    public var epsilon: [String: Double] {
        var last: [String: Double] = [:]
        for round in rounds { last.merge(round.epsilon) { _, new in new } }
        return last
    }

    public init(
        strategy: String, sites: [String], rounds: [RoundSummary], comparison: [ComparisonRow],
        crossSite: CrossSiteMatrix? = nil, totalSeconds: Double
    ) {
        self.strategy = strategy
        self.sites = sites
        self.rounds = rounds
        self.comparison = comparison
        self.crossSite = crossSite
        self.totalSeconds = totalSeconds
    }
}

/// What the federated part of a study produced.
public struct FederatedOutcome: Sendable {
    /// The final global model.
    public var global: ParameterSet
    /// Each closed round (without the global Dice, which the study measures).
    public var rounds: [RoundSummary]
    /// The global model after each round, by round number.
    public var roundModels: [Int: ParameterSet]
    /// The job's cross-site evaluation, when the pipeline asks for one.
    public var crossSite: CrossSiteMatrix?

    public init(
        global: ParameterSet, rounds: [RoundSummary], roundModels: [Int: ParameterSet],
        crossSite: CrossSiteMatrix? = nil
    ) {
        self.global = global
        self.rounds = rounds
        self.roundModels = roundModels
        self.crossSite = crossSite
    }
}

/// How a study's federated rounds run: in this process over the in-process transport (`InProcessFederation`), or
/// as real server and client processes over mutual TLS (`tessera simulate`).
public protocol StudyFederation: Sendable {
    /// Runs the job of `pipeline` (its YAML text, whose `federation.sites` are `sites`, the folders under `dataRoot`)
    /// from `initialModel`, reporting progress lines. `trainers` are the sites' data as the study loaded it (an
    /// in-process run uses them; site processes read their own folders).
    func federate(
        pipeline: String, sites: [String], dataRoot: String, output: String, initialModel: ParameterSet,
        trainers: [String: any LocalTrainer],
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> FederatedOutcome
}

/// A whole federated study, segmentation or classification (`StudySites`): the federated rounds (through
/// `federation`), then every model evaluated on every site's held-out patients (Dice or ROC AUC), and the comparison
/// with local-only and centralised models trained to convergence without seeing the held-out patients
/// (`StudySites.baseline`: the epoch count chosen on set-aside training patients with the pipeline's `training.epochs`,
/// `early_stopping` and `time_budget_seconds`, then a refit on all training patients).
public struct FederatedStudy: Sendable {
    public var pipeline: String
    public var dataRoot: String
    public var output: String
    /// Skip the local-only and centralised baselines (faster).
    public var compare = true
    /// Where the rounds run (default: in this process).
    public var federation: any StudyFederation = InProcessFederation()

    public init(pipeline: String, dataRoot: String, output: String) {
        self.pipeline = pipeline
        self.dataRoot = dataRoot
        self.output = output
    }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> StudyReport {
        let started = Date()
        guard let text = FileManager.default.contents(atPath: pipeline).map({ String(decoding: $0, as: UTF8.self) })
        else {
            throw FederationError(.invalidConfiguration, "cannot read the pipeline \(pipeline)")
        }
        let preprocessing = try PreprocessingConfiguration(yaml: text)
        let training = try TrainingConfiguration(yaml: text)
        let federation = try FederationConfiguration(yaml: text)
        try federation.checkPersonalization(of: training.model)
        var siteNames = federation.sites
        if siteNames.isEmpty {
            siteNames = try FileManager.default.contentsOfDirectory(atPath: dataRoot).filter { name in
                var dir: ObjCBool = false
                return FileManager.default.fileExists(atPath: dataRoot + "/" + name, isDirectory: &dir) && dir.boolValue
                    && !name.hasPrefix(".")
            }.sorted()
        }
        guard siteNames.count >= federation.minClients else {
            throw FederationError(
                .invalidConfiguration,
                "\(siteNames.count) site folder(s) under \(dataRoot) but min_clients is \(federation.minClients)")
        }
        let sites = try StudySites.load(
            sites: siteNames, dataRoot: dataRoot, training: training, preprocessing: preprocessing,
            progress: progress)
        let initialModel = SegmentationSiteTrainer.parameterSet(try training.initialState(preprocessing: preprocessing))
        let submitted =
            federation.sites.isEmpty ? try FederationConfiguration.pipeline(text, withSites: siteNames) : text
        let outcome = try await self.federation.federate(
            pipeline: submitted, sites: siteNames, dataRoot: dataRoot,
            output: output, initialModel: initialModel, trainers: sites.trainers,
            progress: progress)
        let global = outcome.global
        // Evaluate the global model of every round on every site? The final one, and per-round from checkpoints.
        // Under FedBN the server's models lack every site's normalisation layers: only the sites measure them (the
        // cross-site evaluation, with their own layers).
        var rounds = outcome.rounds
        let personal = federation.personalization != .none
        for i in rounds.indices where !personal {
            if let saved = outcome.roundModels[rounds[i].round] {
                let model = try saved.reordered(like: initialModel)
                for site in siteNames { rounds[i].globalScore[site] = try sites.score(model, site: site) }
            }
        }
        var comparison: [ComparisonRow] = []
        func row(_ name: String, _ kind: ComparisonRow.Kind, _ model: ParameterSet) throws -> ComparisonRow {
            var scores: [String: Double] = [:]
            for site in siteNames { scores[site] = try sites.score(model, site: site) ?? 0 }
            return ComparisonRow(
                model: name, kind: kind, scores: scores,
                mean: scores.values.reduce(0, +) / Double(max(scores.count, 1)))
        }
        let matrix = outcome.crossSite
        if personal {
            guard let matrix else {
                throw FederationError(
                    .noResults,
                    "the job keeps layers at the sites (personalization "
                        + "\(federation.personalization.rawValue)) but the federation returned no cross-site evaluation"
                )
            }
            comparison.append(
                Self.row(
                    "federated (\(federation.strategy), \(federation.personalization.rawValue))", .federated,
                    matrix.sites.map { matrix.results[CrossSiteMatrix.global]?[$0]?[sites.metric] },
                    sites: matrix.sites))
        } else {
            comparison.append(try row("federated (\(federation.strategy))", .federated, global))
        }
        if let tuned = matrix?.personalized(metric: sites.metric), let matrix {
            comparison.append(
                Self.row(
                    "personalised (fine-tuned \(federation.fineTuneEpochs) epoch(s) at each site)", .personalised,
                    tuned,
                    sites: matrix.sites))
        }
        // Save the global model as a checkpoint `tessera predict` can use.
        try sites.save(
            global, configuration: training, preprocessing: preprocessing, to: output + "/global.safetensors",
            metadata: ["strategy": federation.strategy, "rounds": String(federation.rounds)])
        if compare {
            func baseline(_ name: String, _ kind: ComparisonRow.Kind, _ trained: [String], _ what: String) throws {
                progress("baseline: \(what) (\(Self.budget(training, metric: sites.metric)))")
                let metric = StudyReportWriter.metricName(sites.metric)
                let (model, convergence) = try sites.baseline(
                    sites: trained, configuration: training, preprocessing: preprocessing
                ) { epoch, score in
                    if let score {
                        progress(
                            "  epoch \(epoch): \(metric) on set-aside training patients "
                                + String(format: "%.3f", score)
                        )
                    } else {
                        progress("  refit epoch \(epoch) on all training patients")
                    }
                }
                if let c = convergence {
                    progress(
                        "  chose \(c.bestEpoch) epoch(s) (\(String(format: "%.3f", c.bestScore))) of \(c.epochs) run; "
                            + "stopped by \(c.stoppedBy.rawValue)")
                }
                var r = try row(name, kind, model)
                r.convergence = convergence
                comparison.append(r)
            }
            for site in siteNames {
                try baseline("local only: \(site)", .localOnly, [site], "local-only training at \(site)")
            }
            try baseline(
                "centralised (pooled data)", .centralised, siteNames, "centralised training on the pooled data")
        }
        var report = StudyReport(
            strategy: federation.strategy, sites: siteNames, rounds: rounds, comparison: comparison,
            crossSite: outcome.crossSite, totalSeconds: Date().timeIntervalSince(started))
        report.metric = sites.metric
        report.learningQuality = LearningQuality(comparison, sites: siteNames)
        try StudyReportWriter.write(report, to: output)
        return report
    }
}

/// The federated rounds in this process: a coordinator and one site agent per site, over the in-process transport
/// (the same protocol the gRPC transport carries). The in-memory twin of `tessera simulate`'s processes: each site
/// has a gatekeeper with the permissive default training policy and an in-memory privacy ledger whose budget does
/// not bind (`budget`), so a DP pipeline's ε per site is measured and reported, never refused.
public struct InProcessFederation: StudyFederation {
    /// Each site's privacy budget in the simulation.
    public var budget: PrivacyBudget?

    public init() {
        budget = try? PrivacyBudget(
            totalEpsilon: 1e12, totalDelta: 0.5,
            accountingDelta: PrivacyBudget.defaultAccountingDelta)
    }

    public func federate(
        pipeline text: String, sites siteNames: [String], dataRoot: String, output: String,
        initialModel: ParameterSet, trainers: [String: any LocalTrainer],
        progress: @escaping @Sendable (String) -> Void
    ) async throws -> FederatedOutcome {
        let training = try TrainingConfiguration(yaml: text)
        let federation = try FederationConfiguration(yaml: text)
        let serverFolder = output + "/server"
        try? FileManager.default.removeItem(atPath: serverFolder)
        let store = try SQLiteCheckpointStore(folder: serverFolder)
        var job = federation.jobConfiguration(jobID: "study", sites: siteNames)
        // As the server's job factory does: the sites' gatekeepers judge the pipeline the task carries.
        job.taskConfig["pipeline"] = .string(text)
        job.modelMetadata = try CheckpointMetadata.describe(
            training, preprocessing: try PreprocessingConfiguration(yaml: text))
        let coordinator = Coordinator(
            configuration: job, initialModel: initialModel,
            strategy: federation.makeStrategy(learningRate: Double(training.optimizer.learningRate)),
            clock: ContinuousClock(), store: store)
        let evaluation =
            federation.crossSiteEvaluation
            ? try federation.crossSiteEvaluation(
                jobID: job.jobID, sites: siteNames, folder: serverFolder + "/cross-site",
                taskConfig: job.taskConfig, modelMetadata: job.modelMetadata)
            : nil
        let runner: any JobRunner =
            evaluation.map { TrainingJob(coordinator: coordinator, evaluation: $0) } ?? coordinator
        let events = await runner.observe()
        let connection = InProcessConnection(coordinator: runner)
        let frozenTrainers = trainers
        let follower = StudyProgress(metric: StudySites.metric(for: training), progress)
        let observer = Task { for await event in events { follower.handle(event) } }
        // Secure aggregation needs site certificates: an in-process run issues throw-away ones from a fresh CA.
        let credentials = federation.secureAggregation == nil ? [:] : try FederatedStudy.throwAwayCredentials(siteNames)
        let global: ParameterSet = try await withThrowingTaskGroup(of: ParameterSet?.self) { group in
            group.addTask {
                try await runner.execute()
                return await coordinator.global
            }
            for site in siteNames {
                guard let trainer = frozenTrainers[site] else { continue }
                var agent = SiteAgent(
                    site: site, connection: connection, trainer: trainer, clock: ContinuousClock(),
                    chunkScalars: 1 << 18)
                agent.secureAggregation = credentials[site]
                if let budget {
                    agent.gatekeeper = SitePrivacyGatekeeper(
                        site: site, policy: SiteTrainingPolicy(), budget: budget,
                        ledger: try PrivacyLedger(path: nil))
                }
                group.addTask {
                    _ = try await agent.run()
                    return nil
                }
            }
            var result: ParameterSet?
            for try await value in group { if let value { result = value } }
            guard let result else { throw FederationError(.noResults, "the job produced no model") }
            return result
        }
        await observer.value
        var models: [Int: ParameterSet] = [:]
        for summary in follower.summaries {
            if let saved = try? await store.loadRound(jobID: "study", round: summary.round) {
                models[summary.round] = saved
            }
        }
        var crossSite: CrossSiteMatrix?
        if let evaluation { crossSite = await evaluation.matrix }
        return FederatedOutcome(global: global, rounds: follower.summaries, roundModels: models, crossSite: crossSite)
    }
}

/// A training job's events as a study lead follows them (shared by the in-process and the process runs): one
/// progress line per event, and a summary per training round (the cross-site evaluation's steps are not rounds).
public final class StudyProgress: Sendable {
    private struct State {
        var started = Date()
        /// The round and attempt whose start was last seen.
        var current: (round: Int, attempt: Int)?
        var scores: [String: Double] = [:]
        var epsilon: [String: Double] = [:]
        var summaries: [RoundSummary] = []
        var evaluating = false
    }

    private let state = Mutex(State())
    private let progress: @Sendable (String) -> Void
    /// The metric the sites report and the summaries keep: `dice` or `auc` (`StudySites.metric`).
    public let metric: String

    public init(metric: String = "dice", _ progress: @escaping @Sendable (String) -> Void) {
        self.metric = metric
        self.progress = progress
    }

    var metricName: String { StudyReportWriter.metricName(metric) }

    /// The training rounds closed so far.
    public var summaries: [RoundSummary] { state.withLock { $0.summaries } }

    public func handle(_ event: JobEvent) {
        let evaluating = state.withLock { $0.evaluating }
        switch event {
        case .roundStarted(let r, let attempt, let sites):
            // A secure-aggregation round starts each of its stages as the same round and attempt: the round's clock,
            // Dice and ε run from its first stage.
            let repeated = state.withLock { state in
                if let current = state.current, current == (r, attempt) { return true }
                state.current = (r, attempt)
                state.started = Date()
                state.scores = [:]
                state.epsilon = [:]
                return false
            }
            if evaluating { return }
            if repeated {
                progress("  round \(r): next secure-aggregation stage at \(sites.joined(separator: ", "))")
                return
            }
            progress(
                "round \(r)\(attempt > 0 ? " (attempt \(attempt + 1))" : ""): training at "
                    + sites.joined(separator: ", ")
            )
        case .resultAccepted(_, let site, let n, let metrics):
            state.withLock {
                $0.scores[site] = metrics[metric]
                $0.epsilon[site] = metrics["dp_epsilon"]
            }
            progress(
                "  \(site): result accepted (\(n) \(metric == "auc" ? "studies" : "slices")), local validation "
                    + "\(metricName) " + (metrics[metric].map { String(format: "%.3f", $0) } ?? "-")
                    + (metrics["dp_epsilon"].map { String(format: ", ε spent on this job %.3g", $0) } ?? ""))
        case .resultRejected(_, let site, let reason):
            progress("  \(site): \(evaluating ? "" : "result rejected: ")\(reason)")
        case .siteDeclined(_, let site, let reason):
            progress("  \(site) declined: \(reason)")
        case .gracePeriodStarted(let r, let n):
            progress("  round \(r): \(n) results in, grace period started")
        case .roundClosed(let r, let participants, let reason):
            let seconds: Double = state.withLock {
                let seconds = Date().timeIntervalSince($0.started)
                if !evaluating {
                    $0.summaries.append(
                        RoundSummary(
                            round: r, participants: participants, closedBy: reason,
                            siteScore: $0.scores, globalScore: [:], seconds: seconds,
                            epsilon: $0.epsilon))
                }
                return seconds
            }
            progress(
                String(
                    format: "%@ %d closed (%@) after %.1f s", evaluating ? "  evaluation step" : "round", r, reason,
                    seconds))
        case .roundRetried(let r, _, let reason):
            progress("round \(r) retried: \(reason)")
        case .crossSiteStarted(let sites):
            state.withLock { $0.evaluating = true }
            progress("cross-site evaluation: asking \(sites.joined(separator: ", ")) for their local models")
        case .localModelReceived(let site):
            progress("  local model of \(site) received")
        case .crossSiteEvaluated(let model, let site, let metrics):
            progress(
                "  \(model) model at \(site): \(metricName) "
                    + (metrics[metric].map { String(format: "%.3f", $0) } ?? "-"))
        case .jobFinished:
            break
        case .jobFailed(let reason):
            progress("job failed: \(reason)")
        }
    }
}

extension FederatedStudy {
    /// A baseline's budget in words: "at most 40 epochs, early stopping after 6 epochs without a Dice gain above
    /// 0.001, 600 s".
    static func budget(_ training: TrainingConfiguration, metric: String) -> String {
        var parts = ["at most \(training.epochs) epochs"]
        if let e = training.earlyStopping {
            parts.append(
                "early stopping after \(e.patience) epochs without a "
                    + "\(StudyReportWriter.metricName(metric)) gain above \(e.minDelta) on set-aside training patients")
        }
        if let t = training.timeBudgetSeconds { parts.append(String(format: "time budget %.0f s", t)) }
        return parts.joined(separator: ", ") + "; then refit on all training patients for the best epoch count"
    }

    /// A comparison row from the sites' own measurements (`scores[i]` at `sites[i]`; nil ones left out of the mean).
    static func row(_ name: String, _ kind: ComparisonRow.Kind, _ scores: [Double?], sites: [String]) -> ComparisonRow {
        var byName: [String: Double] = [:]
        for (site, score) in zip(sites, scores) { byName[site] = score }
        return ComparisonRow(
            model: name, kind: kind, scores: byName, mean: byName.values.reduce(0, +) / Double(max(byName.count, 1)))
    }

    /// Site credentials from a CA made for this run only (in-process runs have no kits).
    static func throwAwayCredentials(_ sites: [String]) throws -> [String: SecureAggregationCredentials] {
        let authority = try CertificateAuthority.create(project: "tessera-in-process", validityDays: 1)
        let verifier = PeerVerifier(caCertificate: authority.certificate)
        var out: [String: SecureAggregationCredentials] = [:]
        for site in sites {
            let issued = try authority.issue(
                Participant(name: site, role: .site), project: "tessera-in-process",
                server: ServerAddress(host: "localhost", port: 1), validityDays: 1)
            var serializer = DER.Serializer()
            try serializer.serialize(issued.certificate)
            out[site] = SecureAggregationCredentials(
                identity: SigningIdentity(name: site, key: issued.privateKey, certificate: serializer.serializedBytes),
                verifier: verifier, minimumParticipants: 2)
        }
        return out
    }
}
