import DifferentialPrivacy
import Foundation
import Volumes
import Yams

/// Upper bounds on what a statistics query may ask for: the one place `FederatedAnalytics` keeps them. The server
/// checks a query against its limits when it is submitted; each site checks it again with its own limits, and
/// against its own record count and noise, before its ledger is charged (`StatisticsSiteSession`), so nothing a
/// query asks for can trap or exhaust memory after the budget was spent.
///
/// The fixed-point encoding of secure sums (`FixedPoint`, 2⁻²⁰ resolution in a signed 64-bit word) holds values up
/// to 2⁴³ ≈ 8.8e12. A site's largest value is its sum of squared deviations, up to records × (U − L)², plus noise;
/// `maxRecordsPerSite` is the record count assumed at submission (each site uses its own count). With the default
/// 100 000 records, a variance needs U − L up to about 6 600 (HU bounds [−1024, 3071] fit).
///
/// Raise the limits in the server's and each site's `limits.yaml` (section `query:`, keys in snake case, see
/// `docs/limits-pipeline.md`).
public struct QueryLimits: Sendable, Equatable {
    /// Size of the query text, bytes.
    public var maxQueryBytes = 1_048_576
    /// Features of one query.
    public var maxFeatures = 64
    /// Histogram bins of one feature.
    public var maxBins = 10_000
    /// Categories listed for one categorical feature, and the length of each name (characters).
    public var maxCategories = 1000
    public var maxNameLength = 256
    /// Quantile levels of one feature.
    public var maxQuantiles = 99
    /// |lower| and |upper| of a feature's bounds.
    public var maxBoundMagnitude = 1e9
    /// Records a site is assumed to hold at submission, for the fixed-point range check.
    public var maxRecordsPerSite = 100_000
    /// Range of a feature's ε.
    public var minEpsilon = 1e-3
    public var maxEpsilon = 100.0
    /// Range of `privacy.delta`.
    public var minDelta = 1e-20
    public var maxDelta = 0.1
    public var maxRecordsPerPatient = 1000
    /// `privacy.minimum_count`.
    public var maxMinimumCount = 1_000_000
    /// `minimum_sites`.
    public var maxMinimumSites = 256

    public init() {}

    /// The defaults.
    public static let `default` = QueryLimits()

    nonisolated(unsafe) static let integerKeys: [String: WritableKeyPath<QueryLimits, Int>] = [
        "max_query_bytes": \.maxQueryBytes, "max_features": \.maxFeatures, "max_bins": \.maxBins,
        "max_categories": \.maxCategories, "max_name_length": \.maxNameLength, "max_quantiles": \.maxQuantiles,
        "max_records_per_site": \.maxRecordsPerSite, "max_records_per_patient": \.maxRecordsPerPatient,
        "max_minimum_count": \.maxMinimumCount, "max_minimum_sites": \.maxMinimumSites,
    ]
    nonisolated(unsafe) static let doubleKeys: [String: WritableKeyPath<QueryLimits, Double>] = [
        "max_bound_magnitude": \.maxBoundMagnitude, "min_epsilon": \.minEpsilon, "max_epsilon": \.maxEpsilon,
        "min_delta": \.minDelta, "max_delta": \.maxDelta,
    ]

    /// The `query:` section of a `limits.yaml` (other sections belong to other modules); absent keys keep their
    /// defaults.
    /// - Throws: `.invalidPolicy` naming the key for unknown keys and values that are not positive numbers.
    public init(yaml: String) throws(AnalyticsError) {
        self.init()
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw AnalyticsError(.invalidPolicy, "the limits file is not valid YAML", cause: "\(error)")
        }
        guard let section = root?.mapping?["query"] else { return }
        guard let mapping = section.mapping else {
            throw AnalyticsError(.invalidPolicy, "`query` in the limits file must be a mapping")
        }
        for (k, v) in mapping {
            let key = k.string ?? ""
            if let p = Self.integerKeys[key] {
                guard let i = v.int, i > 0 else {
                    throw AnalyticsError(.invalidPolicy, "`query.\(key)` in the limits file must be an integer > 0")
                }
                self[keyPath: p] = i
            } else if let p = Self.doubleKeys[key] {
                guard let d = v.float, d > 0, d.isFinite else {
                    throw AnalyticsError(.invalidPolicy, "`query.\(key)` in the limits file must be a number > 0")
                }
                self[keyPath: p] = d
            } else {
                throw AnalyticsError(.invalidPolicy, "unknown key `query.\(String(key.prefix(64)))` in the limits file")
            }
        }
        guard maxDelta < 1, minDelta <= maxDelta, minEpsilon <= maxEpsilon else {
            throw AnalyticsError(
                .invalidPolicy,
                "the limits file needs min_delta ≤ max_delta < 1 and "
                    + "min_epsilon ≤ max_epsilon")
        }
    }

    /// Reads the `query:` section of `path`; the defaults when the file does not exist.
    public static func load(path: String) throws(AnalyticsError) -> QueryLimits {
        guard FileManager.default.fileExists(atPath: path) else { return QueryLimits() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalyticsError(.io, "cannot read the limits file \(path)")
        }
        return try QueryLimits(yaml: String(decoding: data, as: UTF8.self))
    }
}

// MARK: - Fixed-point range

extension QueryLimits {
    /// Largest magnitude a site's value may have before masking: a quarter of the fixed-point range, so that
    /// rounding and the sum over sites keep room.
    static let largestEncodedMagnitude = 0x1p61 / FixedPoint.scale

    /// The largest value each noisy primitive of `fq` can take at a site with `records` records: the exact
    /// value's bound plus the largest noise the mechanism can draw (Laplace by inverse CDF from a 53-bit uniform:
    /// 38 b; Box–Muller from a 53-bit uniform: 9 σ).
    /// - Returns: the largest magnitude over the primitives (0 for categorical features: counts only).
    static func worstMagnitude(
        bounds: [Double], records: Int, primitives: [String],
        noise: (String) -> NoiseSpec?
    ) -> Double {
        let n = Double(records)
        let width = bounds.count == 2 ? bounds[1] - bounds[0] : 1
        var worst = 0.0
        for name in primitives {
            var value: Double
            switch name {
            case "sum": value = n * width / 2
            case "squared-deviations": value = n * width * width
            default: value = n
            }
            if let spec = noise(name) {
                switch spec.mechanism {
                case .laplace:
                    value +=
                        38
                        * Calibration.laplaceScale(
                            sensitivity: spec.sensitivity,
                            epsilon: spec.epsilon)
                case .gaussian:
                    value +=
                        9
                        * Calibration.gaussianSigma(
                            sensitivity: spec.sensitivity,
                            epsilon: spec.epsilon, delta: spec.delta)
                case .none: break
                }
            }
            worst = max(worst, value.isNaN ? .infinity : value)
        }
        return worst
    }
}
