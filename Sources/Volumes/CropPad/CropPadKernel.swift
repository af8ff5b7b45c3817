import DICOMIO

/// Index-shift copies: crop and pad in one.
enum CropPadKernel {
    /// Output voxel (i, j, k) of `geometry` (whose dimensions are the output shape) is input voxel
    /// (i, j, k) + `offset`, or `fill` where that lies outside the input. Row copies, no interpolation.
    static func shift<V: Sendable>(
        _ volume: Volume<V>, offset: SIMD3<Int>, onto geometry: VolumeGeometry,
        fill: V
    ) -> Volume<V> {
        let n = volume.geometry.dimensions
        let o = geometry.dimensions
        var voxels = [V](repeating: fill, count: geometry.voxelCount)
        // The x range of output columns that read inside the input.
        let x0 = max(0, -offset.x)
        let x1 = min(o.x, n.x - offset.x)
        guard x1 > x0 else { return Volume(geometry: geometry, voxels: voxels) }
        voxels.withUnsafeMutableBufferPointer { out in
            volume.voxels.withUnsafeBufferPointer { src in
                for k in 0..<o.z {
                    let z = k + offset.z
                    guard z >= 0, z < n.z else { continue }
                    for j in 0..<o.y {
                        let y = j + offset.y
                        guard y >= 0, y < n.y else { continue }
                        let d = (k * o.y + j) * o.x
                        let s = (z * n.y + y) * n.x + offset.x
                        for i in x0..<x1 { out[d + i] = src[s + i] }
                    }
                }
            }
        }
        return Volume(geometry: geometry, voxels: voxels)
    }

    /// The grid of the box starting at input voxel `offset` with `shape` voxels: same spacing and direction,
    /// origin at the patient position of input index `offset` (possibly outside the input: padding).
    static func geometry(of input: VolumeGeometry, offset: SIMD3<Int>, shape: SIMD3<Int>) -> VolumeGeometry {
        var output = input
        output.dimensions = shape
        output.origin = input.position(Double(offset.x), Double(offset.y), Double(offset.z))
        return output
    }

    /// Crops/pads `sample` to the box (offset, shape), recording the step.
    static func apply(
        _ sample: Sample, offset: SIMD3<Int>, shape: SIMD3<Int>, imageFill: Float,
        name: String
    ) -> Sample {
        let input = sample.image.geometry
        let output = geometry(of: input, offset: offset, shape: shape)
        var result = sample
        result.image = shift(sample.image, offset: offset, onto: output, fill: imageFill)
        if let label = sample.label { result.label = shift(label, offset: offset, onto: output, fill: 0) }
        result.history.append(
            SpatialRecord(
                transform: name, operation: .cropPad(offset: offset), inputGeometry: input,
                outputGeometry: output))
        return result
    }
}

/// An inclusive voxel box [lower, upper].
public struct VoxelBox: Sendable, Equatable {
    public var lower: SIMD3<Int>
    public var upper: SIMD3<Int>

    public init(lower: SIMD3<Int>, upper: SIMD3<Int>) {
        self.lower = lower
        self.upper = upper
    }

    public var shape: SIMD3<Int> { upper &- lower &+ 1 }

    /// The bounding box of the voxels where `selected` is true, or `nil` when none is.
    static func bounding<V>(_ volume: Volume<V>, where selected: (V) -> Bool) -> VoxelBox? {
        let n = volume.geometry.dimensions
        var lower = n
        var upper = SIMD3(-1, -1, -1)
        volume.voxels.withUnsafeBufferPointer { v in
            var index = 0
            for k in 0..<n.z {
                for j in 0..<n.y {
                    for i in 0..<n.x {
                        if selected(v[index]) {
                            lower = pointwiseMin(lower, SIMD3(i, j, k))
                            upper = pointwiseMax(upper, SIMD3(i, j, k))
                        }
                        index += 1
                    }
                }
            }
        }
        return upper.x < 0 ? nil : VoxelBox(lower: lower, upper: upper)
    }
}
