import DICOMIO

/// Where a voxel grid sits in the patient: DICOM LPS coordinates in millimetres.
///
/// Voxel (i, j, k) — i along x (columns), j along y (rows), k along z (slices) — has its centre at
/// `origin + i·spacing.x·direction.x + j·spacing.y·direction.y + k·spacing.z·direction.z`.
public struct VolumeGeometry: Sendable, Equatable {
    /// Voxel counts [x, y, z].
    public var dimensions: SIMD3<Int>
    /// Centre of voxel (0, 0, 0), LPS mm.
    public var origin: Vector3
    /// Voxel spacing [x, y, z], mm.
    public var spacing: Vector3
    /// Unit vectors of increasing i, j, k in LPS. For a CT from the scanner: x = (0020,0037) row cosine,
    /// y = column cosine, z = the slice direction (the normal unless the stack is sheared by gantry tilt).
    public var direction: (x: Vector3, y: Vector3, z: Vector3)

    public init(
        dimensions: SIMD3<Int>, origin: Vector3, spacing: Vector3,
        direction: (x: Vector3, y: Vector3, z: Vector3) = (Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, 1))
    ) {
        self.dimensions = dimensions
        self.origin = origin
        self.spacing = spacing
        self.direction = direction
    }

    public static func == (a: VolumeGeometry, b: VolumeGeometry) -> Bool {
        a.dimensions == b.dimensions && a.origin == b.origin && a.spacing == b.spacing
            && a.direction.x == b.direction.x && a.direction.y == b.direction.y && a.direction.z == b.direction.z
    }

    public var voxelCount: Int { dimensions.x * dimensions.y * dimensions.z }

    /// Volume of one voxel in mm³ (parallelepiped, so correct for sheared grids too).
    public var voxelVolume: Double {
        abs((direction.x * spacing.x).dot((direction.y * spacing.y).cross(direction.z * spacing.z)))
    }

    /// LPS position (mm) of the centre of voxel (i, j, k); fractional indices allowed.
    public func position(_ i: Double, _ j: Double, _ k: Double) -> Vector3 {
        origin + i * spacing.x * direction.x + j * spacing.y * direction.y + k * spacing.z * direction.z
    }

    /// The continuous voxel index (i, j, k) of an LPS position (mm): the inverse of `position(_:_:_:)`, by
    /// Cramer's rule on the 3×3 matrix of spaced direction vectors. Nil when the grid is degenerate (a zero
    /// spacing or coplanar directions) or the result is not finite.
    public func continuousIndex(of p: Vector3) -> SIMD3<Double>? {
        let a = direction.x * spacing.x
        let b = direction.y * spacing.y
        let c = direction.z * spacing.z
        let det = a.dot(b.cross(c))
        guard det.isFinite, abs(det) > 1e-12 else { return nil }
        let d = p - origin
        let index = SIMD3(d.dot(b.cross(c)), a.dot(d.cross(c)), a.dot(b.cross(d))) / det
        guard index.x.isFinite, index.y.isFinite, index.z.isFinite else { return nil }
        return index
    }

    /// The 4×4 voxel-index → LPS-mm matrix, row-major.
    public var affineLPS: [[Double]] {
        let cx = direction.x * spacing.x
        let cy = direction.y * spacing.y
        let cz = direction.z * spacing.z
        return [
            [cx.x, cy.x, cz.x, origin.x], [cx.y, cy.y, cz.y, origin.y], [cx.z, cy.z, cz.z, origin.z], [0, 0, 0, 1],
        ]
    }

    /// The 4×4 voxel-index → RAS-mm matrix (NIfTI's convention): LPS with x and y negated.
    public var affineRAS: [[Double]] {
        var m = affineLPS
        for c in 0..<4 {
            m[0][c] = -m[0][c]
            m[1][c] = -m[1][c]
        }
        return m
    }

    /// True when the direction vectors are orthonormal (no shear).
    public var isOrthonormal: Bool {
        let d = direction
        return abs(d.x.dot(d.y)) < 1e-4 && abs(d.x.dot(d.z)) < 1e-4 && abs(d.y.dot(d.z)) < 1e-4
    }
}
