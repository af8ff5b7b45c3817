import DICOMIO
import Randomness

/// Random flips along voxel axes: each axis in `axes` is reversed with probability `probability`, image and label
/// together (an exact voxel permutation).
///
/// Augmentations synthesise a new anatomy on the same grid: the geometry is kept, so the model sees mirrored
/// anatomy (not the same anatomy re-indexed). They are not recorded for `inverse`; keep them out of inference.
public struct RandomFlip: VolumeTransform {
    public var axes: [Axis]
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "RandomFlip" }

    public init(axes: [Axis] = [.x, .y, .z], probability: Double = 0.5, seed: UInt64) {
        self.axes = axes
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        var flips = [false, false, false]
        for axis in axes { flips[axis.index] = generator.chance(probability) }
        guard flips.contains(true) else { return sample }
        var result = sample
        let geometry = sample.image.geometry
        result.image = Permutation.apply(sample.image, permutation: SIMD3(0, 1, 2), flipped: flips)
        result.image.geometry = geometry
        if let label = sample.label {
            result.label = Permutation.apply(label, permutation: SIMD3(0, 1, 2), flipped: flips)
            result.label?.geometry = geometry
        }
        return result
    }
}

/// Random rotation by k · 90° (k ∈ {1, 2, 3}, uniform) in a voxel plane, with probability `probability`; an exact
/// voxel permutation of image and label. When k is odd, the plane's two dimensions and spacings swap; origin and
/// direction are kept (an augmentation, see `RandomFlip`).
public struct RandomRotate90: VolumeTransform {
    /// The plane, as its two axes: rotation turns the first towards the second.
    public var plane: (Axis, Axis)
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "RandomRotate90" }

    public init(plane: (Axis, Axis) = (.x, .y), probability: Double = 0.5, seed: UInt64) {
        self.plane = plane
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        let (a, b) = (plane.0.index, plane.1.index)
        guard a != b else {
            throw VolumesError(.invalidParameter, transform: name, "the rotation plane needs two different axes")
        }
        let apply = generator.chance(probability)
        let k = generator.integer(1, 3)
        guard apply else { return sample }
        var permutation = SIMD3(0, 1, 2)
        var flips = [false, false, false]
        switch k {
        case 2:
            flips[a] = true
            flips[b] = true
        default:
            // 90°: new axis a reads old axis b reversed, new b reads old a (270°: the other reversed).
            permutation[a] = b
            permutation[b] = a
            flips[k == 1 ? a : b] = true
        }
        var geometry = sample.image.geometry
        geometry.dimensions = SIMD3(
            geometry.dimensions[permutation[0]], geometry.dimensions[permutation[1]],
            geometry.dimensions[permutation[2]])
        geometry.spacing = Vector3(
            geometry.spacing[permutation[0]], geometry.spacing[permutation[1]],
            geometry.spacing[permutation[2]])
        var result = sample
        result.image = Permutation.apply(sample.image, permutation: permutation, flipped: flips)
        result.image.geometry = geometry
        if let label = sample.label {
            result.label = Permutation.apply(label, permutation: permutation, flipped: flips)
            result.label?.geometry = geometry
        }
        return result
    }
}
