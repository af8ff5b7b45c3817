import DICOMIO

/// The voxel axes of a volume.
public enum Axis: String, Sendable, Codable, CaseIterable {
    case x, y, z

    var index: Int { self == .x ? 0 : self == .y ? 1 : 2 }
}

/// A 2-D slice of a volume, `[height, width]` row-major (column index fastest), with its place in the patient.
///
/// Pixel (c, r) — column c along `rowDirection`, row r along `columnDirection` — has its centre at
/// `origin + c·spacing.x·rowDirection + r·spacing.y·columnDirection` (LPS mm).
public struct VolumeSlice<Pixel: Sendable>: Sendable {
    public var width: Int
    public var height: Int
    /// `height × width` values.
    public var pixels: [Pixel]
    /// Centre of pixel (0, 0), LPS mm.
    public var origin: Vector3
    /// Pixel spacing [along a row, along a column], mm.
    public var spacing: SIMD2<Double>
    public var rowDirection: Vector3
    public var columnDirection: Vector3

    public subscript(column: Int, row: Int) -> Pixel { pixels[row * width + column] }
}

extension Volume {
    /// The 2-D slice at `index` perpendicular to `axis`.
    ///
    /// - `.z` (axial for an LPS-oriented volume): pixels (i, j), width nx, height ny.
    /// - `.y` (coronal): pixels (i, k), width nx, height nz.
    /// - `.x` (sagittal): pixels (j, k), width ny, height nz.
    /// - Throws: `.shapeMismatch` when `index` is outside `0..<dimensions[axis]`.
    public func slice(along axis: Axis, at index: Int) throws(VolumesError) -> VolumeSlice<Voxel> {
        let n = geometry.dimensions
        guard index >= 0, index < n[axis.index] else {
            throw VolumesError(
                .shapeMismatch, transform: "slice(along: .\(axis))",
                "index \(index) is outside 0..<\(n[axis.index]) along \(axis)")
        }
        let g = geometry
        switch axis {
        case .z:
            let plane = n.x * n.y
            return VolumeSlice(
                width: n.x, height: n.y, pixels: Array(voxels[(index * plane)..<((index + 1) * plane)]),
                origin: g.position(0, 0, Double(index)), spacing: SIMD2(g.spacing.x, g.spacing.y),
                rowDirection: g.direction.x, columnDirection: g.direction.y)
        case .y:
            var pixels = [Voxel]()
            pixels.reserveCapacity(n.x * n.z)
            for k in 0..<n.z {
                let first = self.index(0, index, k)
                pixels.append(contentsOf: voxels[first..<(first + n.x)])
            }
            return VolumeSlice(
                width: n.x, height: n.z, pixels: pixels, origin: g.position(0, Double(index), 0),
                spacing: SIMD2(g.spacing.x, g.spacing.z), rowDirection: g.direction.x,
                columnDirection: g.direction.z)
        case .x:
            var pixels = [Voxel]()
            pixels.reserveCapacity(n.y * n.z)
            for k in 0..<n.z { for j in 0..<n.y { pixels.append(voxels[self.index(index, j, k)]) } }
            return VolumeSlice(
                width: n.y, height: n.z, pixels: pixels, origin: g.position(Double(index), 0, 0),
                spacing: SIMD2(g.spacing.y, g.spacing.z), rowDirection: g.direction.y,
                columnDirection: g.direction.z)
        }
    }
}
