import FederationCore
import Foundation
import Volumes
import Yams

/// What a site trains, whatever a job asks: `training-policy.yaml` in the site's kit, read by `tessera client`,
/// never sent by the server and never weakened by a pipeline. A task that breaks it is declined at the site with
/// the reason, which the server shows the admin (`siteDeclined` events, the job's failure reason).
///
/// ```yaml
/// architectures: [unet2d]          # model.architecture values the site trains (absent: any)
/// max_parameters: 2000000          # largest model, counted from the pipeline's model section
/// max_local_epochs: 4              # local epochs of one round (federation.local_epochs)
/// max_rounds: 50                   # federation.rounds
/// allow_isolating_rounds: false    # cyclic strategy, or rounds that may close with fewer than
/// min_participants: 3              #   min_participants results (federation.min_clients): either shows the server
///                                  #   one site's update alone
/// require_dp: true                 # every update must carry DP-SGD or client-level DP
/// min_noise_multiplier: 0.8        # smallest noise multiplier accepted (DP-SGD σ, or client DP's as this site
///                                  #   counts it: z, or z/√min_clients when the sites add the noise)
/// max_epsilon_per_job: 8           # ε (at the site's accounting δ) one job may spend here
/// share_local_model: false         # send the local model for cross-site evaluation
/// max_evaluations_per_hour: 20     # evaluate tasks (each is a Dice measurement on this site's patients)
/// allowed_submitters: [lead@study] # admins (certificate names) whose jobs the site takes (absent: any)
/// ```
///
/// Trust: the site checks the pipeline it is sent and the task's settings. A server that lied about them (sent one
/// pipeline and ran another strategy) is outside what a site can check alone; secure aggregation closes the
/// isolation part of that gap.
public struct SiteTrainingPolicy: Sendable, Equatable {
    public static let fileName = "training-policy.yaml"

    public var architectures: [String]?
    public var maxParameters: Int?
    public var maxLocalEpochs: Int?
    public var maxRounds: Int?
    public var allowIsolatingRounds = true
    public var minParticipants = 1
    public var requireDP = false
    public var minNoiseMultiplier: Double?
    public var maxEpsilonPerJob: Double?
    public var shareLocalModel = true
    public var maxEvaluationsPerHour: Int?
    public var allowedSubmitters: [String]?

    public init() {}

    static let keys: Set<String> = [
        "architectures", "max_parameters", "max_local_epochs", "max_rounds", "allow_isolating_rounds",
        "min_participants", "require_dp", "min_noise_multiplier", "max_epsilon_per_job", "share_local_model",
        "max_evaluations_per_hour", "allowed_submitters",
    ]

    /// Largest policy file read, bytes.
    public static let maxBytes = 65_536

    /// The kit's policy; the permissive default (`init()`) when the kit has none.
    /// - Throws: `.invalidConfiguration` naming the key that is wrong.
    public static func load(kitFolder: String) throws(FederationError) -> SiteTrainingPolicy {
        let path = kitFolder + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return SiteTrainingPolicy() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FederationError(.invalidConfiguration, "cannot read \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func parse(_ yaml: String, source: String = fileName) throws(FederationError)
        -> SiteTrainingPolicy
    {
        let root: Node?
        do { root = try YAMLSize.compose(yaml, maxBytes: maxBytes) } catch {
            throw FederationError(.invalidConfiguration, "\(source) is refused: \(error.problem)")
        }
        var policy = SiteTrainingPolicy()
        guard let root else { return policy }
        guard let mapping = root.mapping else {
            throw FederationError(.invalidConfiguration, "\(source) must be a mapping")
        }
        for (k, v) in mapping {
            let key = k.string ?? ""
            func fail(_ message: String) -> FederationError {
                FederationError(.invalidConfiguration, "\(source): `\(String(key.prefix(64)))` \(message)")
            }
            func int(_ range: ClosedRange<Int>) throws(FederationError) -> Int {
                guard v.scalar != nil, let i = v.int, range.contains(i) else {
                    throw fail("must be an integer in \(range.lowerBound)...\(range.upperBound)")
                }
                return i
            }
            func positive(_ maximum: Double) throws(FederationError) -> Double {
                guard v.scalar != nil, let d = v.float, d.isFinite, d > 0, d <= maximum else {
                    throw fail("must be a number in (0, \(maximum)]")
                }
                return d
            }
            func bool() throws(FederationError) -> Bool {
                guard let b = v.bool else { throw fail("must be true or false") }
                return b
            }
            func names() throws(FederationError) -> [String] {
                guard let seq = v.sequence, seq.count <= 1024 else { throw fail("must be a list (at most 1024)") }
                var out: [String] = []
                for item in seq {
                    guard let s = item.scalar?.string, !s.isEmpty, s.count <= 256 else {
                        throw fail("must list non-empty names")
                    }
                    out.append(s)
                }
                return out
            }
            switch key {
            case "architectures": policy.architectures = try names()
            case "max_parameters": policy.maxParameters = try int(1...1_000_000_000_000)
            case "max_local_epochs": policy.maxLocalEpochs = try int(1...1_000_000)
            case "max_rounds": policy.maxRounds = try int(1...1_000_000)
            case "allow_isolating_rounds": policy.allowIsolatingRounds = try bool()
            case "min_participants": policy.minParticipants = try int(1...10_000)
            case "require_dp": policy.requireDP = try bool()
            case "min_noise_multiplier": policy.minNoiseMultiplier = try positive(1e3)
            case "max_epsilon_per_job": policy.maxEpsilonPerJob = try positive(1e6)
            case "share_local_model": policy.shareLocalModel = try bool()
            case "max_evaluations_per_hour": policy.maxEvaluationsPerHour = try int(0...1_000_000)
            case "allowed_submitters": policy.allowedSubmitters = try names()
            default:
                throw FederationError(
                    .invalidConfiguration,
                    "\(source): unknown key `\(String(key.prefix(64)))`; "
                        + "known: \(keys.sorted().joined(separator: ", "))")
            }
        }
        return policy
    }
}
