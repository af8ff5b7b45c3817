import DICOMIO

/// A 3-D image: voxels stored z, y, x (x fastest), with its place in the patient.
///
/// `Volume<Float>` holds real-world values (HU for CT); `Volume<UInt8>` holds labels (0 = background, the DICOM
/// SEG segment number otherwise).
public struct Volume<Voxel: Sendable>: Sendable {
    public var geometry: VolumeGeometry
    /// `dimensions.z × dimensions.y × dimensions.x` values; voxel (i, j, k) at `(k·ny + j)·nx + i`.
    public var voxels: [Voxel]

    public init(geometry: VolumeGeometry, voxels: [Voxel]) {
        precondition(voxels.count == geometry.voxelCount, "voxel count does not match the geometry")
        self.geometry = geometry
        self.voxels = voxels
    }

    public init(geometry: VolumeGeometry, repeating value: Voxel) {
        self.geometry = geometry
        self.voxels = [Voxel](repeating: value, count: geometry.voxelCount)
    }

    @inlinable public func index(_ i: Int, _ j: Int, _ k: Int) -> Int {
        (k * geometry.dimensions.y + j) * geometry.dimensions.x + i
    }

    @inlinable public subscript(i: Int, j: Int, k: Int) -> Voxel {
        get { voxels[index(i, j, k)] }
        set { voxels[index(i, j, k)] = newValue }
    }
}

/// Summary statistics of a float volume, accumulated in Double.
public struct VolumeStatistics: Sendable, Equatable {
    public var minimum: Float
    public var maximum: Float
    public var mean: Double
    public var standardDeviation: Double
}

extension Volume where Voxel == Float {
    public var statistics: VolumeStatistics {
        var lo = Float.infinity
        var hi = -Float.infinity
        var sum = 0.0
        var sumSquares = 0.0
        for v in voxels {
            lo = min(lo, v)
            hi = max(hi, v)
            let d = Double(v)
            sum += d
            sumSquares += d * d
        }
        let n = Double(max(voxels.count, 1))
        let mean = sum / n
        return VolumeStatistics(
            minimum: lo, maximum: hi, mean: mean,
            standardDeviation: max(0, sumSquares / n - mean * mean).squareRoot())
    }
}
