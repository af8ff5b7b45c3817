import DICOMIO

/// A canonical patient orientation: the world directions that increasing x, y and z voxel indices point to.
public enum Orientation: String, Sendable, Codable, CaseIterable {
    /// x → patient's left, y → posterior, z → superior (DICOM's own frame).
    case lps = "LPS"
    /// x → right, y → anterior, z → superior (NIfTI/MONAI's frame).
    case ras = "RAS"

    /// The LPS sign each output axis must point along.
    var signs: SIMD3<Double> { self == .lps ? SIMD3(1, 1, 1) : SIMD3(-1, -1, 1) }
}

/// Reorders voxels so that i, j, k increase along the orientation's axes, chosen from the direction cosines (not
/// from tags): each voxel axis goes to the patient axis its cosine is closest to, flipped when it points the other
/// way. An exact permutation of voxels, no interpolation; the geometry is rewritten so that every voxel keeps its
/// patient position (`position(i, j, k)` of corresponding voxels is unchanged). Oblique grids stay oblique (the
/// closest permutation), as in ITK's `DICOMOrientImageFilter` and MONAI's `Orientation`.
public struct Reorient: VolumeTransform {
    public var orientation: Orientation
    public var name: String { "Reorient(\(orientation.rawValue))" }

    public init(to orientation: Orientation) { self.orientation = orientation }

    /// The permutation and flips taking `geometry` to the orientation, and the resulting geometry.
    /// - Throws: `.singularDirection` when two voxel axes are closest to the same patient axis (e.g. 45° oblique).
    public func plan(for geometry: VolumeGeometry) throws(VolumesError)
        -> (permutation: SIMD3<Int>, flipped: [Bool], geometry: VolumeGeometry)
    {
        try geometry.validate(for: name)
        let cosines = [geometry.direction.x, geometry.direction.y, geometry.direction.z]
        var permutation = SIMD3(-1, -1, -1)
        var flipped = [false, false, false]
        for input in 0..<3 {
            let d = cosines[input]
            let magnitudes = [abs(d.x), abs(d.y), abs(d.z)]
            let world = magnitudes.firstIndex(of: magnitudes.max() ?? 0) ?? 0
            if permutation[world] != -1 {
                throw VolumesError(
                    .singularDirection, transform: name,
                    "voxel axes \(permutation[world]) and \(input) are both closest to patient axis "
                        + "\("LPS".map(String.init)[world]) (directions \(cosines)); the grid is too "
                        + "oblique to reorient exactly: resample it onto an axis-aligned grid instead")
            }
            permutation[world] = input
            flipped[world] = (d[world] > 0 ? 1.0 : -1.0) != orientation.signs[world]
        }
        let n = geometry.dimensions
        var output = geometry
        var corner = SIMD3<Double>(0, 0, 0)
        var directions = [Vector3](repeating: .zero, count: 3)
        for a in 0..<3 {
            let input = permutation[a]
            output.dimensions[a] = n[input]
            output.spacing[a] = geometry.spacing[input]
            directions[a] = flipped[a] ? -cosines[input] : cosines[input]
            if flipped[a] { corner[input] = Double(n[input] - 1) }
        }
        output.direction = (directions[0], directions[1], directions[2])
        output.origin = geometry.position(corner.x, corner.y, corner.z)
        return (permutation, flipped, output)
    }

    public func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        let input = sample.image.geometry
        let (permutation, flipped, output) = try plan(for: input)
        var result = sample
        result.image = Permutation.apply(sample.image, permutation: permutation, flipped: flipped)
        result.image.geometry = output
        if let label = sample.label {
            result.label = Permutation.apply(label, permutation: permutation, flipped: flipped)
            result.label?.geometry = output
        }
        result.history.append(
            SpatialRecord(
                transform: name,
                operation: .permute(
                    permutation: permutation,
                    flipped: flipped),
                inputGeometry: input, outputGeometry: output))
        return result
    }
}
