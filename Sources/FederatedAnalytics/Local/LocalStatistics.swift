import DICOMIO
import Foundation
import Volumes

/// The additive statistics of one feature at one site: what is noised, masked, summed across sites and then
/// turned into means, variances and quantiles. All counts are in records (or patient weights for unit voxel).
public struct FeaturePrimitives: Sendable, Codable, Equatable {
    /// "index/feature": a query may ask for the same feature twice (e.g. per patient and per voxel).
    public var feature: String
    /// [records with a value, records without] (one record is in exactly one cell).
    public var counts: [Double]
    /// Σ (clip(x) − m) over records with a value, m = the midpoint of the bounds: centring halves the sensitivity
    /// of the sum for ranges away from 0 (Δ = (U − L)/2 instead of max(|L|, |U|)).
    public var sum: Double?
    /// Σ (clip(x) − centre)², the second pass (centre = the global mean of the first pass).
    public var squaredDeviations: Double?
    /// Counts per global bin over the clipping bounds (values outside fall in the edge bins).
    public var histogram: [Double]?
    /// Counts per category: the query's categories in order, then "other" (when a list is given).
    public var frequencies: [Double]?
    public var categoryNames: [String]?
}

/// Measures taken from one record's image, computed once per record and query.
struct ImageMeasures {
    var values: [Feature: Double] = [:]
    var histograms: [Feature: [Double]] = [:]
}

/// Computes a site's exact (un-noised) primitives for a query. This never leaves the site.
public struct LocalStatistics: Sendable {
    public var query: StatisticsQuery
    public var cohort: SiteCohort

    public init(query: StatisticsQuery, cohort: SiteCohort) {
        self.query = query
        self.cohort = cohort
    }

    /// First pass: counts, sums, histograms, frequencies for every feature. With `centres`, the second pass:
    /// squared deviations from the given global means (features that ask for variance or stddev).
    ///
    /// Categorical features without a category list in the query count into `categoryLists[key]` (the union of
    /// the names the sites agreed to reveal) plus "other"; sites must all use the same list for sums to add up.
    /// A name listed more than once is one cell (first occurrence kept), so every record is in exactly one cell.
    public func primitives(
        centres: [String: Double]? = nil,
        categoryLists: [String: [String]] = [:]
    ) throws(AnalyticsError) -> [FeaturePrimitives] {
        var imageCache: [Int: ImageMeasures] = [:]
        var out: [FeaturePrimitives] = []
        for (index, fq) in query.features.enumerated() {
            let feature = try Feature(parsing: fq.feature)
            let unit = fq.unit ?? query.unit
            let records = cohort.records(unit: unit, maxPerPatient: query.maxRecordsPerPatient)
            let key = featureKey(index, fq)
            var p = FeaturePrimitives(feature: key, counts: [0, 0])
            if feature.isCategorical, case .tag(let tag) = feature {
                var counts: [String: Double] = [:]
                for r in records {
                    if let c = r.category(tag) {
                        counts[c, default: 0] += 1
                        p.counts[0] += 1
                    } else {
                        p.counts[1] += 1
                    }
                }
                // One cell per distinct name: a repeated name would count each record twice (and be noised
                // twice) while the noise is calibrated for a record in one cell.
                let listed = (fq.categories ?? categoryLists[key] ?? []).uniqued()
                p.categoryNames = listed + ["other"]
                p.frequencies =
                    listed.map { counts[$0] ?? 0 } + [counts.filter { !listed.contains($0.key) }.values.reduce(0, +)]
                out.append(p)
                continue
            }
            let bounds = fq.bounds ?? [0, 1]
            let (lo, hi) = (bounds[0], bounds[1])
            let bins = fq.bins ?? 0
            if unit == .voxel {
                var histogram = [Double](repeating: 0, count: max(bins, 1))
                for r in records {
                    let m = try measures(r, cache: &imageCache, bounds: (lo, hi), bins: bins)
                    if let h = m.histograms[feature] {
                        guard h.count == histogram.count else {
                            throw AnalyticsError(
                                .invalidQuery,
                                "'\(fq.feature)' per voxel: histograms of \(h.count) "
                                    + "and \(histogram.count) bins; ask for each feature once per unit")
                        }
                        for i in histogram.indices { histogram[i] += h[i] }
                        p.counts[0] += 1
                    } else {
                        p.counts[1] += 1
                    }
                }
                p.histogram = histogram
                out.append(p)
                continue
            }
            var values: [Double] = []
            for r in records {
                let v: Double?
                if case .tag(let tag) = feature {
                    v = r.number(tag)
                } else {
                    v = try measures(r, cache: &imageCache, bounds: (lo, hi), bins: bins).values[feature]
                }
                if let v, v.isFinite { values.append(min(max(v, lo), hi)) } else { p.counts[1] += 1 }
            }
            p.counts[0] = Double(values.count)
            let stats = Set(fq.statistics)
            let mid = (lo + hi) / 2
            if !stats.isDisjoint(with: [.sum, .mean, .variance, .stddev]) {
                p.sum = values.reduce(0) { $0 + ($1 - mid) }
            }
            if let centre = centres?[key], !stats.isDisjoint(with: [.variance, .stddev]) {
                p.squaredDeviations = values.reduce(0) { $0 + ($1 - centre) * ($1 - centre) }
            }
            if !stats.isDisjoint(with: [.histogram, .quantiles, .minimum, .maximum]) {
                var histogram = [Double](repeating: 0, count: bins)
                for v in values { histogram[binIndex(v, lo, hi, bins)] += 1 }
                p.histogram = histogram
            }
            out.append(p)
        }
        return out
    }

    /// The category names this site has for each categorical feature the query does not list categories for
    /// (revealing them is the site policy's choice: `revealCategoryNames`).
    public func categoryNames() throws(AnalyticsError) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (index, fq) in query.features.enumerated() where fq.categories == nil {
            let feature = try Feature(parsing: fq.feature)
            guard feature.isCategorical, case .tag(let tag) = feature else { continue }
            let records = cohort.records(unit: fq.unit ?? query.unit, maxPerPatient: query.maxRecordsPerPatient)
            // A value spelled like the rest bucket is counted in it: it cannot be a listed category.
            out[featureKey(index, fq)] = Set(records.compactMap { $0.category(tag) })
                .subtracting([CategoryName.rest]).sorted()
        }
        return out
    }

    /// Decodes a record's volume (and SEG) once and measures every image feature of the query on it.
    func measures(
        _ r: CohortRecord, cache: inout [Int: ImageMeasures], bounds: (Double, Double),
        bins: Int
    ) throws(AnalyticsError) -> ImageMeasures {
        if let m = cache[r.seriesIndex] { return m }
        var m = ImageMeasures()
        let series = cohort.series[r.seriesIndex]
        let image: Volume<Float>
        var labels: Volume<UInt8>?
        do {
            image = try Volume<Float>(series: series)
            if let seg = r.segmentationPath {
                labels = try Volume<UInt8>.labels(segmentation: seg, series: series).volume
            }
        } catch {
            throw AnalyticsError(
                .data, "cannot read series \(series.seriesInstanceUID) of patient \(r.patientID): \(error.message)")
        }
        for fq in query.features {
            guard let feature = try? Feature(parsing: fq.feature), feature.needsImage else { continue }
            let b = fq.bounds ?? [bounds.0, bounds.1]
            // Only a voxel-unit entry reads the histogram (the query has at most one per feature): another entry
            // of the same feature must not overwrite it with its own bins and bounds.
            let voxel = (fq.unit ?? query.unit) == .voxel
            let nb = voxel ? max(fq.bins ?? bins, 1) : 0
            var mask: (Int) -> Bool
            switch feature {
            case .huInsideBody: mask = { image.voxels[$0] > -500 }
            case .huInsideLabel(let n), .structureVolume(let n):
                guard let labels else { continue }  // no SEG: missing
                mask = { labels.voxels[$0] == UInt8(n) }
            case .tag: continue
            }
            var count = 0
            var sum = 0.0
            var histogram = [Double](repeating: 0, count: nb)
            for i in 0..<image.voxels.count where mask(i) {
                let v = Double(image.voxels[i])
                count += 1
                sum += v
                if voxel { histogram[binIndex(min(max(v, b[0]), b[1]), b[0], b[1], nb)] += 1 }
            }
            if case .structureVolume = feature {
                m.values[feature] = Double(count) * image.geometry.voxelVolume / 1000
            } else if count > 0 {
                m.values[feature] = sum / Double(count)
                if voxel { m.histograms[feature] = histogram.map { $0 / Double(count) } }
            }
        }
        cache[r.seriesIndex] = m
        return m
    }
}

/// Bin of a clipped value: bins are [lo + i·w, lo + (i+1)·w), the last one closed.
/// Checked: a NaN or out-of-range position falls in an edge bin instead of trapping.
@inline(__always) func binIndex(_ v: Double, _ lo: Double, _ hi: Double, _ bins: Int) -> Int {
    let position = (v - lo) / (hi - lo) * Double(bins)
    guard position.isFinite else { return position == .infinity ? bins - 1 : 0 }
    return min(bins - 1, max(0, CheckedConversion.int(position, rounding: .down) ?? 0))
}

/// Identifies a feature of a query by position and name.
func featureKey(_ index: Int, _ fq: FeatureQuery) -> String { "\(index)/\(fq.feature)" }
