import DICOMIO

/// Crops and/or pads image and label to a box: around the centre, around the foreground of the image, or around a
/// label, with a margin; optionally to a fixed shape centred on that box. Voxels are copied, not interpolated; the
/// origin moves to the patient position of the box's first voxel, so every kept voxel keeps its position.
///
/// Padding uses `imageFill` for the image (the image minimum when `nil`, i.e. air for CT) and 0 for labels.
/// Invertible: `Sample.inverse` puts a prediction back at its place in the original grid (0/fill elsewhere).
public struct CropPad: VolumeTransform {
    public enum Region: Sendable, Equatable {
        /// The whole volume (centre crop/pad when a shape is given).
        case centre
        /// Voxels with image value > `threshold` (HU, or normalised units after intensity transforms).
        case foreground(threshold: Float)
        /// Voxels with this label value, or any non-zero label when `nil`.
        case label(UInt8?)
    }

    public var region: Region
    /// Added on each side of the region's bounding box, voxels [x, y, z].
    public var margin: SIMD3<Int>
    /// Output shape [x, y, z]; `nil` keeps the (margin-grown, volume-clipped) bounding box.
    public var shape: SIMD3<Int>?
    public var imageFill: Float?
    public var name: String {
        switch region {
        case .centre: "CropPad(centre)"
        case .foreground: "CropPad(foreground)"
        case .label: "CropPad(label)"
        }
    }

    public init(
        region: Region = .centre, margin: SIMD3<Int> = .zero, shape: SIMD3<Int>? = nil,
        imageFill: Float? = nil
    ) {
        self.region = region
        self.margin = margin
        self.shape = shape
        self.imageFill = imageFill
    }

    /// The box (offset into the input, shape) this transform cuts from `sample`.
    /// - Throws: `.emptyMask` when the foreground/label is empty; `.shapeMismatch` for a shape or margin < 0.
    public func box(for sample: Sample) throws(VolumesError) -> (offset: SIMD3<Int>, shape: SIMD3<Int>) {
        let n = sample.image.geometry.dimensions
        if let shape, shape.x < 1 || shape.y < 1 || shape.z < 1 {
            throw VolumesError(.shapeMismatch, transform: name, "shape \(shape) has an axis below 1 voxel")
        }
        guard margin.x >= 0, margin.y >= 0, margin.z >= 0 else {
            throw VolumesError(.shapeMismatch, transform: name, "margin \(margin) is negative; give voxels ≥ 0")
        }
        var box: VoxelBox
        switch region {
        case .centre:
            box = VoxelBox(lower: .zero, upper: n &- 1)
        case .foreground(let threshold):
            guard let found = VoxelBox.bounding(sample.image, where: { $0 > threshold }) else {
                throw VolumesError(
                    .emptyMask, transform: name,
                    "no voxel is above the foreground threshold \(threshold); lower the threshold "
                        + "or check the intensity transforms before this crop")
            }
            box = found
        case .label(let value):
            guard let label = sample.label else {
                throw VolumesError(.emptyMask, transform: name, "the sample has no label volume to crop around")
            }
            let found =
                value.map { v in VoxelBox.bounding(label, where: { $0 == v }) }
                ?? VoxelBox.bounding(label, where: { $0 != 0 })
            guard let found else {
                throw VolumesError(
                    .emptyMask, transform: name,
                    "label \(value.map(String.init) ?? "≠ 0") is absent from the label volume; "
                        + "crop by foreground or centre for this case")
            }
            box = found
        }
        box.lower = box.lower &- margin
        box.upper = box.upper &+ margin
        guard let shape else {
            // No shape: the grown box, clipped to the volume.
            let lower = pointwiseMax(box.lower, .zero)
            let upper = pointwiseMin(box.upper, n &- 1)
            return (lower, upper &- lower &+ 1)
        }
        var offset = SIMD3(0, 0, 0)
        for a in 0..<3 {
            // Centre the shape on the box (floor division); keep it inside the volume when it fits.
            let sum = box.lower[a] + box.upper[a] + 1 - shape[a]
            offset[a] = sum >= 0 ? sum / 2 : -((-sum + 1) / 2)
            if shape[a] <= n[a] { offset[a] = min(max(offset[a], 0), n[a] - shape[a]) }
        }
        return (offset, shape)
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let (offset, shape) = try box(for: sample)
        let fill = imageFill ?? sample.image.voxels.min() ?? 0
        return CropPadKernel.apply(sample, offset: offset, shape: shape, imageFill: fill, name: name)
    }
}
