import FederationCore
import FederationServer
import Foundation
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

    public init() {}

    static let keys: Set<String> = ["rounds", "min_clients", "strategy", "local_epochs", "proximal_mu",
                                    "server_learning_rate", "round_timeout_seconds", "grace_period_seconds", "sites",
                                    "max_round_retries", "cross_site_evaluation"]

    public init(yaml: String) throws(FederationError) {
        let root: Node.Mapping?
        do { root = try Yams.compose(yaml: yaml)?.mapping } catch {
            throw FederationError(.invalidConfiguration, "the pipeline is not valid YAML", cause: "\(error)")
        }
        guard let section = root?["federation"] else { return }
        guard let m = section.mapping else { throw FederationError(.invalidConfiguration, "`federation` must be a mapping") }
        for (k, v) in m {
            let key = k.string ?? ""
            guard Self.keys.contains(key) else {
                throw FederationError(.invalidConfiguration, "unknown key `federation.\(key)`; known: \(Self.keys.sorted().joined(separator: ", "))")
            }
            func int(_ min: Int) throws(FederationError) -> Int {
                guard let i = v.int, i >= min else { throw FederationError(.invalidConfiguration, "`federation.\(key)` must be an integer ≥ \(min)") }
                return i
            }
            switch key {
            case "rounds": rounds = try int(1)
            case "min_clients": minClients = try int(1)
            case "local_epochs": localEpochs = try int(1)
            case "round_timeout_seconds": roundTimeoutSeconds = try int(1)
            case "grace_period_seconds": gracePeriodSeconds = try int(0)
            case "max_round_retries": maxRoundRetries = try int(0)
            case "proximal_mu":
                guard let d = v.float, d >= 0 else { throw FederationError(.invalidConfiguration, "`federation.proximal_mu` must be ≥ 0") }
                proximalMu = d
            case "server_learning_rate":
                guard let d = v.float, d > 0 else { throw FederationError(.invalidConfiguration, "`federation.server_learning_rate` must be > 0") }
                serverLearningRate = Float(d)
            case "strategy":
                let s = v.string ?? ""
                guard ["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "cyclic"].contains(s) else {
                    throw FederationError(.invalidConfiguration, "`federation.strategy` '\(s)': use fedavg, fedprox, fedavgm, fedadam, fedyogi or cyclic")
                }
                strategy = s
            case "cross_site_evaluation":
                guard let b = v.bool else {
                    throw FederationError(.invalidConfiguration, "`federation.cross_site_evaluation` must be true or false")
                }
                crossSiteEvaluation = b
            case "sites":
                guard let seq = v.sequence else { throw FederationError(.invalidConfiguration, "`federation.sites` must be a list") }
                sites = seq.compactMap(\.string)
            default: break
            }
        }
    }

    /// The strategy object for the configured name.
    public func makeStrategy(learningRate: Double) -> any Strategy {
        let base = FedAvg(localEpochs: localEpochs, learningRate: learningRate, serverLearningRate: serverLearningRate)
        switch strategy {
        case "fedprox": return FedProx(mu: proximalMu, base: base)
        case "fedavgm": return FedOpt(optimizer: ServerOptimizer(kind: .fedAvgM, learningRate: serverLearningRate), base: base)
        case "fedadam": return FedOpt(optimizer: ServerOptimizer(kind: .fedAdam, learningRate: serverLearningRate * 0.01), base: base)
        case "fedyogi": return FedOpt(optimizer: ServerOptimizer(kind: .fedYogi, learningRate: serverLearningRate * 0.01), base: base)
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
