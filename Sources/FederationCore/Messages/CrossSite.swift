/// The result of cross-site evaluation: every model (the final global model and each site's last local model)
/// evaluated on every site's held-out data. Written by the server as `cross-site.json` among the job's files.
public struct CrossSiteMatrix: Sendable, Codable, Equatable {
    /// The name of the global model in `models`.
    public static let global = "global"

    public var jobID: String
    /// "global", then the sites whose local model arrived, in the order of `sites`.
    public var models: [String]
    /// The sites asked to evaluate.
    public var sites: [String]
    /// `results[model][site]`: the metrics the site reported (Dice per class, mean Dice, patients evaluated).
    public var results: [String: [String: [String: Double]]]
    /// Why a model or an evaluation is missing: "model" or "model@site" → reason.
    public var missing: [String: String]

    public init(
        jobID: String, models: [String] = [], sites: [String], results: [String: [String: [String: Double]]] = [:],
        missing: [String: String] = [:]
    ) {
        self.jobID = jobID
        self.models = models
        self.sites = sites
        self.results = results
        self.missing = missing
    }

    /// One metric as a table: a row per model, a column per site; nil where the evaluation is missing.
    public func table(metric: String) -> [[Double?]] {
        models.map { model in sites.map { site in results[model]?[site]?[metric] } }
    }
}
