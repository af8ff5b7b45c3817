import Foundation
import Yams

/// The unit one record stands for. DP protects one patient whatever the unit: with study or series units a
/// patient contributes at most `maxRecordsPerPatient` records, and sensitivities are multiplied by that cap.
public enum CountingUnit: String, Codable, Sendable {
    case patient, study, series
    /// Image features only: the HU distribution over voxels, each patient's histogram normalised to weight 1 (so
    /// one patient changes the released histogram by at most 1 in L1 norm).
    case voxel
}

/// A statistic a query can ask for.
public enum StatisticKind: String, Codable, Sendable, CaseIterable {
    case count, sum, mean, variance, stddev, minimum = "min", maximum = "max", histogram, quantiles, frequencies
}

/// Noise mechanism (Dwork & Roth, *The Algorithmic Foundations of Differential Privacy*, 2014: §3.3 Laplace,
/// Appendix A / Theorem 3.22 Gaussian).
public enum NoiseMechanism: String, Codable, Sendable {
    case laplace, gaussian, none
}

/// One feature of a query, as written in the query YAML.
public struct FeatureQuery: Codable, Sendable, Equatable {
    /// Feature name: a DICOM keyword, `hu-in-body`, `hu-in-label:N` or `volume-ml:N`.
    public var feature: String
    public var statistics: [StatisticKind]
    /// Overrides the query's counting unit for this feature.
    public var unit: CountingUnit?
    /// Clipping bounds [lower, upper] in the feature's unit; required for numeric features. Values are clipped
    /// into them, and they set the sensitivity of sums, means and variances, and the histogram range.
    public var bounds: [Double]?
    /// Number of equal-width histogram bins over `bounds` (global bins: every site uses the same edges).
    public var bins: Int?
    /// Quantile levels in (0, 1), read from the noisy histogram.
    public var quantiles: [Double]?
    /// Categories to report for a categorical feature; others are counted as "other". Without a list, category
    /// names are revealed only when the site policy allows it.
    public var categories: [String]?
    /// ε spent on this feature, split evenly over the noisy primitives it needs (count, sum, squared deviations,
    /// histogram or frequencies).
    public var epsilon: Double?

    public init(feature: String, statistics: [StatisticKind], unit: CountingUnit? = nil, bounds: [Double]? = nil,
                bins: Int? = nil, quantiles: [Double]? = nil, categories: [String]? = nil, epsilon: Double? = nil) {
        self.feature = feature
        self.statistics = statistics
        self.unit = unit
        self.bounds = bounds
        self.bins = bins
        self.quantiles = quantiles
        self.categories = categories
        self.epsilon = epsilon
    }
}

/// Privacy parameters a query asks for; the site policy may only make them stricter.
public struct QueryPrivacy: Codable, Sendable, Equatable {
    public var mechanism: NoiseMechanism = .laplace
    /// δ for the Gaussian mechanism (per noisy primitive).
    public var delta: Double = 1e-6
    /// Minimum count per reported cell; the site's own minimum wins when larger.
    public var minimumCount: Int = 5
    public init() {}

    enum CodingKeys: String, CodingKey { case mechanism, delta, minimumCount = "minimum_count" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mechanism = try c.decodeIfPresent(NoiseMechanism.self, forKey: .mechanism) ?? .laplace
        delta = try c.decodeIfPresent(Double.self, forKey: .delta) ?? 1e-6
        minimumCount = try c.decodeIfPresent(Int.self, forKey: .minimumCount) ?? 5
    }
}

/// A cohort statistics query (`pipelines/cohort-statistics.yaml`).
public struct StatisticsQuery: Codable, Sendable, Equatable {
    public var name: String
    public var unit: CountingUnit = .patient
    public var maxRecordsPerPatient: Int = 1
    /// Fewest sites whose figures may make up a global result: when refusals or dropouts leave fewer, the query
    /// fails and nothing is released. With one site a "secure sum" is that site's own figure.
    public var minimumSites: Int = 1
    public var features: [FeatureQuery]
    public var privacy: QueryPrivacy = QueryPrivacy()

    enum CodingKeys: String, CodingKey {
        case name, unit, features, privacy, maxRecordsPerPatient = "max_records_per_patient"
        case minimumSites = "minimum_sites"
    }

    public init(name: String, unit: CountingUnit = .patient, maxRecordsPerPatient: Int = 1, minimumSites: Int = 1,
                features: [FeatureQuery], privacy: QueryPrivacy = QueryPrivacy()) {
        self.name = name
        self.unit = unit
        self.maxRecordsPerPatient = maxRecordsPerPatient
        self.minimumSites = minimumSites
        self.features = features
        self.privacy = privacy
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        unit = try c.decodeIfPresent(CountingUnit.self, forKey: .unit) ?? .patient
        maxRecordsPerPatient = try c.decodeIfPresent(Int.self, forKey: .maxRecordsPerPatient) ?? 1
        minimumSites = try c.decodeIfPresent(Int.self, forKey: .minimumSites) ?? 1
        features = try c.decode([FeatureQuery].self, forKey: .features)
        privacy = try c.decodeIfPresent(QueryPrivacy.self, forKey: .privacy) ?? QueryPrivacy()
    }

    /// Reads a query file: the top-level `query:` key of a pipeline YAML, or the query itself.
    public static func load(path: String) throws(AnalyticsError) -> StatisticsQuery {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalyticsError(.io, "cannot read the query file \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func parse(_ yaml: String, source: String = "query") throws(AnalyticsError) -> StatisticsQuery {
        struct Wrapper: Decodable { var query: StatisticsQuery }
        let query: StatisticsQuery
        do {
            if let wrapped = try? YAMLDecoder().decode(Wrapper.self, from: yaml) {
                query = wrapped.query
            } else {
                query = try YAMLDecoder().decode(StatisticsQuery.self, from: yaml)
            }
        } catch {
            throw AnalyticsError(.invalidQuery, "\(source): \(describe(error))")
        }
        try query.validate()
        return query
    }

    /// Checks every feature: known name, bounds and bins for numeric statistics, ε > 0, quantile levels.
    public func validate() throws(AnalyticsError) {
        guard !features.isEmpty else { throw AnalyticsError(.invalidQuery, "query '\(name)' asks for no feature") }
        guard maxRecordsPerPatient >= 1 else {
            throw AnalyticsError(.invalidQuery, "max_records_per_patient must be at least 1")
        }
        guard minimumSites >= 1 else {
            throw AnalyticsError(.invalidQuery, "minimum_sites must be at least 1, is \(minimumSites)")
        }
        guard privacy.delta > 0, privacy.delta < 1 else {
            throw AnalyticsError(.invalidQuery, "privacy.delta must be in (0, 1), is \(privacy.delta)")
        }
        guard privacy.minimumCount >= 1 else {
            throw AnalyticsError(.invalidQuery, "privacy.minimum_count must be at least 1")
        }
        for f in features {
            let feature = try Feature(parsing: f.feature)
            let where_ = "feature '\(f.feature)'"
            guard !f.statistics.isEmpty else { throw AnalyticsError(.invalidQuery, "\(where_) asks for no statistic") }
            if let e = f.epsilon, !(e > 0) || !e.isFinite {
                throw AnalyticsError(.invalidQuery, "\(where_): epsilon must be a positive number, is \(e)")
            }
            let unit = f.unit ?? unit
            if unit == .voxel && !feature.needsImage {
                throw AnalyticsError(.invalidQuery, "\(where_): unit 'voxel' is for image features (hu-in-body, hu-in-label:N)")
            }
            if feature.isCategorical {
                let allowed: Set<StatisticKind> = [.count, .frequencies]
                if let bad = f.statistics.first(where: { !allowed.contains($0) }) {
                    throw AnalyticsError(.invalidQuery, "\(where_) is categorical: '\(bad.rawValue)' does not apply; use count or frequencies")
                }
                continue
            }
            if f.statistics.contains(.frequencies) {
                throw AnalyticsError(.invalidQuery, "\(where_) is numeric: use histogram, not frequencies")
            }
            guard let b = f.bounds, b.count == 2, b[0].isFinite, b[1].isFinite else {
                throw AnalyticsError(.invalidQuery, "\(where_) needs bounds: [lower, upper] in \(feature.unit.isEmpty ? "its unit" : feature.unit) (they clip values and set the noise)")
            }
            guard b[0] < b[1] else {
                throw AnalyticsError(.invalidQuery, "\(where_): bounds lower \(b[0]) must be below upper \(b[1])")
            }
            let needsHistogram = f.statistics.contains { [.histogram, .quantiles, .minimum, .maximum].contains($0) }
            if needsHistogram {
                guard let bins = f.bins, bins >= 1, bins <= 10_000 else {
                    throw AnalyticsError(.invalidQuery, "\(where_): histogram, quantiles, min and max need bins: 1...10000")
                }
            }
            for q in f.quantiles ?? [] where !(q > 0 && q < 1) {
                throw AnalyticsError(.invalidQuery, "\(where_): quantile level \(q) must be in (0, 1)")
            }
            if f.statistics.contains(.quantiles) && (f.quantiles ?? []).isEmpty {
                throw AnalyticsError(.invalidQuery, "\(where_): quantiles needs quantiles: [levels]")
            }
            if unit == .voxel, let bad = f.statistics.first(where: { ![.histogram, .quantiles, .minimum, .maximum].contains($0) }) {
                throw AnalyticsError(.invalidQuery, "\(where_): with unit 'voxel' only histogram, quantiles, min and max are defined, not '\(bad.rawValue)'")
            }
        }
    }
}

func describe(_ error: Error) -> String {
    if let e = error as? DecodingError {
        switch e {
        case .keyNotFound(let key, let ctx):
            return "missing key '\(key.stringValue)'" + path(ctx.codingPath)
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "wrong value" + path(ctx.codingPath) + ": " + ctx.debugDescription
        case .dataCorrupted(let ctx):
            return "invalid value" + path(ctx.codingPath) + ": " + ctx.debugDescription
        @unknown default:
            return "\(e)"
        }
    }
    return "\(error)"
}

private func path(_ keys: [CodingKey]) -> String {
    keys.isEmpty ? "" : " at " + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}
