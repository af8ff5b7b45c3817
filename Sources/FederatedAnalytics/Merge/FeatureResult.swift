import Foundation

/// A histogram as released: global bin edges and counts (nil = suppressed, "< k").
public struct HistogramResult: Sendable, Codable, Equatable {
    public var edges: [Double]
    public var counts: [Double?]
}

/// The released statistics of one feature, for one site or for all sites together. `nil` means suppressed or
/// not asked for; `suppressed` names what was withheld because it fell below the minimum count.
public struct FeatureResult: Sendable, Codable, Equatable {
    public var feature: String
    public var unit: CountingUnit
    public var valueUnit: String
    public var count: Double?
    public var missing: Double?
    public var sum: Double?
    public var mean: Double?
    public var variance: Double?
    public var stddev: Double?
    public var min: Double?
    public var max: Double?
    public var histogram: HistogramResult?
    public var quantiles: [String: Double]?
    public var frequencies: [String: Double?]?
    public var suppressed: [String]

    /// Derives every asked statistic from (summed) released primitives, suppressing cells below `minimumCount`.
    ///
    /// mean = sum / count; variance = squared deviations / (count − 1) (sample variance); min and max at bin
    /// resolution: the lower edge of the first and the upper edge of the last histogram bin holding at least k;
    /// quantiles by linear interpolation inside the bins of the whole noisy histogram (post-processing of released
    /// values; suppressed cells are withheld from display, not from the interpolation, which would bias it).
    public init(
        query fq: FeatureQuery, feature: Feature, unit: CountingUnit, primitives p: FeaturePrimitives,
        minimumCount k: Int
    ) {
        self.feature = fq.feature
        self.unit = unit
        self.valueUnit = feature.unit
        self.suppressed = []
        let kk = Double(k)
        let stats = Set(fq.statistics)
        let count = Swift.max(0, p.counts[0])
        let missing = Swift.max(0, p.counts[1])
        self.missing = missing >= kk ? missing.rounded() : nil
        if self.missing == nil && missing > 0.5 { suppressed.append("missing") }
        guard count >= kk else {
            suppressed.append("count")
            return
        }
        self.count = unit == .voxel ? count : count.rounded()
        // The released sum is centred on the bounds' midpoint; means are clamped into the bounds (post-processing).
        let bounds = fq.bounds ?? [0, 0]
        let mid = (bounds[0] + bounds[1]) / 2
        if let s = p.sum, stats.contains(.sum) { self.sum = s + mid * count }
        if let s = p.sum, !stats.isDisjoint(with: [.mean, .variance, .stddev]) {
            self.mean = Swift.min(Swift.max(mid + s / count, bounds[0]), bounds[1])
        }
        if let d = p.squaredDeviations, !stats.isDisjoint(with: [.variance, .stddev]) {
            let v = Swift.max(0, d / Swift.max(count - 1, 1))
            if stats.contains(.variance) { self.variance = v }
            if stats.contains(.stddev) { self.stddev = v.squareRoot() }
        }
        if let f = p.frequencies, let names = p.categoryNames {
            var out: [String: Double?] = [:]
            for (name, value) in zip(names, f) {
                let v = Swift.max(0, value).rounded()
                if v >= kk {
                    out[name] = v
                } else {
                    out[name] = .some(nil)
                    suppressed.append("category \(name)")
                }
            }
            self.frequencies = out
        }
        if let h = p.histogram, let b = fq.bounds {
            let bins = h.count
            let width = (b[1] - b[0]) / Double(bins)
            let edges = (0...bins).map { b[0] + Double($0) * width }
            let clamped = h.map { Swift.max(0, $0) }
            // Unit voxel: cells are patient-weighted fractions; the minimum count applies to the patients (above).
            let cells: [Double?] = unit == .voxel ? clamped : clamped.map { $0 >= kk ? $0.rounded() : nil }
            for (i, c) in cells.enumerated() where c == nil && clamped[i] > 0.5 {
                suppressed.append(String(format: "bin [%g, %g)", edges[i], edges[i + 1]))
            }
            if stats.contains(.histogram) { self.histogram = HistogramResult(edges: edges, counts: cells) }
            let usable = cells.map { $0 ?? 0 }
            let threshold = unit == .voxel ? 1e-9 : kk
            if stats.contains(.minimum), let i = usable.firstIndex(where: { $0 >= threshold }) { self.min = edges[i] }
            if stats.contains(.maximum), let i = usable.lastIndex(where: { $0 >= threshold }) {
                self.max = edges[i + 1]
            }
            if stats.contains(.quantiles), let levels = fq.quantiles {
                let usable = clamped
                let total = usable.reduce(0, +)
                if total > 0 {
                    var q: [String: Double] = [:]
                    for level in levels {
                        let target = level * total
                        var cumulative = 0.0
                        for (i, c) in usable.enumerated() {
                            if cumulative + c >= target && c > 0 {
                                q[String(format: "%g", level)] = edges[i] + (target - cumulative) / c * width
                                break
                            }
                            cumulative += c
                        }
                    }
                    self.quantiles = q
                }
            }
        }
    }
}

extension FeatureResult {
    /// The released figures of every feature of `query`, from (summed) primitives in query order.
    static func results(
        query: StatisticsQuery, primitives: [FeaturePrimitives],
        minimumCount: Int
    ) throws(AnalyticsError) -> [FeatureResult] {
        var out: [FeatureResult] = []
        for (fq, p) in zip(query.features, primitives) {
            let feature = try Feature(parsing: fq.feature)
            out.append(
                FeatureResult(
                    query: fq, feature: feature, unit: fq.unit ?? query.unit, primitives: p,
                    minimumCount: minimumCount))
        }
        return out
    }
}
