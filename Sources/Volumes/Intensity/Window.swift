import DICOMIO

/// An intensity window in HU: values below `minimum` become `minimum`, above `maximum` become `maximum`.
///
/// From width W and level L: `[L − W/2, L + W/2]`.
public struct Window: Sendable, Equatable, Codable {
    public var minimum: Double
    public var maximum: Double

    public init(minimum: Double, maximum: Double) {
        self.minimum = minimum
        self.maximum = maximum
    }

    public init(width: Double, level: Double) {
        self.init(minimum: level - width / 2, maximum: level + width / 2)
    }

    /// CT soft tissue, W 400 / L 40: [−160, 240] HU.
    public static let softTissue = Window(width: 400, level: 40)
    /// CT lung, W 1500 / L −600: [−1350, 150] HU.
    public static let lung = Window(width: 1500, level: -600)
    /// CT bone, W 1800 / L 400: [−500, 1300] HU.
    public static let bone = Window(width: 1800, level: 400)

    /// - Throws: `.invalidWindow` when not finite or `minimum ≥ maximum`.
    func validate(for transform: String) throws(VolumesError) {
        guard minimum.isFinite, maximum.isFinite, minimum < maximum else {
            throw VolumesError(
                .invalidWindow, transform: transform,
                "window [\(minimum), \(maximum)] HU needs finite bounds with min < max "
                    + "(width > 0); e.g. soft tissue is [-160, 240]")
        }
    }
}

/// Clips intensities to a window (HU): `v′ = min(max(v, minimum), maximum)`.
public struct WindowClip: VolumeTransform {
    public var window: Window
    public var name: String { "WindowClip" }

    public init(_ window: Window) { self.window = window }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try window.validate(for: name)
        var result = sample
        let lo = Float(window.minimum)
        let hi = Float(window.maximum)
        result.image.voxels.withUnsafeMutableBufferPointer { v in
            // NaN becomes the minimum: never pass NaN downstream.
            for i in v.indices { v[i] = v[i] > lo ? min(v[i], hi) : lo }
        }
        return result
    }
}

/// The output range of an intensity scaling.
public enum IntensityRange: String, Sendable, Codable {
    /// [0, 1].
    case unit
    /// [−1, 1].
    case symmetric

    var bounds: (Float, Float) { self == .unit ? (0, 1) : (-1, 1) }
}

/// Linearly maps a source range to [0, 1] or [−1, 1]: `v′ = a + (b − a) · (v − lo)/(hi − lo)`.
///
/// The source range is `source` (e.g. the window just clipped to, values outside it clipped) or, when `nil`, the
/// volume's own minimum and maximum. A constant volume maps to `a` (no division by zero, no NaN).
public struct ScaleIntensity: VolumeTransform {
    public var range: IntensityRange
    public var source: Window?
    public var name: String { "ScaleIntensity" }

    public init(to range: IntensityRange = .unit, from source: Window? = nil) {
        self.range = range
        self.source = source
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        var lo: Double
        var hi: Double
        if let source {
            try source.validate(for: name)
            (lo, hi) = (source.minimum, source.maximum)
        } else {
            let (minimum, maximum) = try IntensityStatistics.extrema(sample.image.voxels, transform: name)
            (lo, hi) = (Double(minimum), Double(maximum))
        }
        let (a, b) = range.bounds
        var result = sample
        let clip = source != nil
        IntensityStatistics.affine(&result.image.voxels, from: (lo, hi), to: (a, b), clip: clip)
        return result
    }
}
