import DICOMIO

/// An image and, optionally, its label map on the same grid, travelling together through a pipeline, with the
/// record of every invertible spatial step applied so far.
public struct Sample: Sendable {
    /// Real-world intensities (HU for CT), shape `[depth, height, width]` = `dimensions.z, .y, .x`.
    public var image: Volume<Float>
    /// Labels (0 = background) on exactly the image's grid, or `nil`.
    public var label: Volume<UInt8>?
    /// Invertible spatial steps, oldest first. `inverse` undoes them newest first.
    public var history: [SpatialRecord]

    public init(image: Volume<Float>, label: Volume<UInt8>? = nil, history: [SpatialRecord] = []) {
        self.image = image
        self.label = label
        self.history = history
    }

    /// Maps a label prediction made on the current (transformed) grid back onto the original grid, undoing every
    /// recorded step newest first: reorientations and crops/pads exactly (index copies), resamplings with
    /// nearest-neighbour interpolation.
    ///
    /// - Throws: `.shapeMismatch` when `prediction` is not on the grid the last step produced.
    public func inverse(_ prediction: Volume<UInt8>) throws(VolumesError) -> Volume<UInt8> {
        var volume = prediction
        for record in history.reversed() { volume = try record.invert(volume, fill: 0) }
        return volume
    }

    /// Maps a float prediction (probabilities, logits, an image) back onto the original grid; resamplings are
    /// undone with trilinear interpolation, padded regions with `fill`.
    public func inverse(_ prediction: Volume<Float>, fill: Float = 0) throws(VolumesError) -> Volume<Float> {
        var volume = prediction
        for record in history.reversed() { volume = try record.invert(volume, fill: fill) }
        return volume
    }
}

/// What an invertible spatial transform did: the grid before and after, and how voxels moved between them.
public struct SpatialRecord: Sendable {
    public enum Operation: Sendable {
        /// An exact axis permutation and flips: output axis `a` reads input axis `permutation[a]`, reversed when
        /// `flipped[a]`.
        case permute(permutation: SIMD3<Int>, flipped: [Bool])
        /// An index shift: output voxel (i, j, k) is input voxel (i, j, k) + `offset`; outside the input is fill.
        case cropPad(offset: SIMD3<Int>)
        /// A resampling through patient coordinates (same physical space, another grid).
        case resample
    }

    /// The transform's name, for reports.
    public var transform: String
    public var operation: Operation
    public var inputGeometry: VolumeGeometry
    public var outputGeometry: VolumeGeometry

    public init(
        transform: String, operation: Operation, inputGeometry: VolumeGeometry,
        outputGeometry: VolumeGeometry
    ) {
        self.transform = transform
        self.operation = operation
        self.inputGeometry = inputGeometry
        self.outputGeometry = outputGeometry
    }

    func checkGrid(_ geometry: VolumeGeometry) throws(VolumesError) {
        guard geometry.dimensions == outputGeometry.dimensions else {
            throw VolumesError(
                .shapeMismatch, transform: "inverse of \(transform)",
                "the prediction's shape \(geometry.dimensions) is not the transformed shape "
                    + "\(outputGeometry.dimensions); invert predictions made on the pipeline's output")
        }
    }

    /// Undoes this step on a label volume.
    public func invert(_ volume: Volume<UInt8>, fill: UInt8) throws(VolumesError) -> Volume<UInt8> {
        try checkGrid(volume.geometry)
        // The restored geometry is the recorded one, bit for bit (not recomputed from floating-point arithmetic).
        let source = Volume(geometry: outputGeometry, voxels: volume.voxels)
        switch operation {
        case .permute(let permutation, let flipped):
            var out = Permutation.inverseApply(source, permutation: permutation, flipped: flipped)
            out.geometry = inputGeometry
            return out
        case .cropPad(let offset):
            return CropPadKernel.shift(source, offset: SIMD3(0, 0, 0) &- offset, onto: inputGeometry, fill: fill)
        case .resample:
            return Resampler.resampleLabels(source, onto: inputGeometry)
        }
    }

    /// Undoes this step on a float volume.
    public func invert(_ volume: Volume<Float>, fill: Float) throws(VolumesError) -> Volume<Float> {
        try checkGrid(volume.geometry)
        let source = Volume(geometry: outputGeometry, voxels: volume.voxels)
        switch operation {
        case .permute(let permutation, let flipped):
            var out = Permutation.inverseApply(source, permutation: permutation, flipped: flipped)
            out.geometry = inputGeometry
            return out
        case .cropPad(let offset):
            return CropPadKernel.shift(source, offset: SIMD3(0, 0, 0) &- offset, onto: inputGeometry, fill: fill)
        case .resample:
            return try Resampler.resample(source, onto: inputGeometry, interpolation: .linear, antiAlias: false)
        }
    }
}
