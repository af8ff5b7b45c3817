import Randomness

/// A random crop of `shape` voxels centred on a foreground (label ≠ 0) voxel with probability
/// `positive / (positive + negative)`, else on a background voxel (MONAI `RandCropByPosNegLabel`); the window is
/// shifted to lie inside the volume. Without a label (or when one class is absent) the centre is uniform over the
/// volume (or over the class present). A real crop: the origin moves so every voxel keeps its position, and the
/// step is recorded (invertible).
public struct RandomCrop: VolumeTransform {
    /// Crop shape [x, y, z], voxels; must fit in the volume.
    public var shape: SIMD3<Int>
    public var positive: Double
    public var negative: Double
    public var generator: SplitMix64
    public var name: String { "RandomCrop" }

    public init(shape: SIMD3<Int>, positive: Double = 1, negative: Double = 1, seed: UInt64) {
        self.shape = shape
        self.positive = positive
        self.negative = negative
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let n = sample.image.geometry.dimensions
        guard shape.x >= 1, shape.y >= 1, shape.z >= 1, shape.x <= n.x, shape.y <= n.y, shape.z <= n.z else {
            throw VolumesError(
                .shapeMismatch, transform: name,
                "crop shape \(shape) does not fit the volume \(n); crop smaller or pad first "
                    + "(CropPad with a shape)")
        }
        guard positive >= 0, negative >= 0, positive + negative > 0 else {
            throw VolumesError(
                .invalidParameter, transform: name,
                "positive \(positive) and negative \(negative) ratios must be ≥ 0, not both 0")
        }
        let wantPositive = generator.uniform() < positive / (positive + negative)
        let draw = generator.next()
        var centreIndex: Int
        if let label = sample.label {
            let foreground = label.voxels.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            let background = label.voxels.count - foreground
            let usePositive = foreground > 0 && (wantPositive || background == 0)
            let pool = usePositive ? foreground : background
            // The r-th voxel of the chosen class, in storage order (no index list kept).
            var r = Int(draw % UInt64(max(pool, 1)))
            centreIndex = 0
            for (index, value) in label.voxels.enumerated() where (value != 0) == usePositive {
                if r == 0 {
                    centreIndex = index
                    break
                }
                r -= 1
            }
        } else {
            centreIndex = Int(draw % UInt64(n.x * n.y * n.z))
        }
        let centre = SIMD3(centreIndex % n.x, (centreIndex / n.x) % n.y, centreIndex / (n.x * n.y))
        var offset = centre &- shape / 2
        offset = pointwiseMin(pointwiseMax(offset, .zero), n &- shape)
        return CropPadKernel.apply(sample, offset: offset, shape: shape, imageFill: 0, name: name)
    }
}
