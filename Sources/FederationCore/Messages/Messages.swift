/// What the server asks a site to do in a round: train from the global model, evaluate a model it downloads on its
/// held-out data (cross-site evaluation), answer a statistics phase, or send its last locally trained model
/// (cross-site evaluation's first step).
public enum TaskKind: String, Sendable, Codable { case train, evaluate, statistics, submitModel = "submit_model" }

/// Numbers a task carries to the site (learning rate, local epochs, FedProx μ, ...). Typed values, not strings.
public enum ConfigValue: Sendable, Equatable, Codable {
    case int(Int), double(Double), bool(Bool), string(String)
}

/// One task for one site: job, round and, for training, the global model.
public struct TaskAssignment: Sendable, Equatable {
    public var jobID: String
    public var round: Int
    public var kind: TaskKind
    public var site: String
    public var config: [String: ConfigValue]
    /// Opaque task data (a statistics phase request, JSON); empty for training, whose input is the global model.
    public var payload: [UInt8]

    public init(jobID: String, round: Int, kind: TaskKind, site: String, config: [String: ConfigValue] = [:],
                payload: [UInt8] = []) {
        self.jobID = jobID
        self.round = round
        self.kind = kind
        self.site = site
        self.config = config
        self.payload = payload
    }
}

/// A site's answer to a training task: the weight diff (local − global), its sample count and metrics.
public struct ModelUpdate: Sendable, Equatable {
    public var jobID: String
    public var round: Int
    public var site: String
    /// Training examples behind the update: the FedAvg weight.
    public var sampleCount: Int
    /// local weights − global weights, same names and shapes as the global model (minus excluded variables).
    public var diff: ParameterSet
    public var metrics: [String: Double]

    public init(jobID: String, round: Int, site: String, sampleCount: Int, diff: ParameterSet, metrics: [String: Double] = [:]) {
        self.jobID = jobID
        self.round = round
        self.site = site
        self.sampleCount = sampleCount
        self.diff = diff
        self.metrics = metrics
    }
}

/// Checks the server applies before a result counts. Each failure is logged with its reason; the round goes on.
public struct ResultValidator: Sendable {
    public var jobID: String
    public var round: Int
    public var sites: Set<String>
    /// Largest accepted update payload, bytes.
    public var maxBytes: Int

    public init(jobID: String, round: Int, sites: Set<String>, maxBytes: Int) {
        self.jobID = jobID
        self.round = round
        self.sites = sites
        self.maxBytes = maxBytes
    }

    /// - Throws: `.staleRound`, `.unknownSite`, `.tooLarge`, `.shapeMismatch` or `.nonFinite`, each naming the site.
    public func validate(_ u: ModelUpdate, against global: ParameterSet) throws(FederationError) {
        guard sites.contains(u.site) else {
            throw FederationError(.unknownSite, "result from '\(u.site)', which is not a participant of job \(jobID)")
        }
        guard u.jobID == jobID, u.round == round else {
            throw FederationError(.staleRound, "result from \(u.site) is for job \(u.jobID) round \(u.round); the current "
                                  + "round is \(round) of job \(jobID): discarded")
        }
        guard u.diff.byteCount <= maxBytes else {
            throw FederationError(.tooLarge, "result from \(u.site) holds \(u.diff.byteCount) bytes, over the \(maxBytes)-byte limit")
        }
        guard u.sampleCount > 0 else {
            throw FederationError(.invalidConfiguration, "result from \(u.site) reports \(u.sampleCount) samples; FedAvg needs a positive weight")
        }
        do {
            try u.diff.checkSubset(of: global)
            try u.diff.checkFinite()
        } catch {
            throw FederationError(error.code, "result from \(u.site): \(error.message)")
        }
    }
}
