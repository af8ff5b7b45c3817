import Foundation
import Volumes
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
    case count, sum, mean, variance, stddev
    case minimum = "min"
    case maximum = "max"
    case histogram, quantiles, frequencies
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

    public init(
        feature: String, statistics: [StatisticKind], unit: CountingUnit? = nil, bounds: [Double]? = nil,
        bins: Int? = nil, quantiles: [Double]? = nil, categories: [String]? = nil, epsilon: Double? = nil
    ) {
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

    enum CodingKeys: String, CodingKey {
        case mechanism, delta
        case minimumCount = "minimum_count"
    }

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
        case name, unit, features, privacy
        case maxRecordsPerPatient = "max_records_per_patient"
        case minimumSites = "minimum_sites"
    }

    public init(
        name: String, unit: CountingUnit = .patient, maxRecordsPerPatient: Int = 1, minimumSites: Int = 1,
        features: [FeatureQuery], privacy: QueryPrivacy = QueryPrivacy()
    ) {
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

    /// The keys each part of a query accepts; anything else is an error naming the key.
    static let schema: [String: Set<String>] = [
        "query": ["name", "unit", "max_records_per_patient", "minimum_sites", "features", "privacy"],
        "query.privacy": ["mechanism", "delta", "minimum_count"],
        "query.features[]": ["feature", "statistics", "unit", "bounds", "bins", "quantiles", "categories", "epsilon"],
    ]

    /// Parses a query: the top-level `query:` of a pipeline YAML (other sections are left to their readers), or
    /// the query itself; then `validate(limits:)`.
    /// - Throws: `.invalidQuery` naming the key (`query.features[1].bins`) for YAML errors, unknown keys, wrong
    ///   types and every check of `validate(limits:)`.
    public static func parse(
        _ yaml: String, source: String = "query",
        limits: QueryLimits = .default
    ) throws(AnalyticsError) -> StatisticsQuery {
        guard yaml.utf8.count <= limits.maxQueryBytes else {
            throw AnalyticsError(
                .invalidQuery,
                "\(source): the query is \(yaml.utf8.count) bytes, more than "
                    + "\(limits.maxQueryBytes) (limit max_query_bytes)")
        }
        let node: Node?
        do { node = try YAMLSize.compose(yaml, maxBytes: limits.maxQueryBytes) } catch {
            throw AnalyticsError(
                .invalidQuery, "\(source): \(error.problem)",
                cause: error.parserError.map { "\($0)" })
        }
        guard let root = node?.mapping else {
            throw AnalyticsError(.invalidQuery, "\(source): expected a mapping with `query:` at the top")
        }
        let body = root["query"] ?? Node.mapping(root)
        try checkKeys(body, source: source)
        let query: StatisticsQuery
        do {
            query = try YAMLDecoder().decode(StatisticsQuery.self, from: try Yams.serialize(node: body))
        } catch {
            throw AnalyticsError(.invalidQuery, "\(source): \(describe(error))", cause: "\(error)")
        }
        try query.validate(limits: limits)
        return query
    }

    static func checkKeys(_ body: Node, source: String) throws(AnalyticsError) {
        func check(_ node: Node?, _ schemaKey: String, _ path: String) throws(AnalyticsError) {
            guard let node else { return }
            guard let mapping = node.mapping, let allowed = schema[schemaKey] else {
                throw AnalyticsError(.invalidQuery, "\(source): `\(path)` must be a mapping")
            }
            for (k, _) in mapping {
                let key = k.string ?? ""
                guard allowed.contains(key) else {
                    throw AnalyticsError(
                        .invalidQuery,
                        "\(source): unknown key `\(path).\(String(key.prefix(64)))`; "
                            + "\(path) accepts: " + allowed.sorted().joined(separator: ", "))
                }
            }
        }
        try check(body, "query", "query")
        try check(body.mapping?["privacy"], "query.privacy", "query.privacy")
        guard let features = body.mapping?["features"] else { return }
        guard let list = features.sequence else {
            throw AnalyticsError(.invalidQuery, "\(source): `query.features` must be a list")
        }
        for (i, f) in list.enumerated() { try check(f, "query.features[]", "query.features[\(i)]") }
    }

    /// The query with exact repeats removed, first occurrence kept, order otherwise unchanged: statistics,
    /// category names and quantile levels. What a site answers (`StatisticsSiteSession`) whatever the server sent,
    /// so that each category is one cell, noised once. Features asked twice are not merged (`validate` refuses
    /// them): a repeated feature would be charged once per entry, so it cannot release more than it pays for.
    public func deduplicated() -> StatisticsQuery {
        var copy = self
        for i in copy.features.indices {
            copy.features[i].statistics = copy.features[i].statistics.uniqued()
            copy.features[i].categories = copy.features[i].categories?.uniqued()
            copy.features[i].quantiles = copy.features[i].quantiles?.uniqued()
        }
        return copy
    }

    /// Checks every feature against `limits` before anything is computed or charged: known name, counts and
    /// lengths, bounds finite with lower < upper and within the fixed-point range, bins, ε and δ, quantile
    /// levels, no feature asked twice with the same unit, no category or quantile level listed twice, category
    /// names trimmed and non-empty (`CategoryName.isNormalised`). Bins are a count over `bounds`, so there are
    /// no bin edges that could repeat.
    /// - Throws: `.invalidQuery` naming the key, e.g. `query.features[1].bins`.
    public func validate(limits: QueryLimits = .default) throws(AnalyticsError) {
        func fail(_ key: String, _ message: String) -> AnalyticsError {
            AnalyticsError(.invalidQuery, "`query.\(key)` \(message)")
        }
        guard !name.isEmpty, name.count <= limits.maxNameLength, !name.contains(where: \.isNewline) else {
            throw fail("name", "must be 1...\(limits.maxNameLength) characters on one line (limit max_name_length)")
        }
        guard !features.isEmpty else { throw fail("features", "asks for no feature") }
        guard features.count <= limits.maxFeatures else {
            throw fail(
                "features",
                "lists \(features.count) features, more than \(limits.maxFeatures) (limit "
                    + "max_features)")
        }
        guard (1...limits.maxRecordsPerPatient).contains(maxRecordsPerPatient) else {
            throw fail(
                "max_records_per_patient",
                "is \(maxRecordsPerPatient): must be in 1..."
                    + "\(limits.maxRecordsPerPatient) (limit max_records_per_patient)")
        }
        guard (1...limits.maxMinimumSites).contains(minimumSites) else {
            throw fail(
                "minimum_sites",
                "is \(minimumSites): must be in 1...\(limits.maxMinimumSites) "
                    + "(limit max_minimum_sites)")
        }
        guard privacy.delta >= limits.minDelta, privacy.delta <= limits.maxDelta else {
            throw fail(
                "privacy.delta",
                "is \(privacy.delta): must be in \(limits.minDelta)...\(limits.maxDelta) "
                    + "(limits min_delta, max_delta)")
        }
        guard (1...limits.maxMinimumCount).contains(privacy.minimumCount) else {
            throw fail("privacy.minimum_count", "is \(privacy.minimumCount): must be in 1...\(limits.maxMinimumCount)")
        }
        var seen: [String: Int] = [:]
        for (index, f) in features.enumerated() {
            let key = "features[\(index)]"
            guard f.feature.count <= 64 else {
                throw fail("\(key).feature", "is \(f.feature.count) characters: not a feature name")
            }
            let feature: Feature
            do { feature = try Feature(parsing: f.feature) } catch { throw fail("\(key).feature", error.message) }
            let unit = f.unit ?? unit
            if let first = seen["\(feature)/\(unit.rawValue)"] {
                throw fail(
                    "\(key)",
                    "asks for '\(f.feature)' per \(unit.rawValue) again (also "
                        + "query.features[\(first)]): ask once, with every statistic in one entry")
            }
            seen["\(feature)/\(unit.rawValue)"] = index
            guard !f.statistics.isEmpty else { throw fail("\(key).statistics", "asks for no statistic") }
            guard f.statistics.count <= StatisticKind.allCases.count,
                Set(f.statistics).count == f.statistics.count
            else {
                throw fail("\(key).statistics", "lists a statistic twice")
            }
            if let e = f.epsilon, !(e >= limits.minEpsilon && e <= limits.maxEpsilon) {
                throw fail(
                    "\(key).epsilon",
                    "is \(e): must be in \(limits.minEpsilon)...\(limits.maxEpsilon) "
                        + "(limits min_epsilon, max_epsilon)")
            }
            if unit == .voxel && !feature.needsImage {
                throw fail("\(key).unit", "'voxel' is for image features (hu-in-body, hu-in-label:N)")
            }
            if let c = f.categories {
                guard feature.isCategorical else {
                    throw fail("\(key).categories", "apply to categorical features only")
                }
                guard c.count <= limits.maxCategories else {
                    throw fail(
                        "\(key).categories",
                        "lists \(c.count) categories, more than \(limits.maxCategories) "
                            + "(limit max_categories)")
                }
                var names: [String: Int] = [:]
                for (i, name) in c.enumerated() {
                    guard name.count <= limits.maxNameLength, name != "other" else {
                        throw fail(
                            "\(key).categories[\(i)]",
                            name == "other"
                                ? "'other' is reserved (the rest)"
                                : "is \(name.count) characters, more than \(limits.maxNameLength)")
                    }
                    // Sites trim DICOM values before counting, so " GE" would never match and would stand for
                    // the same category as "GE": only names in that normal form are accepted.
                    guard CategoryName.isNormalised(name) else {
                        throw fail(
                            "\(key).categories[\(i)]",
                            "\(CheckedConversion.quoted(name)) is empty or starts "
                                + "or ends with spaces; sites trim values before counting, so write it trimmed")
                    }
                    if let first = names[name] {
                        throw fail(
                            "\(key).categories[\(i)]",
                            "\(CheckedConversion.quoted(name)) is listed twice (also "
                                + "categories[\(first)])")
                    }
                    names[name] = i
                }
            }
            if feature.isCategorical {
                let allowed: Set<StatisticKind> = [.count, .frequencies]
                if let bad = f.statistics.first(where: { !allowed.contains($0) }) {
                    throw fail(
                        "\(key).statistics",
                        "'\(bad.rawValue)' does not apply to categorical "
                            + "'\(f.feature)'; use count or frequencies")
                }
                for (name, present) in [
                    ("bounds", f.bounds != nil), ("bins", f.bins != nil),
                    ("quantiles", f.quantiles != nil),
                ] where present {
                    throw fail("\(key).\(name)", "does not apply to categorical '\(f.feature)'")
                }
                continue
            }
            if f.statistics.contains(.frequencies) {
                throw fail("\(key).statistics", "'\(f.feature)' is numeric: use histogram, not frequencies")
            }
            guard let b = f.bounds, b.count == 2 else {
                let unitName = feature.unit.isEmpty ? "its unit" : feature.unit
                throw fail(
                    "\(key).bounds",
                    "are needed: [lower, upper] in \(unitName) (they clip values and set "
                        + "the noise)")
            }
            for (i, v) in b.enumerated() where !(v.isFinite && abs(v) <= limits.maxBoundMagnitude) {
                throw fail(
                    "\(key).bounds[\(i)]",
                    "is \(v): must be finite with magnitude at most "
                        + "\(limits.maxBoundMagnitude) (limit max_bound_magnitude)")
            }
            guard b[0] < b[1] else {
                throw fail("\(key).bounds", "lower \(b[0]) must be below upper \(b[1])")
            }
            let needsHistogram = f.statistics.contains { [.histogram, .quantiles, .minimum, .maximum].contains($0) }
            if let bins = f.bins, !(1...limits.maxBins).contains(bins) {
                throw fail("\(key).bins", "is \(bins): must be in 1...\(limits.maxBins) (limit max_bins)")
            }
            if needsHistogram && f.bins == nil {
                throw fail("\(key).bins", "are needed for histogram, quantiles, min and max: 1...\(limits.maxBins)")
            }
            if let q = f.quantiles {
                guard q.count <= limits.maxQuantiles else {
                    throw fail(
                        "\(key).quantiles",
                        "lists \(q.count) levels, more than \(limits.maxQuantiles) "
                            + "(limit max_quantiles)")
                }
                var levels: [Double: Int] = [:]
                for (i, level) in q.enumerated() {
                    guard level > 0 && level < 1 else {
                        throw fail("\(key).quantiles[\(i)]", "is \(level): a level must be in (0, 1)")
                    }
                    if let first = levels[level] {
                        throw fail("\(key).quantiles[\(i)]", "\(level) is listed twice (also quantiles[\(first)])")
                    }
                    levels[level] = i
                }
            }
            if f.statistics.contains(.quantiles) && (f.quantiles ?? []).isEmpty {
                throw fail("\(key).quantiles", "are needed for the quantiles statistic: [levels]")
            }
            if unit == .voxel,
                let bad = f.statistics.first(where: { ![.histogram, .quantiles, .minimum, .maximum].contains($0) })
            {
                throw fail(
                    "\(key).statistics",
                    "with unit 'voxel' only histogram, quantiles, min and max are "
                        + "defined, not '\(bad.rawValue)'")
            }
            // The fixed-point range of secure sums, for a site of maxRecordsPerSite records (each site checks
            // again with its own count and noise before charging its ledger).
            let records = limits.maxRecordsPerSite.multipliedReportingOverflow(
                by: unit == .study || unit == .series
                    ? maxRecordsPerPatient : 1)
            let names = SiteRelease.primitiveNames(f, feature: feature, unit: unit)
            let worst = QueryLimits.worstMagnitude(
                bounds: b,
                records: records.overflow ? Int.max : records.partialValue,
                primitives: names, noise: { _ in nil })
            guard worst <= QueryLimits.largestEncodedMagnitude else {
                throw fail(
                    "\(key).bounds",
                    "[\(b[0]), \(b[1])] are too wide for the secure sums' fixed-point range: "
                        + "\(limits.maxRecordsPerSite) records (limit max_records_per_site) could sum to "
                        + "\(String(format: "%.3g", worst)), more than "
                        + "\(String(format: "%.3g", QueryLimits.largestEncodedMagnitude)); narrow the bounds")
            }
        }
    }
}

/// What a category name may look like in a query or a first-pass category list.
public enum CategoryName {
    /// The name of the rest bucket that follows the listed categories; never a listed category.
    public static let rest = "other"

    /// Non-empty, without leading or trailing whitespace (`CharacterSet.whitespaces`): the form
    /// `CohortRecord.category` gives a DICOM value (it trims the same set), so two different normalised names never
    /// count the same records.
    public static func isNormalised(_ name: String) -> Bool {
        !name.isEmpty && name.trimmingCharacters(in: .whitespaces) == name
    }
}

extension Array where Element: Hashable {
    /// The elements without repeats, first occurrence kept, in order.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

func describe(_ error: Error) -> String {
    if let e = error as? DecodingError {
        switch e {
        case .keyNotFound(let key, let ctx):
            return "missing key '\(key.stringValue)'" + path(ctx.codingPath)
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "wrong value" + path(ctx.codingPath) + ": " + ctx.debugDescription.prefix(200)
        case .dataCorrupted(let ctx):
            return "invalid value" + path(ctx.codingPath) + ": " + ctx.debugDescription.prefix(200)
        @unknown default:
            return "\(e)"
        }
    }
    return "\(error)"
}

private func path(_ keys: [CodingKey]) -> String {
    keys.isEmpty ? "" : " at " + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}
