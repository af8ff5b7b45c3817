import DICOMIO

extension Volume where Voxel == Float {
    /// This volume resampled onto another grid through patient coordinates (`Resampler`): output voxel (i, j, k)
    /// holds this volume's value at `geometry.position(i, j, k)` (LPS mm), so two series of one frame of reference
    /// line up voxel for voxel whatever their spacing, origin or orientation.
    ///
    /// - Parameters:
    ///   - geometry: the output grid (e.g. a reference series' grid); validated and bounded like every grid.
    ///   - interpolation: linear (trilinear), cubic or nearest.
    ///   - antiAlias: Gaussian pre-filter where the output is coarser than this volume (σ = (r − 1)/2 voxels).
    ///   - outside: what positions outside this volume's grid read: the nearest edge voxel, or a constant.
    /// - Throws: `.invalidSpacing`, `.singularDirection` or `.shapeMismatch` for an unusable output grid.
    public func resampled(
        onto geometry: VolumeGeometry, interpolation: Interpolation = .linear, antiAlias: Bool = true,
        outside: OutsideValue = .clamp
    ) throws(VolumesError) -> Volume<Float> {
        try geometry.validate(for: "Resample")
        return try Resampler.resample(
            self, onto: geometry, interpolation: interpolation, antiAlias: antiAlias, outside: outside)
    }
}
