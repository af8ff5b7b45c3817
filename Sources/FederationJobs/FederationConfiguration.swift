import FederationCore
import FederationServer
import Foundation
import Training
import Volumes
import Yams

/// The `federation:` section of a pipeline YAML: rounds, participation, strategy.
public struct FederationConfiguration: Sendable, Equatable {
    public var rounds = 4
    public var minClients = 2
    /// fedavg | fedprox | fedavgm | fedadam | fedyogi | cyclic
    public var strategy = "fedavg"
    public var localEpochs = 2
    public var proximalMu = 0.01
    public var serverLearningRate: Float = 1
    public var roundTimeoutSeconds = 1800
    public var gracePeriodSeconds = 5
    /// Retries of a round that misses min_clients by its deadline; then the job fails.
    public var maxRoundRetries = 2
    /// Site folders under the data root (empty: every sub-folder).
    public var sites: [String] = []
    /// After the last round, every site's last local model and the global model are evaluated at every site (the
    /// cross-site Dice matrix). Off by default: it sends each site's local model to the other sites.
    public var crossSiteEvaluation = false
    /// A result's weight is its reported sample count, capped here (1 … 10⁹).
    public var maxSampleCount = JobConfiguration.defaultMaxSampleCount
    /// Every value of a weight diff must be finite and within ±this (> 0, at most 10¹⁸).
    public var maxUpdateValue = Double(JobConfiguration.defaultMaxUpdateMagnitude)
    /// Client-level differential privacy (`federation.client_dp`); nil: updates are averaged by sample count,
    /// unclipped and without noise (unless the sites' own policies add DP).
    public var clientDP: ClientDPSettings?
    /// Secure aggregation of the updates (`federation.secure_aggregation`); nil: the server sees each update.
    public var secureAggregation: SecureAggregationSettings?
    /// How a round's diffs become one (`federation.robust_aggregation`): rule, norm bound, weighting, declared
    /// sample counts. Default: FedAvg's sample-weighted mean.
    public var robustAggregation = RobustAggregation()
    /// How the sites encode their updates (`federation.compression`, `federation.compression_block_size`): float32
    /// (`none`, the default), fp16, bf16 or int8 blocks, with error feedback at the site (`UpdateCompressor`).
    public var compression = UpdateEncoding.float32
    /// How the server sends the model after the first round (`federation.download_compression`,
    /// `federation.download_compression_block_size`): the whole model in float32 (`none`, the default), or the
    /// change from the model a site holds in fp16, bf16 or int8 blocks, with error feedback on the server
    /// (`ModelBroadcast`).
    public var downloadCompression = UpdateEncoding.float32
    /// Personalised federated learning (`federation.personalization`).
    public var personalization = Personalization.none
    /// Local fine-tuning after the last round (`federation.fine_tune_epochs`): each site fine-tunes the final global
    /// model on its own training data for this many epochs during the cross-site evaluation and reports the
    /// fine-tuned (personalised) model's metrics beside the global model's; 0: none.
    public var fineTuneEpochs = 0

    /// What every site keeps to itself besides its own `exclude_variables`.
    public enum Personalization: String, Sendable, Equatable, CaseIterable {
        /// Nothing more: every variable the site's filters let through is averaged.
        case none
        /// FedBN (Li et al. 2021): the model's normalisation layers (affine γ, β and batch norm's running
        /// statistics) stay at each site, which trains and evaluates with its own.
        case fedbn
    }

    public init() {}

    static let keys: Set<String> = [
        "rounds", "min_clients", "strategy", "local_epochs", "proximal_mu",
        "server_learning_rate", "round_timeout_seconds", "grace_period_seconds", "sites",
        "max_round_retries", "cross_site_evaluation", "max_sample_count",
        "max_update_value", "client_dp", "secure_aggregation", "robust_aggregation", "compression",
        "compression_block_size", "personalization", "fine_tune_epochs", "download_compression",
        "download_compression_block_size",
    ]

    /// Keys of `federation.robust_aggregation` (documented in pipelines/segmentation-unet2d.yaml).
    static let robustAggregationKeys: Set<String> = [
        "rule", "trim_fraction", "byzantine_sites", "selected", "max_norm", "median_norm_factor", "weighting",
        "declared_sample_counts",
    ]

    /// Bounds of `federation.client_dp`: clip_norm in (0, 10⁶], noise_multiplier in (0, 10³].
    static let clientDPKeys: Set<String> = ["clip_norm", "noise_multiplier", "noise"]

    /// Parses the `federation:` section (optional; defaults above) and checks it against `limits`.
    /// - Throws: `.invalidConfiguration` naming the key (`federation.sites[1]`) for unknown keys, wrong types,
    ///   values out of range and duplicate sites.
    public init(yaml: String, limits: PipelineLimits = .default) throws(FederationError) {
        let node = try Self.compose(yaml, limits: limits)
        let root = node?.mapping
        guard let section = root?["federation"] else { return }
        var compressionName = "none"
        var compressionBlockSize: Int?
        var downloadName = "none"
        var downloadBlockSize: Int?
        guard let m = section.mapping else {
            throw FederationError(.invalidConfiguration, "`federation` must be a mapping")
        }
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(.invalidConfiguration, "`federation.\(key)` \(message)")
        }
        for (k, v) in m {
            let key = k.string ?? ""
            guard Self.keys.contains(key) else {
                throw FederationError(
                    .invalidConfiguration,
                    "unknown key `federation.\(String(key.prefix(64)))`; "
                        + "known: \(Self.keys.sorted().joined(separator: ", "))")
            }
            func int(_ range: ClosedRange<Int>, _ limit: String?) throws(FederationError) -> Int {
                guard v.scalar != nil, let i = v.int, range.contains(i) else {
                    throw fail(
                        key,
                        "must be an integer in \(range.lowerBound)...\(range.upperBound)"
                            + (limit.map { " (limit \($0))" } ?? ""))
                }
                return i
            }
            func double(_ range: ClosedRange<Double>, _ limit: String) throws(FederationError) -> Double {
                guard v.scalar != nil, let d = v.float, d.isFinite, range.contains(d) else {
                    throw fail(key, "must be a number in \(range.lowerBound)...\(range.upperBound) (limit \(limit))")
                }
                return d
            }
            /// One of `UpdateEncoding.names`.
            func encodingName() throws(FederationError) -> String {
                guard let name = v.scalar?.string, UpdateEncoding.names.contains(name) else {
                    let shown = v.scalar.map { CheckedConversion.quoted($0.string) } ?? "not a name"
                    throw fail(key, "is \(shown): use \(UpdateEncoding.names.joined(separator: ", "))")
                }
                return name
            }
            let timeout = 1...limits.maxRoundTimeoutSeconds
            switch key {
            case "compression":
                compressionName = try encodingName()
            case "compression_block_size":
                compressionBlockSize = try int(UpdateEncoding.blockSizes, nil)
            case "download_compression":
                downloadName = try encodingName()
            case "download_compression_block_size":
                downloadBlockSize = try int(UpdateEncoding.blockSizes, nil)
            case "rounds": rounds = try int(1...limits.maxRounds, "max_rounds")
            case "min_clients": minClients = try int(1...limits.maxSites, "max_sites")
            case "local_epochs": localEpochs = try int(1...limits.maxEpochs, "max_epochs")
            case "fine_tune_epochs": fineTuneEpochs = try int(0...limits.maxEpochs, "max_epochs")
            case "personalization":
                let names = Personalization.allCases.map(\.rawValue)
                guard let text = v.scalar?.string, let p = Personalization(rawValue: text) else {
                    let shown = v.scalar.map { CheckedConversion.quoted($0.string) } ?? "not a name"
                    throw fail(key, "is \(shown): use \(names.joined(separator: " or "))")
                }
                personalization = p
            case "round_timeout_seconds": roundTimeoutSeconds = try int(timeout, "max_round_timeout_seconds")
            case "grace_period_seconds":
                gracePeriodSeconds = try int(0...limits.maxRoundTimeoutSeconds, "max_round_timeout_seconds")
            case "max_round_retries": maxRoundRetries = try int(0...limits.maxRoundRetries, "max_round_retries")
            case "proximal_mu": proximalMu = try double(0...limits.maxProximalMu, "max_proximal_mu")
            case "server_learning_rate":
                let d = try double(0...limits.maxServerLearningRate, "max_server_learning_rate")
                guard d > 0 else { throw fail(key, "must be > 0") }
                serverLearningRate = Float(d)
            case "strategy":
                let names = ["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "cyclic"]
                guard let s = v.scalar?.string, names.contains(s) else {
                    let shown = v.scalar.map { CheckedConversion.quoted($0.string) } ?? "not a name"
                    throw fail(key, "is \(shown): use \(names.joined(separator: ", "))")
                }
                strategy = s
            case "max_sample_count": maxSampleCount = try int(1...1_000_000_000, nil)
            case "max_update_value":
                let d = try double(0...1e18, "1e18")
                guard d > 0 else { throw fail(key, "must be > 0") }
                maxUpdateValue = d
            case "client_dp": clientDP = try Self.clientDP(v)
            case "secure_aggregation": secureAggregation = try Self.secureAggregation(v)
            case "robust_aggregation": robustAggregation = try Self.robustAggregation(v, limits: limits)
            case "cross_site_evaluation":
                guard let b = v.bool else { throw fail(key, "must be true or false") }
                crossSiteEvaluation = b
            case "sites":
                guard let seq = v.sequence else { throw fail(key, "must be a list of site names") }
                guard seq.count <= limits.maxSites else {
                    throw fail(key, "lists \(seq.count) sites, more than \(limits.maxSites) (limit max_sites)")
                }
                var names: [String] = []
                for (i, item) in seq.enumerated() {
                    guard let name = item.scalar?.string else { throw fail("sites[\(i)]", "must be a site name") }
                    names.append(name)
                }
                sites = names
            default: break
            }
        }
        if compressionBlockSize != nil, compressionName != "int8" {
            throw fail(
                "compression_block_size", "applies to compression: int8 only (compression is \(compressionName))")
        }
        compression = try UpdateEncoding(
            name: compressionName, blockSize: compressionBlockSize ?? UpdateEncoding.defaultBlockSize)
        if downloadBlockSize != nil, downloadName != "int8" {
            throw fail(
                "download_compression_block_size",
                "applies to download_compression: int8 only (download_compression is \(downloadName))")
        }
        downloadCompression = try UpdateEncoding(
            name: downloadName, blockSize: downloadBlockSize ?? UpdateEncoding.defaultBlockSize)
        try validate(limits: limits)
    }

    /// Parses `federation.client_dp`: `clip_norm` and `noise_multiplier` required, `noise` server (default) | sites.
    static func clientDP(_ node: Node) throws(FederationError) -> ClientDPSettings {
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(.invalidConfiguration, "`federation.client_dp\(key.isEmpty ? "" : "." + key)` \(message)")
        }
        guard let m = node.mapping else {
            throw fail("", "must be a mapping with clip_norm, noise_multiplier and noise")
        }
        var clip: Double?
        var multiplier: Double?
        var placement = ClientDPSettings.NoisePlacement.server
        for (k, v) in m {
            let key = k.string ?? ""
            func positive(_ maximum: Double) throws(FederationError) -> Double {
                guard v.scalar != nil, let d = v.float, d.isFinite, d > 0, d <= maximum else {
                    throw fail(key, "must be a number in (0, \(maximum)]")
                }
                return d
            }
            switch key {
            case "clip_norm": clip = try positive(1e6)
            case "noise_multiplier": multiplier = try positive(1e3)
            case "noise":
                guard let text = v.scalar?.string, let p = ClientDPSettings.NoisePlacement(rawValue: text) else {
                    throw fail(key, "must be server or sites")
                }
                placement = p
            default:
                throw fail(
                    String(key.prefix(64)),
                    "is not a key of client_dp; known: "
                        + clientDPKeys.sorted().joined(separator: ", "))
            }
        }
        guard let clip else { throw fail("clip_norm", "is required") }
        guard let multiplier else { throw fail("noise_multiplier", "is required") }
        return ClientDPSettings(clipNorm: clip, noiseMultiplier: multiplier, noise: placement)
    }

    static let secureAggregationKeys: Set<String> = [
        "threshold", "neighbours", "clip_range", "norm_bound", "weighting", "max_weight_samples",
        "stage_timeout_seconds",
    ]

    /// Parses `federation.secure_aggregation` (`true` or a mapping of `secureAggregationKeys`; ranges in
    /// `SecureAggregationSettings`).
    static func secureAggregation(_ node: Node) throws(FederationError) -> SecureAggregationSettings? {
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(
                .invalidConfiguration, "`federation.secure_aggregation\(key.isEmpty ? "" : "." + key)` \(message)")
        }
        if let b = node.bool { return b ? try SecureAggregationSettings() : nil }
        guard let m = node.mapping else { throw fail("", "must be true, false or a mapping") }
        var threshold: Int?
        var neighbours = 0
        var clipRange = 1.0
        var normBound: Double?
        var weighting = SecureAggregationSettings.Weighting.samples
        var maxWeightSamples = 1000
        var stageTimeout = 120
        for (k, v) in m {
            let key = k.string ?? ""
            func integer(_ range: ClosedRange<Int>) throws(FederationError) -> Int {
                guard v.scalar != nil, let i = v.int, range.contains(i) else {
                    throw fail(key, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return i
            }
            func positive(_ maximum: Double) throws(FederationError) -> Double {
                guard v.scalar != nil, let d = v.float, d.isFinite, d > 0, d <= maximum else {
                    throw fail(key, "must be a number in (0, \(maximum)]")
                }
                return d
            }
            switch key {
            case "threshold": threshold = try integer(2...255)
            case "neighbours": neighbours = try integer(0...254)
            case "clip_range": clipRange = try positive(1e6)
            case "norm_bound": normBound = try positive(1e6)
            case "weighting":
                guard let text = v.scalar?.string, let w = SecureAggregationSettings.Weighting(rawValue: text) else {
                    throw fail(key, "must be samples or equal")
                }
                weighting = w
            case "max_weight_samples": maxWeightSamples = try integer(1...1_000_000)
            case "stage_timeout_seconds": stageTimeout = try integer(1...86_400)
            default:
                throw fail(
                    String(key.prefix(64)),
                    "is not a key of secure_aggregation; known: "
                        + secureAggregationKeys.sorted().joined(separator: ", "))
            }
        }
        return try SecureAggregationSettings(
            threshold: threshold, neighbours: neighbours, clipRange: clipRange, normBound: normBound,
            weighting: weighting, maxWeightSamples: maxWeightSamples, stageTimeout: .seconds(stageTimeout))
    }

    /// Parses `federation.robust_aggregation` (every key optional): `rule` mean | median | trimmed_mean | krum;
    /// `trim_fraction` (trimmed_mean, required); `byzantine_sites` (krum, required) and `selected` (krum, default 1);
    /// at most one of `max_norm` (> 0, ≤ 10¹²) and `median_norm_factor` (1…1000); `weighting` samples | equal and
    /// `declared_sample_counts` (a mapping site → count in 1…10⁹), both for rule mean only. Cross-key checks
    /// (min_clients, sites, client_dp, cyclic) follow in `validate`.
    /// - Throws: `.invalidConfiguration` naming the key (`federation.robust_aggregation.trim_fraction`).
    static func robustAggregation(_ node: Node, limits: PipelineLimits) throws(FederationError) -> RobustAggregation {
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(
                .invalidConfiguration, "`federation.robust_aggregation\(key.isEmpty ? "" : "." + key)` \(message)")
        }
        guard let m = node.mapping else {
            throw fail("", "must be a mapping (keys: \(robustAggregationKeys.sorted().joined(separator: ", ")))")
        }
        var given: [String: Node] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            guard robustAggregationKeys.contains(key) else {
                throw fail(
                    String(key.prefix(64)),
                    "is not a key of robust_aggregation; known: "
                        + robustAggregationKeys.sorted().joined(separator: ", "))
            }
            given[key] = v
        }
        func number(_ key: String, _ range: ClosedRange<Double>) throws(FederationError) -> Double? {
            guard let v = given[key] else { return nil }
            guard v.scalar != nil, let d = v.float, d.isFinite, range.contains(d) else {
                throw fail(key, "must be a number in \(range.lowerBound)...\(range.upperBound)")
            }
            return d
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(FederationError) -> Int? {
            guard let v = given[key] else { return nil }
            guard v.scalar != nil, let i = v.int, range.contains(i) else {
                throw fail(key, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return i
        }
        let ruleNames = ["mean", "median", "trimmed_mean", "krum"]
        var name = "mean"
        if let v = given["rule"] {
            guard let s = v.scalar?.string, ruleNames.contains(s) else {
                let shown = v.scalar.map { CheckedConversion.quoted($0.string) } ?? "not a name"
                throw fail("rule", "is \(shown): use \(ruleNames.joined(separator: ", "))")
            }
            name = s
        }
        let ruleOf = [
            "trim_fraction": "trimmed_mean", "byzantine_sites": "krum", "selected": "krum", "weighting": "mean",
            "declared_sample_counts": "mean",
        ]
        for (key, rule) in ruleOf.sorted(by: { $0.key < $1.key }) where given[key] != nil && rule != name {
            throw fail(key, "applies to rule \(rule) only (rule is \(name))")
        }
        var settings = RobustAggregation()
        switch name {
        case "median": settings.rule = .median
        case "trimmed_mean":
            guard let beta = try number("trim_fraction", 0...0.5) else {
                throw fail("trim_fraction", "is required by rule trimmed_mean (the fraction trimmed at each end)")
            }
            settings.rule = .trimmedMean(trimFraction: beta)
        case "krum":
            guard let f = try integer("byzantine_sites", 0...limits.maxSites) else {
                throw fail("byzantine_sites", "is required by rule krum (f, the sites assumed Byzantine)")
            }
            settings.rule = .krum(byzantineSites: f, selected: try integer("selected", 1...limits.maxSites) ?? 1)
        default: settings.rule = .mean
        }
        let fixed = try number("max_norm", 0...1e12)
        let factor = try number("median_norm_factor", 1...1000)
        switch (fixed, factor) {
        case (let bound?, nil): settings.normBound = .fixed(bound)
        case (nil, let factor?): settings.normBound = .medianFactor(factor)
        case (nil, nil): settings.normBound = nil
        case (_?, _?): throw fail("max_norm", "and median_norm_factor exclude each other: give one")
        }
        if let v = given["weighting"] {
            let names = RobustAggregation.Weighting.allCases.map(\.rawValue)
            guard let s = v.scalar?.string, let w = RobustAggregation.Weighting(rawValue: s) else {
                throw fail("weighting", "must be \(names.joined(separator: " or "))")
            }
            settings.weighting = w
        }
        if let v = given["declared_sample_counts"] {
            guard let counts = v.mapping else {
                throw fail("declared_sample_counts", "must be a mapping of site name to sample count")
            }
            guard counts.count <= limits.maxSites else {
                throw fail(
                    "declared_sample_counts",
                    "lists \(counts.count) sites, more than \(limits.maxSites) (limit max_sites)")
            }
            for (k, c) in counts {
                let site = k.string ?? ""
                let key = "declared_sample_counts.\(String(site.prefix(64)))"
                if let problem = siteNameProblem(site) { throw fail(key, "is not a site name: \(problem)") }
                guard c.scalar != nil, let n = c.int, (1...1_000_000_000).contains(n) else {
                    throw fail(key, "must be an integer in 1...1000000000")
                }
                settings.declaredSampleCounts[site] = n
            }
        }
        return settings
    }

    /// The pipeline's root node, read with `YAMLSize.compose` (size, nesting, expanded size and duplicate keys
    /// checked), refusals as `.invalidConfiguration`.
    static func compose(_ yaml: String, limits: PipelineLimits) throws(FederationError) -> Node? {
        do { return try YAMLSize.compose(yaml, maxBytes: limits.maxPipelineBytes) } catch {
            if let parserError = error.parserError {
                throw FederationError(.invalidConfiguration, "the pipeline is not valid YAML", cause: "\(parserError)")
            }
            throw FederationError(.invalidConfiguration, "the pipeline is refused: \(error.problem)")
        }
    }

    /// Checks the values against `limits` and each other: site names (as `tessera provision` issues them, each
    /// once), min_clients ≤ sites, grace period ≤ round timeout.
    /// - Throws: `.invalidConfiguration` naming the key.
    public func validate(limits: PipelineLimits = .default) throws(FederationError) {
        func fail(_ key: String, _ message: String) -> FederationError {
            FederationError(.invalidConfiguration, "`federation.\(key)` \(message)")
        }
        let ranges: [(String, Int, ClosedRange<Int>)] = [
            ("rounds", rounds, 1...limits.maxRounds), ("min_clients", minClients, 1...limits.maxSites),
            ("local_epochs", localEpochs, 1...limits.maxEpochs),
            ("fine_tune_epochs", fineTuneEpochs, 0...limits.maxEpochs),
            ("round_timeout_seconds", roundTimeoutSeconds, 1...limits.maxRoundTimeoutSeconds),
            ("grace_period_seconds", gracePeriodSeconds, 0...limits.maxRoundTimeoutSeconds),
            ("max_round_retries", maxRoundRetries, 0...limits.maxRoundRetries),
        ]
        for (key, value, range) in ranges where !range.contains(value) {
            throw fail(key, "is \(value): must be in \(range.lowerBound)...\(range.upperBound)")
        }
        guard sites.count <= limits.maxSites else {
            throw fail("sites", "lists \(sites.count) sites, more than \(limits.maxSites) (limit max_sites)")
        }
        var seen: [String: Int] = [:]
        for (i, name) in sites.enumerated() {
            if let problem = Self.siteNameProblem(name) {
                throw fail("sites[\(i)]", "\(CheckedConversion.quoted(name)) \(problem)")
            }
            if let first = seen[name] {
                throw fail("sites[\(i)]", "\(CheckedConversion.quoted(name)) is listed twice (also sites[\(first)])")
            }
            seen[name] = i
        }
        guard proximalMu.isFinite, (0...limits.maxProximalMu).contains(proximalMu) else {
            throw fail("proximal_mu", "is \(proximalMu): must be in 0...\(limits.maxProximalMu)")
        }
        let rate = Double(serverLearningRate)
        guard rate.isFinite, rate > 0, rate <= limits.maxServerLearningRate else {
            throw fail("server_learning_rate", "is \(rate): must be in (0, \(limits.maxServerLearningRate)]")
        }
        try robustAggregation.validate(
            minClients: minClients, sites: sites, clientDP: clientDP != nil, onePerRound: strategy == "cyclic")
        // Secure aggregation hides single diffs: the rules (and server norm bounds) that read them are refused with it;
        // norm bounding at the site (`secure_aggregation.norm_bound`) is the compatible defence.
        try robustAggregation.checkCompatible(secureAggregation: secureAggregation != nil)
        // The personalised models live at the sites: only the sites' evaluation of the global model (with their own
        // normalisation layers, fine-tuned) measures them.
        if personalization != .none && !crossSiteEvaluation {
            throw fail(
                "personalization",
                "is \(personalization.rawValue), which needs cross_site_evaluation: true (the global model lacks each "
                    + "site's own layers: the sites evaluate it with theirs)")
        }
        if fineTuneEpochs > 0 && !crossSiteEvaluation {
            throw fail(
                "fine_tune_epochs",
                "is \(fineTuneEpochs), which needs cross_site_evaluation: true (the sites fine-tune the global model "
                    + "and report both models when they evaluate it)")
        }
        guard gracePeriodSeconds <= roundTimeoutSeconds else {
            throw fail(
                "grace_period_seconds",
                "is \(gracePeriodSeconds): must not exceed round_timeout_seconds "
                    + "(\(roundTimeoutSeconds))")
        }
        if compression != .float32 {
            // Masked sums are exact arithmetic on 32-bit words: a site's quantised values would have to be masked in
            // another ring, and the server could not decode what it never sees alone.
            guard secureAggregation == nil else {
                throw fail(
                    "compression",
                    "is \(compression.name), which secure_aggregation cannot carry (masked vectors are 32-bit words "
                        + "summed exactly): use compression: none with secure_aggregation")
            }
            // The server checks each clipped diff against clip_norm; quantisation and error feedback move the norm.
            guard clientDP?.noise != .server else {
                throw fail(
                    "compression",
                    "is \(compression.name), which would move each diff's norm past client_dp.clip_norm that the "
                        + "server checks: use client_dp noise: sites, or compression: none")
            }
        }
        if secureAggregation != nil {
            guard strategy != "cyclic" else {
                throw fail("secure_aggregation", "cannot hide one site's update in a cyclic round (one site per round)")
            }
            guard minClients >= 2 else { throw fail("secure_aggregation", "needs min_clients ≥ 2") }
            guard clientDP?.noise != .server else {
                throw fail(
                    "client_dp.noise",
                    "is server, which needs each site's clipped update; with secure_aggregation use noise: sites")
            }
        }
    }

    /// Checks that the model has what `personalization` keeps at the sites.
    /// - Throws: `.invalidConfiguration` for FedBN with a U-Net without normalisation layers (nothing would stay
    ///   local).
    public func checkPersonalization(of model: TrainingConfiguration.Model) throws(FederationError) {
        if personalization == .fedbn && !model.isClassifier && model.normalization == .none {
            throw FederationError(
                .invalidConfiguration,
                "`federation.personalization` is fedbn but the \(model.architecture) has no normalisation layers to "
                    + "keep at the sites: set `model.norm: instance`")
        }
    }

    /// Why `name` cannot be a site (a participant name of `tessera provision`: `[A-Za-z0-9._@-]`, 1–64
    /// characters, not starting with `.` or `-`), or nil.
    static func siteNameProblem(_ name: String) -> String? {
        if name.isEmpty || name.count > 64 { return "must be 1-64 characters" }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "must not start with '.' or '-'" }
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || "._@-".unicodeScalars
                    .contains($0)
        }
        return allowed ? nil : "may contain only letters, digits, '.', '_', '@' and '-'"
    }

    /// The strategy object for the configured name.
    public func makeStrategy(learningRate: Double) -> any Strategy {
        let base = FedAvg(localEpochs: localEpochs, learningRate: learningRate, serverLearningRate: serverLearningRate)
        switch strategy {
        case "fedprox": return FedProx(mu: proximalMu, base: base)
        case "fedavgm":
            return FedOpt(optimizer: ServerOptimizer(kind: .fedAvgM, learningRate: serverLearningRate), base: base)
        case "fedadam":
            return FedOpt(
                optimizer: ServerOptimizer(kind: .fedAdam, learningRate: serverLearningRate * 0.01), base: base)
        case "fedyogi":
            return FedOpt(
                optimizer: ServerOptimizer(kind: .fedYogi, learningRate: serverLearningRate * 0.01), base: base)
        case "cyclic": return CyclicWeightTransfer(base: base)
        default: return base
        }
    }
}

extension FederationConfiguration {
    /// The pipeline with `federation.sites` set to `sites` (the server needs the list; a simulation takes it from
    /// the data folders when the pipeline has none). Other keys are kept; comments are not.
    public static func pipeline(_ yaml: String, withSites sites: [String]) throws(FederationError) -> String {
        do {
            guard var root = try Yams.compose(yaml: yaml)?.mapping else {
                throw FederationError(.invalidConfiguration, "the pipeline is not a YAML mapping")
            }
            var section = root["federation"]?.mapping ?? Node.Mapping([])
            section["sites"] = Node.sequence(Node.Sequence(sites.map { Node($0) }))
            root["federation"] = Node.mapping(section)
            return try Yams.serialize(node: Node.mapping(root))
        } catch let error as FederationError {
            throw error
        } catch {
            throw FederationError(.invalidConfiguration, "the pipeline is not valid YAML", cause: "\(error)")
        }
    }
}
