import DifferentialPrivacy
import FederatedAnalytics
import FederationClient
import FederationCore
import Foundation
import NeuralNetwork
import Training

/// The site's `SiteGatekeeper` for `tessera client`: its training policy (`SiteTrainingPolicy`, the kit's
/// `training-policy.yaml`) decides which tasks it takes; its privacy ledger (shared with statistics, the budget of
/// `site-policy.yaml`) is charged for every DP model update before it leaves, and a round that would take the site
/// past its budget, or a job past the policy's `max_epsilon_per_job`, is declined.
///
/// What an update costs (Rényi DP, composed in the ledger): DP-SGD's subsampled Gaussian mechanism over the round's
/// steps (patient-level: sampling rate q = lot size / training patients), and client-level DP's Gaussian mechanism
/// with the noise multiplier the site can count on (`ClientDPSettings.effectiveNoiseMultiplier`). An update protected
/// by both satisfies both guarantees: the order-wise minimum of the two curves is charged. An update with neither is
/// not DP and is not charged (a policy with `require_dp` declines such jobs).
///
/// Client-level DP is applied here, after the site's filters: the diff is clipped to `clip_norm`, reported with
/// weight 1, and with `noise: sites` the site adds its share of the noise (from the system's CSPRNG).
public actor SitePrivacyGatekeeper: SiteGatekeeper {
    public let site: String
    public let policy: SiteTrainingPolicy
    public let budget: PrivacyBudget
    private let ledger: PrivacyLedger
    private let limits: PipelineLimits
    private var noise: any NoiseSource
    private let now: @Sendable () -> Date
    /// When this site accepted its recent evaluate tasks (the last hour's, for `max_evaluations_per_hour`).
    private var evaluations: [Date] = []
    private var parsed: (pipeline: String, plan: Plan)?

    /// What the site reads from a job's pipeline to judge it.
    struct Plan {
        var training: TrainingConfiguration
        var federation: FederationConfiguration
        var parameters: Int?
    }

    public init(
        site: String, policy: SiteTrainingPolicy, budget: PrivacyBudget, ledger: PrivacyLedger,
        limits: PipelineLimits = .default, noise: any NoiseSource = SystemNoiseSource(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.site = site
        self.policy = policy
        self.budget = budget
        self.ledger = ledger
        self.limits = limits
        self.noise = noise
        self.now = now
    }

    static func declined(_ reason: String) -> FederationError { FederationError(.declined, reason) }

    // MARK: - Admission

    public func admit(_ task: TaskAssignment) async throws(FederationError) {
        if let allowed = policy.allowedSubmitters {
            guard case .string(let admin)? = task.config["submitted_by"] else {
                throw Self.declined(
                    "the site takes jobs only from \(allowed.joined(separator: ", ")) "
                        + "(allowed_submitters) and the task does not say who submitted it")
            }
            guard allowed.contains(admin) else {
                throw Self.declined(
                    "the site does not take jobs submitted by \(admin) (allowed_submitters: "
                        + "\(allowed.joined(separator: ", ")))")
            }
        }
        switch task.kind {
        case .train: try admitTraining(task)
        case .submitModel:
            guard policy.shareLocalModel else {
                throw Self.declined("the site's policy keeps its local models at the site (share_local_model: false)")
            }
            // With client-level DP alone, the noise is added to the diff, not to the local model: sending the model
            // would release it unprotected. (A DP-SGD model is the last charged update plus the public global model.)
            let plan = try plan(for: task)
            if plan.federation.clientDP != nil && plan.training.dpSGD == nil {
                throw Self.declined(
                    "the job's updates are protected by client-level DP, which does not cover the "
                        + "local model itself; it stays at the site")
            }
        case .evaluate:
            if let maximum = policy.maxLocalEpochs, case .int(let epochs)? = task.config["fine_tune_epochs"],
                epochs > maximum
            {
                throw Self.declined(
                    "the job asks \(epochs) epochs of local fine-tuning, more than the site's max_local_epochs "
                        + "\(maximum)")
            }
            guard let limit = policy.maxEvaluationsPerHour else { return }
            let hourAgo = now().addingTimeInterval(-3600)
            evaluations.removeAll { $0 < hourAgo }
            guard evaluations.count < limit else {
                throw Self.declined(
                    "the site evaluates at most \(limit) models an hour (max_evaluations_per_hour); "
                        + "ask again later")
            }
            evaluations.append(now())
        case .statistics: return  // the statistics handler holds queries to the site's statistics policy
        }
    }

    private func admitTraining(_ task: TaskAssignment) throws(FederationError) {
        let plan = try plan(for: task)
        let t = plan.training
        let f = plan.federation
        if let architectures = policy.architectures, !architectures.contains(t.model.architecture) {
            throw Self.declined(
                "the site trains only \(architectures.joined(separator: ", ")) (architectures), "
                    + "not \(t.model.architecture)")
        }
        if let maximum = policy.maxParameters {
            guard let count = plan.parameters, count <= maximum else {
                throw Self.declined(
                    "the model has \(plan.parameters.map(String.init) ?? "too many") parameters, more "
                        + "than the site's max_parameters \(maximum)")
            }
        }
        if let maximum = policy.maxLocalEpochs {
            let epochs: Int
            if case .int(let e)? = task.config["local_epochs"] { epochs = e } else { epochs = t.epochs }
            guard epochs <= maximum else {
                throw Self.declined(
                    "a round asks \(epochs) local epochs, more than the site's max_local_epochs "
                        + "\(maximum)")
            }
        }
        if let maximum = policy.maxRounds, f.rounds > maximum {
            throw Self.declined("the job has \(f.rounds) rounds, more than the site's max_rounds \(maximum)")
        }
        if !policy.allowIsolatingRounds {
            if f.strategy == "cyclic" {
                throw Self.declined(
                    "the cyclic strategy sends this site's update to the server alone; the site's "
                        + "policy refuses rounds that isolate its update (allow_isolating_rounds: false)")
            }
            if f.minClients < policy.minParticipants {
                throw Self.declined(
                    "federation.min_clients is \(f.minClients): a round may close with fewer than the "
                        + "\(policy.minParticipants) results the site requires (min_participants), which "
                        + "would expose its update")
            }
        }
        let sigmas = noiseMultipliers(plan)
        if policy.requireDP && sigmas.isEmpty {
            throw Self.declined(
                "the site requires differential privacy on every update (require_dp) and the job "
                    + "uses neither training.dp_sgd nor federation.client_dp")
        }
        if let minimum = policy.minNoiseMultiplier {
            for (name, sigma) in sigmas where sigma < minimum {
                throw Self.declined(
                    "\(name) gives this site a noise multiplier of \(fmt(sigma)), below its "
                        + "min_noise_multiplier \(fmt(minimum))")
            }
        }
        // Client-level DP's cost does not depend on the site's data: check the budget before training.
        if let dp = f.clientDP, t.dpSGD == nil {
            let release = try clientRelease(dp, plan: plan, task: task)
            do throws(DifferentialPrivacyError) {
                try ledger.charge(
                    site: site, release: release, budget: budget, maxJobEpsilon: policy.maxEpsilonPerJob,
                    checkOnly: true)
            } catch {
                throw Self.declined(error.message)
            }
        }
    }

    /// The noise multipliers the job gives this site, by mechanism.
    private func noiseMultipliers(_ plan: Plan) -> [(String, Double)] {
        var out: [(String, Double)] = []
        if let dp = plan.training.dpSGD { out.append(("training.dp_sgd", dp.noiseMultiplier)) }
        if let dp = plan.federation.clientDP {
            out.append(
                (
                    "federation.client_dp",
                    dp.effectiveNoiseMultiplier(
                        minClients: plan.federation.minClients,
                        secureAggregation: plan.federation.secureAggregation != nil)
                ))
        }
        return out
    }

    private func plan(for task: TaskAssignment) throws(FederationError) -> Plan {
        guard case .string(let pipeline)? = task.config["pipeline"] else {
            throw FederationError(.invalidConfiguration, "the task carries no pipeline")
        }
        if let parsed, parsed.pipeline == pipeline { return parsed.plan }
        let training: TrainingConfiguration
        do { training = try TrainingConfiguration(yaml: pipeline, limits: limits) } catch {
            throw FederationError(.invalidConfiguration, "the job's pipeline is refused: \(error.message)")
        }
        let federation = try FederationConfiguration(yaml: pipeline, limits: limits)
        let m = training.model
        let count = m.parameterCount
        let plan = Plan(training: training, federation: federation, parameters: count)
        parsed = (pipeline, plan)
        return plan
    }

    // MARK: - Release

    public func release(_ update: ModelUpdate, task: TaskAssignment) async throws(FederationError) -> ModelUpdate {
        let plan = try plan(for: task)
        var out = update
        var releases: [PrivacyLedger.Release] = []
        if let dp = plan.federation.clientDP {
            try out.diff.clipL2Norm(to: dp.clipNorm)
            out.sampleCount = 1
            if dp.noise == .sites {
                let sigma = dp.siteNoiseStandardDeviation(minClients: plan.federation.minClients)
                var source = noise
                try out.diff.updateValues { _, values throws(FederationError) in
                    for i in values.indices { values[i] += Float(Calibration.gaussian(sigma: sigma, using: &source)) }
                }
                noise = source
            }
            releases.append(try clientRelease(dp, plan: plan, task: task))
        }
        if let dp = plan.training.dpSGD {
            guard let steps = update.metrics["dp_sgd_steps"].flatMap({ Int(exactly: $0) }),
                let rate = update.metrics["dp_sgd_sampling_rate"]
            else {
                throw FederationError(
                    .invalidConfiguration,
                    "the trainer did not report its DP-SGD steps and "
                        + "sampling rate; the update is withheld")
            }
            let curve: RDPCurve
            do throws(DifferentialPrivacyError) {
                curve = try RDPAccountant.subsampledGaussian(
                    samplingRate: rate, noiseMultiplier: dp.noiseMultiplier,
                    steps: steps)
            } catch {
                throw FederationError(.invalidConfiguration, "cannot account the round's DP-SGD: \(error.message)")
            }
            releases.append(
                PrivacyLedger.Release(
                    job: task.jobID, round: task.round, mechanism: "dp-sgd",
                    parameters: "σ=\(fmt(dp.noiseMultiplier)) C=\(fmt(dp.maxGradNorm)) q=\(fmt(rate)) steps=\(steps)",
                    curve: curve))
        }
        guard var release = releases.first else { return out }
        for other in releases.dropFirst() {
            release = PrivacyLedger.Release(
                job: release.job, round: release.round,
                mechanism: release.mechanism + "+" + other.mechanism,
                parameters: release.parameters + "; " + other.parameters,
                curve: release.curve.minimum(other.curve))
        }
        let balance: PrivacyLedger.Balance
        do throws(DifferentialPrivacyError) {
            balance = try ledger.charge(
                site: site, release: release, budget: budget,
                maxJobEpsilon: policy.maxEpsilonPerJob)
        } catch {
            throw Self.declined(error.message)
        }
        // What the site's egress log and the admin see (EgressPrivacy reads the dp_* keys).
        if let dp = plan.training.dpSGD { out.metrics["dp_clip_norm"] = dp.maxGradNorm }
        if let dp = plan.federation.clientDP {
            let minClients = plan.federation.minClients
            out.metrics["client_dp_noise_multiplier"] = dp.effectiveNoiseMultiplier(
                minClients: minClients, secureAggregation: plan.federation.secureAggregation != nil)
            out.metrics["dp_clip_norm"] = dp.clipNorm
        }
        out.metrics["dp_epsilon_charged"] = balance.charged
        out.metrics["dp_epsilon"] = balance.jobEpsilon
        out.metrics["dp_epsilon_site_total"] = balance.spent.epsilon
        out.metrics["dp_delta"] = budget.accountingDelta
        return out
    }

    private func clientRelease(_ dp: ClientDPSettings, plan: Plan, task: TaskAssignment) throws(FederationError)
        -> PrivacyLedger.Release
    {
        let z = dp.effectiveNoiseMultiplier(
            minClients: plan.federation.minClients, secureAggregation: plan.federation.secureAggregation != nil)
        let curve: RDPCurve
        do throws(DifferentialPrivacyError) { curve = try RDPAccountant.gaussian(noiseMultiplier: z) } catch {
            throw FederationError(.invalidConfiguration, "cannot account client-level DP: \(error.message)")
        }
        return PrivacyLedger.Release(
            job: task.jobID, round: task.round, mechanism: "client-dp",
            parameters: "z=\(fmt(z)) S=\(fmt(dp.clipNorm)) noise=\(dp.noise.rawValue)",
            curve: curve)
    }
}

private func fmt(_ v: Double) -> String { String(format: "%.4g", v) }
