import DICOMIO

/// Which voxels a statistic is computed over.
public enum IntensityMask: Sendable, Equatable {
    /// Every voxel.
    case all
    /// Voxels whose label is non-zero (needs a label volume).
    case label
    /// Voxels with image value > threshold (e.g. −500 HU: the body, not the air around it).
    case threshold(Float)

    func mask(for sample: Sample, transform: String) throws(VolumesError) -> [UInt8]? {
        switch self {
        case .all: return nil
        case .label:
            guard let label = sample.label else {
                throw VolumesError(
                    .emptyMask, transform: transform,
                    "mask `label` needs a label volume; use `all` or a threshold for images alone")
            }
            return label.voxels
        case .threshold(let t): return sample.image.voxels.map { $0 > t ? 1 : 0 }
        }
    }
}

/// Z-score normalisation: `v′ = (v − μ)/σ` with mean μ and population standard deviation σ over the mask, applied
/// to every voxel. σ < 1e-8 (a constant region) divides by 1 instead: the result is centred, never NaN.
public struct ZScore: VolumeTransform {
    public var mask: IntensityMask
    public var name: String { "ZScore" }

    public init(mask: IntensityMask = .all) { self.mask = mask }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let selected = try mask.mask(for: sample, transform: name)
        let (mean, deviation, _) = try IntensityStatistics.meanAndDeviation(
            sample.image.voxels, mask: selected,
            transform: name)
        var result = sample
        let divisor = deviation < 1e-8 ? 1 : deviation
        let scale = Float(1 / divisor)
        let shift = Float(-mean / divisor)
        result.image.voxels.withUnsafeMutableBufferPointer { v in
            for i in v.indices { v[i] = v[i] * scale + shift }
        }
        return result
    }
}

/// Percentile normalisation (robust min–max): the `lower` and `upper` percentiles (numpy's linear definition) map
/// to the ends of `range`, values beyond clipped when `clip`. Defaults 0.5 % and 99.5 %. A volume whose two
/// percentiles coincide maps to the range's lower end.
public struct PercentileNormalize: VolumeTransform {
    public var lower: Double
    public var upper: Double
    public var range: IntensityRange
    public var clip: Bool
    public var name: String { "PercentileNormalize" }

    public init(lower: Double = 0.5, upper: Double = 99.5, to range: IntensityRange = .unit, clip: Bool = true) {
        self.lower = lower
        self.upper = upper
        self.range = range
        self.clip = clip
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        guard lower >= 0, upper <= 100, lower < upper else {
            throw VolumesError(
                .invalidParameter, transform: name,
                "percentiles [\(lower), \(upper)] need 0 ≤ lower < upper ≤ 100, e.g. [0.5, 99.5]")
        }
        _ = try IntensityStatistics.extrema(sample.image.voxels, transform: name)
        let p = IntensityStatistics.percentiles(sample.image.voxels, [lower, upper])
        var result = sample
        IntensityStatistics.affine(&result.image.voxels, from: (p[0], p[1]), to: range.bounds, clip: clip)
        return result
    }
}

/// A reference intensity distribution: values at increasing cumulative probabilities (quantile landmarks).
public struct ReferenceHistogram: Sendable, Equatable, Codable {
    /// Cumulative probabilities in [0, 1], strictly increasing.
    public var probabilities: [Double]
    /// The reference intensity at each probability, non-decreasing.
    public var values: [Double]

    public init(probabilities: [Double], values: [Double]) {
        self.probabilities = probabilities
        self.values = values
    }

    /// The landmarks of a reference volume: `count` evenly spaced probabilities from 0 to 1 (percentiles,
    /// numpy's linear definition), over the voxels where `mask` is non-zero (all when `nil`).
    public init(volume: Volume<Float>, count: Int = 101, mask: [UInt8]? = nil) {
        let probabilities = (0..<max(2, count)).map { Double($0) / Double(max(2, count) - 1) }
        let voxels = mask.map { m in zip(volume.voxels, m).compactMap { $1 != 0 ? $0 : nil } } ?? volume.voxels
        self.init(
            probabilities: probabilities,
            values: IntensityStatistics.percentiles(voxels, probabilities.map { $0 * 100 }))
    }

    func validate(for transform: String) throws(VolumesError) {
        let ok =
            probabilities.count >= 2 && probabilities.count == values.count
            && zip(probabilities, probabilities.dropFirst()).allSatisfy { $0 < $1 }
            && zip(values, values.dropFirst()).allSatisfy { $0 <= $1 }
            && probabilities.allSatisfy { $0 >= 0 && $0 <= 1 } && values.allSatisfy(\.isFinite)
        guard ok else {
            throw VolumesError(
                .invalidParameter, transform: transform,
                "the reference histogram needs ≥ 2 landmarks: strictly increasing probabilities in "
                    + "[0, 1] and as many non-decreasing finite values")
        }
    }
}

/// Histogram matching to a reference distribution (piecewise-linear quantile mapping, Nyúl & Udupa 1999 with many
/// landmarks): the source's own quantiles at the reference probabilities `q_src` are mapped to the reference values
/// `q_ref`, `v′ = interp(v, q_src, q_ref)` (numpy's `interp`: linear between landmarks, clamped beyond them).
/// Aligns intensity scales across sites (scanners, kernels, calibration) without sharing images: only the
/// reference landmarks travel.
public struct HistogramMatch: VolumeTransform {
    public var reference: ReferenceHistogram
    public var name: String { "HistogramMatch" }

    public init(reference: ReferenceHistogram) { self.reference = reference }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try reference.validate(for: name)
        _ = try IntensityStatistics.extrema(sample.image.voxels, transform: name)
        let sourceQuantiles = IntensityStatistics.percentiles(
            sample.image.voxels,
            reference.probabilities.map { $0 * 100 })
        let values = reference.values
        var result = sample
        result.image.voxels.withUnsafeMutableBufferPointer { v in
            for i in v.indices {
                v[i] = Float(IntensityStatistics.interpolate(Double(v[i]), sourceQuantiles, values))
            }
        }
        return result
    }
}
