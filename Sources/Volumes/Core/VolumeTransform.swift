import DICOMIO

/// One preprocessing or augmentation step on a `Sample` (image and, optionally, label on the same grid).
///
/// Spatial transforms move image and label together (image with linear or cubic interpolation, label with nearest
/// neighbour) and append a `SpatialRecord` when they can be undone; intensity transforms change the image only.
/// Random transforms own their seeded generator, hence `mutating`: the same seed gives the same sequence of
/// outputs.
public protocol VolumeTransform: Sendable {
    /// A short name used in errors and reports, e.g. `Resample`.
    var name: String { get }

    /// Applies the step.
    /// - Throws: `VolumesError` naming this transform and the offending value; never returns NaN voxels.
    mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample
}

/// Transforms applied in order, like MONAI's `Compose`.
///
/// ```swift
/// var pipeline = VolumePipeline([Reorient(to: .lps), Resample(spacing: Vector3(1.5, 1.5, 1.5)),
///                                WindowClip(.softTissue), ScaleIntensity(to: .unit)])
/// let out = try pipeline.apply(Sample(image: ct, label: seg))
/// let back = try out.inverse(prediction)   // on ct's grid again
/// ```
public struct VolumePipeline: VolumeTransform {
    public var transforms: [any VolumeTransform]
    public var name: String { "VolumePipeline" }

    public init(_ transforms: [any VolumeTransform] = []) { self.transforms = transforms }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        var sample = sample
        for index in transforms.indices { sample = try transforms[index].apply(sample) }
        return sample
    }

    /// Applies the pipeline to an image alone.
    public mutating func apply(_ image: Volume<Float>) throws(VolumesError) -> Sample {
        try apply(Sample(image: image))
    }
}

extension VolumeGeometry {
    /// Checks that spacing is positive and finite and the direction cosines span 3-D space.
    /// - Throws: `.invalidSpacing` or `.singularDirection`, naming `transform`.
    public func validate(for transform: String) throws(VolumesError) {
        for (axis, s) in [("x", spacing.x), ("y", spacing.y), ("z", spacing.z)] where !(s > 0 && s.isFinite) {
            throw VolumesError(
                .invalidSpacing, transform: transform,
                "spacing.\(axis) = \(s) mm; spacing must be positive and finite (check (0028,0030) "
                    + "Pixel Spacing and the slice positions of the series)")
        }
        let d = direction
        let determinant = d.x.dot(d.y.cross(d.z))
        let lengths = [d.x.length, d.y.length, d.z.length]
        if !(abs(determinant) > 1e-3) || lengths.contains(where: { !(abs($0 - 1) < 1e-2) }) {
            throw VolumesError(
                .singularDirection, transform: transform,
                "direction cosines \(d.x), \(d.y), \(d.z) are not unit vectors spanning 3-D space "
                    + "(determinant \(determinant)); check (0020,0037) Image Orientation (Patient)")
        }
        if dimensions.x < 1 || dimensions.y < 1 || dimensions.z < 1 {
            throw VolumesError(.shapeMismatch, transform: transform, "empty grid \(dimensions)")
        }
        // Grids come from DICOM headers: bounded like DICOMIO's volumes before anything is allocated for them.
        let limit = ReadingLimits.default.maxVoxelsPerVolume
        let xy = dimensions.x.multipliedReportingOverflow(by: dimensions.y)
        let xyz = xy.partialValue.multipliedReportingOverflow(by: dimensions.z)
        if xy.overflow || xyz.overflow || xyz.partialValue > limit {
            throw VolumesError(
                .shapeMismatch, transform: transform,
                "grid \(dimensions.x)×\(dimensions.y)×\(dimensions.z) exceeds \(limit) voxels "
                    + "(ReadingLimits.maxVoxelsPerVolume); check the spacing or shape asked for")
        }
        if !(origin.x.isFinite && origin.y.isFinite && origin.z.isFinite) {
            throw VolumesError(
                .invalidParameter, transform: transform,
                "grid origin \(origin) is not finite; check (0020,0032) Image Position (Patient)")
        }
    }

    /// Voxel-index → LPS-mm matrix (3×3 part): columns are `direction · spacing`.
    var indexToPhysical: Matrix3 {
        Matrix3(columns: (direction.x * spacing.x, direction.y * spacing.y, direction.z * spacing.z))
    }
}

/// A 3×3 matrix of doubles stored by columns, for index ↔ patient-coordinate maps.
public struct Matrix3: Sendable, Equatable {
    public var c0: Vector3, c1: Vector3, c2: Vector3

    public init(columns: (Vector3, Vector3, Vector3)) { (c0, c1, c2) = columns }
    public static let identity = Matrix3(columns: (Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, 1)))

    public static func * (m: Matrix3, v: Vector3) -> Vector3 { m.c0 * v.x + m.c1 * v.y + m.c2 * v.z }
    public static func * (a: Matrix3, b: Matrix3) -> Matrix3 { Matrix3(columns: (a * b.c0, a * b.c1, a * b.c2)) }

    public var determinant: Double { c0.dot(c1.cross(c2)) }

    /// The inverse, or `nil` when singular.
    public var inverse: Matrix3? {
        let det = determinant
        guard abs(det) > 1e-12, det.isFinite else { return nil }
        // Rows of the inverse are the cross products of pairs of columns, divided by the determinant.
        let r0 = c1.cross(c2) / det
        let r1 = c2.cross(c0) / det
        let r2 = c0.cross(c1) / det
        return Matrix3(columns: (Vector3(r0.x, r1.x, r2.x), Vector3(r0.y, r1.y, r2.y), Vector3(r0.z, r1.z, r2.z)))
    }

    /// Element at row `r`, column `c`.
    public subscript(r: Int, c: Int) -> Double { c == 0 ? c0[r] : c == 1 ? c1[r] : c2[r] }
}
