/// The result of cross-site evaluation: every model (the final global model and each site's last local model)
/// evaluated on every site's held-out data. Written by the server as `cross-site.json` among the job's files.
public struct CrossSiteMatrix: Sendable, Codable, Equatable {
    /// The name of the global model in `models`.
    public static let global = "global"
    /// Prefix of the metrics a site reports for its personalised model (the final global model fine-tuned at the
    /// site, `federation.fine_tune_epochs`) beside the global model's: `personalized_dice` in `results["global"]`.
    public static let personalizedPrefix = "personalized_"

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

    /// The personalised models' `metric` per site (each site's fine-tuned global model, evaluated at that site), in
    /// the order of `sites`; nil when the job fine-tunes nothing, else nil where a site reported none.
    public func personalized(metric: String) -> [Double?]? {
        let row = sites.map { results[Self.global]?[$0]?[Self.personalizedPrefix + metric] }
        return row.allSatisfy { $0 == nil } ? nil : row
    }
}
