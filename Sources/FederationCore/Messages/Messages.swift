/// What the server asks a site to do in a round: train from the global model, evaluate a model it downloads on its
/// held-out data (cross-site evaluation), answer a statistics phase, or send its last locally trained model
/// (cross-site evaluation's first step).
public enum TaskKind: String, Sendable, Codable {
    case train, evaluate, statistics
    case submitModel = "submit_model"
}

/// Numbers a task carries to the site (learning rate, local epochs, FedProx μ, ...). Typed values, not strings.
public enum ConfigValue: Sendable, Equatable, Codable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
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

    public init(
        jobID: String, round: Int, kind: TaskKind, site: String, config: [String: ConfigValue] = [:],
        payload: [UInt8] = []
    ) {
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

    public init(
        jobID: String, round: Int, site: String, sampleCount: Int, diff: ParameterSet, metrics: [String: Double] = [:]
    ) {
        self.jobID = jobID
        self.round = round
        self.site = site
        self.sampleCount = sampleCount
        self.diff = diff
        self.metrics = metrics
    }
}
