import DICOMIO

/// Exact voxel reordering by axis permutation and flips (no interpolation).
enum Permutation {
    /// Output axis `a` reads input axis `permutation[a]`, reversed when `flipped[a]`; output dimensions are the
    /// permuted input dimensions. The geometry of the result is the input's with dimensions permuted (callers set
    /// the geometry they mean).
    static func apply<V: Sendable>(_ volume: Volume<V>, permutation p: SIMD3<Int>, flipped f: [Bool]) -> Volume<V> {
        let n = volume.geometry.dimensions
        let strides = SIMD3(1, n.x, n.x * n.y)
        let o = SIMD3(n[p[0]], n[p[1]], n[p[2]])
        var base = 0
        var step = SIMD3(0, 0, 0)
        for a in 0..<3 {
            step[a] = f[a] ? -strides[p[a]] : strides[p[a]]
            if f[a] { base += (n[p[a]] - 1) * strides[p[a]] }
        }
        var geometry = volume.geometry
        geometry.dimensions = o
        if p == SIMD3(0, 1, 2) && f == [false, false, false] {
            return Volume(geometry: geometry, voxels: volume.voxels)
        }
        let count = volume.voxels.count
        let voxels = volume.voxels.withUnsafeBufferPointer { src in
            [V](unsafeUninitializedCapacity: count) { out, initialized in
                var w = 0
                for k in 0..<o.z {
                    for j in 0..<o.y {
                        var r = base + k * step.z + j * step.y
                        for _ in 0..<o.x {
                            (out.baseAddress! + w).initialize(to: src[r])
                            w += 1
                            r += step.x
                        }
                    }
                }
                initialized = count
            }
        }
        return Volume(geometry: geometry, voxels: voxels)
    }

    /// The inverse reordering: `inverseApply(apply(v, p, f), p, f)` has `v`'s voxels.
    static func inverseApply<V: Sendable>(
        _ volume: Volume<V>, permutation p: SIMD3<Int>,
        flipped f: [Bool]
    ) -> Volume<V> {
        var q = SIMD3(0, 0, 0)
        var g = [false, false, false]
        for a in 0..<3 {
            q[p[a]] = a
            g[p[a]] = f[a]
        }
        return apply(volume, permutation: q, flipped: g)
    }
}
