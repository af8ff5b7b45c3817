import DICOMIO
import Foundation
import Randomness

/// A small random affine deformation about the volume's centre, in mm on the voxel axes: rotation (Euler angles
/// about x, then y, then z, each uniform in ±`rotation` radians), isotropic scale uniform in `scale`, translation
/// uniform in ±`translation` mm per axis. Applied with probability `probability`.
///
/// Output voxel at mm position q (q = diag(spacing) · idx) samples the input at `c + (R·s)⁻¹ (q − c − t)`: the
/// image with linear interpolation, the label with nearest neighbour (label-safe: no new label values), both with
/// `padding`/0 outside the input. The grid is kept (an augmentation, see `RandomFlip`).
public struct RandomAffine: VolumeTransform {
    /// Maximum rotation about x, y, z, radians.
    public var rotation: Vector3
    /// Isotropic scale range (1 = none); > 1 enlarges the anatomy.
    public var scale: ClosedRange<Double>
    /// Maximum translation per axis, mm.
    public var translation: Vector3
    public var probability: Double
    /// Image value outside the input (HU; default −1000, air).
    public var padding: Float
    public var generator: SplitMix64
    public var name: String { "RandomAffine" }

    public init(
        rotation: Vector3 = Vector3(0, 0, 0.26), scale: ClosedRange<Double> = 0.9...1.1,
        translation: Vector3 = Vector3(5, 5, 5), probability: Double = 0.5, padding: Float = -1000,
        seed: UInt64
    ) {
        self.rotation = rotation
        self.scale = scale
        self.translation = translation
        self.probability = probability
        self.padding = padding
        generator = SplitMix64(seed: seed)
    }

    /// Rotation matrix R = Rz · Ry · Rx.
    static func rotationMatrix(_ angles: Vector3) -> Matrix3 {
        let (cx, sx, cy, sy, cz, sz) = (
            cos(angles.x), sin(angles.x), cos(angles.y), sin(angles.y), cos(angles.z),
            sin(angles.z)
        )
        let rx = Matrix3(columns: (Vector3(1, 0, 0), Vector3(0, cx, sx), Vector3(0, -sx, cx)))
        let ry = Matrix3(columns: (Vector3(cy, 0, -sy), Vector3(0, 1, 0), Vector3(sy, 0, cy)))
        let rz = Matrix3(columns: (Vector3(cz, sz, 0), Vector3(-sz, cz, 0), Vector3(0, 0, 1)))
        return rz * ry * rx
    }

    /// The voxel-index map of a forward transform (rotation `angles`, `scale`, translation `shift` mm).
    static func indexMap(geometry: VolumeGeometry, angles: Vector3, scale: Double, shift: Vector3) -> IndexMap? {
        let n = geometry.dimensions
        let s = geometry.spacing
        let toMM = Matrix3(columns: (Vector3(s.x, 0, 0), Vector3(0, s.y, 0), Vector3(0, 0, s.z)))
        let toIndex = Matrix3(columns: (Vector3(1 / s.x, 0, 0), Vector3(0, 1 / s.y, 0), Vector3(0, 0, 1 / s.z)))
        let forward =
            rotationMatrix(angles)
            * Matrix3(
                columns: (
                    Vector3(scale, 0, 0), Vector3(0, scale, 0),
                    Vector3(0, 0, scale)
                ))
        guard let inverse = forward.inverse else { return nil }
        let centre = toMM * Vector3(Double(n.x - 1) / 2, Double(n.y - 1) / 2, Double(n.z - 1) / 2)
        // u = S⁻¹ (F⁻¹ (S·idx − c − t) + c)
        let m = toIndex * inverse * toMM
        let t = toIndex * (centre - inverse * (centre + shift))
        return IndexMap(m: m, t: t)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        guard scale.lowerBound > 0, scale.upperBound.isFinite else {
            throw VolumesError(.invalidParameter, transform: name, "scale range \(scale) must be positive")
        }
        let apply = generator.chance(probability)
        let angles = Vector3(
            generator.uniform(-rotation.x, rotation.x), generator.uniform(-rotation.y, rotation.y),
            generator.uniform(-rotation.z, rotation.z))
        let factor = generator.uniform(scale.lowerBound, scale.upperBound)
        let shift = Vector3(
            generator.uniform(-translation.x, translation.x),
            generator.uniform(-translation.y, translation.y),
            generator.uniform(-translation.z, translation.z))
        guard apply else { return sample }
        let geometry = sample.image.geometry
        try geometry.validate(for: name)
        guard let map = Self.indexMap(geometry: geometry, angles: angles, scale: factor, shift: shift) else {
            throw VolumesError(.invalidParameter, transform: name, "degenerate affine (scale \(factor))")
        }
        var result = sample
        result.image = Resampler.resample(
            sample.image, onto: geometry, map: map, interpolation: .linear,
            antiAlias: false, outside: .constant(padding))
        if let label = sample.label {
            result.label = Resampler.resampleLabels(label, onto: geometry, map: map, outside: 0)
        }
        return result
    }
}

/// Elastic deformation: a random displacement field on a coarse control grid (`controlPoints` per axis, each
/// component normal with standard deviation `magnitude` mm, zero on the border control points so the volume's
/// edges stay put), interpolated trilinearly at every voxel (smooth by construction). Image linear, label nearest;
/// applied with probability `probability`. The grid is kept.
public struct ElasticDeformation: VolumeTransform {
    /// Control points per axis [x, y, z], each ≥ 3 (border points are fixed).
    public var controlPoints: SIMD3<Int>
    /// Standard deviation of each displacement component, mm.
    public var magnitude: Double
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "ElasticDeformation" }

    public init(
        controlPoints: SIMD3<Int> = SIMD3(5, 5, 5), magnitude: Double = 3, probability: Double = 0.3,
        seed: UInt64
    ) {
        self.controlPoints = controlPoints
        self.magnitude = magnitude
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        guard controlPoints.x >= 3, controlPoints.y >= 3, controlPoints.z >= 3, magnitude >= 0, magnitude.isFinite
        else {
            throw VolumesError(
                .invalidParameter, transform: name,
                "control points \(controlPoints) need ≥ 3 per axis and magnitude \(magnitude) mm ≥ 0")
        }
        let apply = generator.chance(probability)
        let c = controlPoints
        let s = sample.image.geometry.spacing
        var values = [Vector3](repeating: .zero, count: c.x * c.y * c.z)
        for z in 0..<c.z {
            for y in 0..<c.y {
                for x in 0..<c.x {
                    let d = Vector3(generator.normal(), generator.normal(), generator.normal()) * magnitude
                    let border = x == 0 || y == 0 || z == 0 || x == c.x - 1 || y == c.y - 1 || z == c.z - 1
                    values[(z * c.y + y) * c.x + x] = border ? .zero : d / s
                }
            }
        }
        guard apply else { return sample }
        let geometry = sample.image.geometry
        let field = DisplacementField(control: c, output: geometry.dimensions, values: values)
        let identity = IndexMap(m: .identity, t: .zero)
        var result = sample
        result.image = Resampler.resample(
            sample.image, onto: geometry, map: identity, interpolation: .linear,
            antiAlias: false, outside: .clamp, displacement: field)
        if let label = sample.label {
            result.label = Resampler.resampleLabels(
                label, onto: geometry, map: identity, outside: nil,
                displacement: field)
        }
        return result
    }
}
