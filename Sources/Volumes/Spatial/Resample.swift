import DICOMIO

/// Resamples image and label to a target voxel spacing in mm, keeping origin and direction.
///
/// Output dimensions: `n′ₐ = max(1, round(nₐ · sₐ / s′ₐ))`. Output voxel (i, j, k) lies at
/// `origin + Σ idxₐ · s′ₐ · directionₐ` (same origin, the centre of the first voxel), i.e. it samples source index
/// `uₐ = idxₐ · s′ₐ / sₐ`; beyond the last source voxel centre, the edge voxel is replicated. The image is
/// interpolated trilinearly (or with Keys cubic); when downsampling along an axis by r = s′/s > 1 and `antiAlias`
/// is on, a Gaussian pre-filter of σ = (r − 1)/2 source voxels (truncated at 4σ, edge-replicated) removes the
/// frequencies the coarser grid cannot hold. Labels use nearest neighbour, unfiltered. Runs on all cores.
public struct Resample: VolumeTransform {
    /// Target spacing [x, y, z], mm.
    public var spacing: Vector3
    public var interpolation: Interpolation
    public var antiAlias: Bool
    /// Largest output grid (voxels), checked before the output is allocated (`PreprocessingLimits`).
    public var maxVoxels = PreprocessingLimits.default.maxVoxelsPerVolume
    /// Largest output extent along one axis (voxels).
    public var maxAxisVoxels = PreprocessingLimits.default.maxAxisVoxels
    public var name: String { "Resample" }

    public init(spacing: Vector3, interpolation: Interpolation = .linear, antiAlias: Bool = true) {
        self.spacing = spacing
        self.interpolation = interpolation
        self.antiAlias = antiAlias
    }

    /// The output grid for `geometry`.
    public func outputGeometry(for geometry: VolumeGeometry) throws(VolumesError) -> VolumeGeometry {
        try geometry.validate(for: name)
        for a in 0..<3 where !(spacing[a] > 0 && spacing[a].isFinite) {
            throw VolumesError(
                .invalidSpacing, transform: name,
                "target spacing \(["x", "y", "z"][a]) = \(spacing[a]) mm; give positive spacings in mm, "
                    + "e.g. [1.5, 1.5, 1.5]")
        }
        var output = geometry
        for a in 0..<3 {
            let extent = Double(geometry.dimensions[a]) * geometry.spacing[a] / spacing[a]
            guard let n = CheckedConversion.int(extent), n <= maxAxisVoxels else {
                throw VolumesError(
                    .shapeMismatch, transform: name,
                    "spacing \(spacing[a]) mm would give \(extent) voxels along an axis, more than "
                        + "\(maxAxisVoxels) (limit max_axis_voxels); check units")
            }
            output.dimensions[a] = max(1, n)
            output.spacing[a] = spacing[a]
        }
        let size = [output.dimensions.x, output.dimensions.y, output.dimensions.z]
        guard let total = CheckedConversion.product(size), total <= maxVoxels else {
            throw VolumesError(
                .shapeMismatch, transform: name,
                "spacing [\(spacing.x), \(spacing.y), \(spacing.z)] mm would give a \(size) grid, more "
                    + "than \(maxVoxels) voxels (limit max_voxels_per_volume); choose a coarser spacing")
        }
        try output.validate(for: name)
        return output
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let output = try outputGeometry(for: sample.image.geometry)
        return try Self.resample(sample, onto: output, interpolation: interpolation, antiAlias: antiAlias, name: name)
    }

    /// Resamples image (and label) of `sample` onto `output`, recording the step.
    static func resample(
        _ sample: Sample, onto output: VolumeGeometry, interpolation: Interpolation,
        antiAlias: Bool, name: String
    ) throws(VolumesError) -> Sample {
        var result = sample
        let input = sample.image.geometry
        result.image = try Resampler.resample(
            sample.image, onto: output, interpolation: interpolation,
            antiAlias: antiAlias)
        // Checked on the (usually smaller) output: NaN/Inf anywhere in the input reaches it through the filters.
        let finite = result.image.voxels.withUnsafeBufferPointer { v in
            var ok = true
            for x in v where !x.isFinite {
                ok = false
                break
            }
            return ok
        }
        guard finite else {
            throw VolumesError(
                .nonFinite, transform: name,
                "the image holds NaN or infinite voxels, which interpolation would spread; check the "
                    + "decoder and rescale slope/intercept, or clip with a window first")
        }
        if let label = sample.label {
            result.label = Resampler.resampleLabels(label, onto: output)
        }
        result.history.append(
            SpatialRecord(
                transform: name, operation: .resample, inputGeometry: input,
                outputGeometry: output))
        return result
    }
}

/// Resamples image and label to a given shape, keeping the field of view: the grid's outer faces (half a voxel
/// beyond the first and last centres) stay where they are, so spacing becomes `s′ = s · n / n′` and the origin
/// moves by `(s′ − s)/2` along each axis (MONAI `Resize`, `align_corners=False`). Anti-aliased like `Resample`.
public struct Resize: VolumeTransform {
    /// Target shape [x, y, z] (voxels).
    public var shape: SIMD3<Int>
    public var interpolation: Interpolation
    public var antiAlias: Bool
    public var name: String { "Resize" }

    public init(shape: SIMD3<Int>, interpolation: Interpolation = .linear, antiAlias: Bool = true) {
        self.shape = shape
        self.interpolation = interpolation
        self.antiAlias = antiAlias
    }

    public func outputGeometry(for geometry: VolumeGeometry) throws(VolumesError) -> VolumeGeometry {
        try geometry.validate(for: name)
        guard shape.x >= 1, shape.y >= 1, shape.z >= 1 else {
            throw VolumesError(
                .shapeMismatch, transform: name,
                "target shape \(shape) has an axis below 1 voxel; give positive [x, y, z]")
        }
        var output = geometry
        var shift = Vector3(0, 0, 0)
        for a in 0..<3 {
            output.dimensions[a] = shape[a]
            output.spacing[a] = geometry.spacing[a] * Double(geometry.dimensions[a]) / Double(shape[a])
            shift[a] = (output.spacing[a] - geometry.spacing[a]) / 2
        }
        output.origin =
            geometry.origin + shift.x * geometry.direction.x + shift.y * geometry.direction.y
            + shift.z * geometry.direction.z
        try output.validate(for: name)
        return output
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let output = try outputGeometry(for: sample.image.geometry)
        return try Resample.resample(
            sample, onto: output, interpolation: interpolation, antiAlias: antiAlias,
            name: name)
    }
}

extension Volume where Voxel == Float {
    /// This volume resampled onto another grid (through patient coordinates; edge voxels replicated outside).
    ///
    /// - Parameters:
    ///   - geometry: the output grid; any direction (oblique grids use full affine sampling).
    ///   - interpolation: `.linear` (trilinear), `.cubic` or `.nearest`.
    ///   - antiAlias: Gaussian pre-filter when the output grid is coarser (σ = (r − 1)/2 source voxels).
    /// - Throws: `.invalidSpacing`/`.singularDirection` for invalid grids.
    public func resampled(
        onto geometry: VolumeGeometry, interpolation: Interpolation = .linear,
        antiAlias: Bool = true
    ) throws(VolumesError) -> Volume<Float> {
        try self.geometry.validate(for: "Resample")
        try geometry.validate(for: "Resample")
        return try Resampler.resample(self, onto: geometry, interpolation: interpolation, antiAlias: antiAlias)
    }
}

extension Volume where Voxel == UInt8 {
    /// This label volume resampled onto another grid with nearest-neighbour interpolation (edges replicated).
    public func resampled(onto geometry: VolumeGeometry) throws(VolumesError) -> Volume<UInt8> {
        try self.geometry.validate(for: "Resample")
        try geometry.validate(for: "Resample")
        return Resampler.resampleLabels(self, onto: geometry)
    }
}
