import DICOMIO
import Dispatch
import Foundation

/// How values between voxel centres are computed.
public enum Interpolation: String, Sendable, Codable, CaseIterable {
    /// The nearest voxel (labels): index `⌊u + ½⌋`.
    case nearest
    /// Trilinear: weights `1 − f` and `f` of the two neighbours along each axis.
    case linear
    /// Keys cubic convolution (a = −½, "Catmull–Rom"), 4 taps per axis, interpolating (no B-spline prefilter);
    /// reproduces polynomials up to degree 2 exactly.
    case cubic
}

/// What sampling outside the source grid returns.
public enum OutsideValue: Sendable, Equatable {
    /// The nearest edge voxel (edge replication, scipy's `mode='nearest'`).
    case clamp
    /// A constant (HU for images, a label value for labels).
    case constant(Float)
}

/// A voxel-index map from an output grid to a source grid: source index `u = m · (i, j, k) + t`.
struct IndexMap: Sendable {
    var m: Matrix3
    var t: Vector3

    /// The map from `output` voxel indices to `source` voxel indices through patient coordinates:
    /// `u = A_src⁻¹ (A_out · idx + o_out − o_src)` with `A = direction · diag(spacing)`.
    init?(from output: VolumeGeometry, to source: VolumeGeometry) {
        guard let inverse = source.indexToPhysical.inverse else { return nil }
        m = inverse * output.indexToPhysical
        t = inverse * (output.origin - source.origin)
    }

    init(m: Matrix3, t: Vector3) {
        self.m = m
        self.t = t
    }

    /// True when each output axis maps onto the same source axis (off-diagonal terms ≈ 0): separable.
    var isAxisAligned: Bool {
        let tolerance = 1e-9 * max(1, abs(m[0, 0]), abs(m[1, 1]), abs(m[2, 2]))
        for r in 0..<3 { for c in 0..<3 where r != c && abs(m[r, c]) > tolerance { return false } }
        return true
    }
}

/// A 1-D resampling operator along one axis: output `o` = Σₜ `weights[o·taps + t]` · input[`start[o] + t`],
/// t < `count[o]`. It is the interpolation kernel composed with an optional Gaussian pre-filter, with edge
/// replication (clamped indices) for both, so that a separable pass computes exactly
/// `map_coordinates(gaussian_filter(x, σ, mode='nearest', truncate=4), u, order=1, mode='nearest')`.
struct AxisKernel: Sendable {
    var outputCount: Int
    var taps: Int
    var start: [Int]
    var count: [Int]
    var weights: [Float]
    var isIdentity: Bool

    /// - Parameters:
    ///   - n: input voxels along the axis; `m`: output voxels.
    ///   - a, b: output voxel `o` samples input coordinate `u = a·o + b` (voxel units, 0 = centre of the first).
    ///   - sigma: Gaussian pre-filter σ in input voxels (0: none); radius `⌊4σ + ½⌋` like scipy.
    init(
        inputCount n: Int, outputCount m: Int, scale a: Double, offset b: Double, interpolation: Interpolation,
        sigma: Double
    ) {
        outputCount = m
        isIdentity = n == m && a == 1 && b == 0 && sigma <= 1e-15
        var gaussian: [Double] = [1]
        var radius = 0
        if sigma > 1e-15 {
            // A pre-filter wider than the axis only replicates edges: capped there (σ from a hostile spacing can
            // be 1e300).
            radius = min(CheckedConversion.int(4 * sigma + 0.5, rounding: .down) ?? Int.max, max(n, 1))
            gaussian = (-radius...radius).map { s in exp(-0.5 * Double(s * s) / (sigma * sigma)) }
            let total = gaussian.reduce(0, +)
            gaussian = gaussian.map { $0 / total }
        }
        let interpolationTaps: Int
        switch interpolation {
        case .nearest: interpolationTaps = 1
        case .linear: interpolationTaps = 2
        case .cubic: interpolationTaps = 4
        }
        taps = interpolationTaps + 2 * radius
        start = [Int](repeating: 0, count: m)
        count = [Int](repeating: 0, count: m)
        weights = [Float](repeating: 0, count: m * taps)
        var row = [Double](repeating: 0, count: taps)
        var interpolationWeights = [Double](repeating: 0, count: 4)
        let last = n - 1
        for o in 0..<m {
            let u = a * Double(o) + b
            let base: Int
            switch interpolation {
            case .nearest:
                base = voxelIndex((u + 0.5).rounded(.down))
                interpolationWeights[0] = 1
            case .linear:
                let f = u.rounded(.down)
                base = voxelIndex(f)
                interpolationWeights[0] = 1 - (u - f)
                interpolationWeights[1] = u - f
            case .cubic:
                let f = u.rounded(.down)
                base = voxelIndex(f) - 1
                let x = u - f
                interpolationWeights[0] = Self.keys(1 + x)
                interpolationWeights[1] = Self.keys(x)
                interpolationWeights[2] = Self.keys(1 - x)
                interpolationWeights[3] = Self.keys(2 - x)
            }
            let firstTap = min(max(base, 0), last)
            let lastTap = min(max(base + interpolationTaps - 1, 0), last)
            let lo = max(0, firstTap - radius)
            let hi = min(last, lastTap + radius)
            for t in 0..<taps { row[t] = 0 }
            for t in 0..<interpolationTaps {
                let p = min(max(base + t, 0), last)
                for s in -radius...radius {
                    let index = min(max(p + s, 0), last)
                    row[index - lo] += interpolationWeights[t] * gaussian[s + radius]
                }
            }
            start[o] = lo
            count[o] = hi - lo + 1
            for t in 0..<count[o] { weights[o * taps + t] = Float(row[t]) }
        }
    }

    /// Keys' cubic convolution kernel with a = −½ (|x| in voxels).
    static func keys(_ x: Double) -> Double {
        let x = abs(x)
        if x <= 1 { return (1.5 * x - 2.5) * x * x + 1 }
        if x < 2 { return ((-0.5 * x + 2.5) * x - 4) * x + 2 }
        return 0
    }
}

/// A pointer that may cross into `concurrentPerform` workers; each worker writes a disjoint range.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
}

/// Runs `body` over `0..<count` split into contiguous chunks on all cores.
func parallelChunks(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let threads = ProcessInfo.processInfo.activeProcessorCount
    let chunks = min(count, max(1, threads * 4))
    if chunks <= 1 || threads <= 1 {
        body(0..<count)
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        body((c * count / chunks)..<((c + 1) * count / chunks))
    }
}

/// Grid-to-grid resampling through patient coordinates.
///
/// When the output axes are parallel to the source axes (resampling to a spacing, resizing, or any grid sharing
/// the direction cosines) the work is three separable 1-D passes (x, then y, then z), each a sparse weighted sum
/// over a few source voxels, run over z-slabs on all cores; anti-aliasing folds the Gaussian pre-filter into
/// those passes. Otherwise every output voxel is mapped through the full affine and interpolated (after a
/// separable Gaussian pre-filter when anti-aliasing).
enum Resampler {
    /// Resamples a float volume onto `geometry`.
    ///
    /// Output voxel (i, j, k) has the value of the source at the patient position `geometry.position(i, j, k)`:
    /// source index `u = A_src⁻¹ (p − o_src)`, interpolated with edge replication outside the source grid.
    /// With `antiAlias`, the source is first smoothed along each axis `a` by a Gaussian of σₐ = max(0, (rₐ − 1)/2)
    /// source voxels, rₐ being the output step in source voxels along `a` (the downsampling factor).
    static func resample(
        _ source: Volume<Float>, onto geometry: VolumeGeometry, interpolation: Interpolation,
        antiAlias: Bool, outside: OutsideValue = .clamp
    ) throws(VolumesError) -> Volume<Float> {
        guard let map = IndexMap(from: geometry, to: source.geometry) else {
            throw VolumesError(.singularDirection, transform: "Resample", "the source direction is singular")
        }
        return resample(
            source, onto: geometry, map: map, interpolation: interpolation, antiAlias: antiAlias,
            outside: outside)
    }

    static func antiAliasSigma(_ map: IndexMap) -> Vector3 {
        // Row a of m: how far the source index along a moves per output step along each output axis.
        let rows = (0..<3).map { r in Vector3(map.m[r, 0], map.m[r, 1], map.m[r, 2]) }
        let factors = rows.map { row in max(abs(row.x), abs(row.y), abs(row.z)) }
        return Vector3(max(0, (factors[0] - 1) / 2), max(0, (factors[1] - 1) / 2), max(0, (factors[2] - 1) / 2))
    }

    static func resample(
        _ source: Volume<Float>, onto geometry: VolumeGeometry, map: IndexMap,
        interpolation: Interpolation, antiAlias: Bool, outside: OutsideValue,
        displacement: DisplacementField? = nil
    ) -> Volume<Float> {
        let sigma = antiAlias ? antiAliasSigma(map) : Vector3(0, 0, 0)
        let n = source.geometry.dimensions
        let o = geometry.dimensions
        if map.isAxisAligned && displacement == nil && outside == .clamp {
            let kx = AxisKernel(
                inputCount: n.x, outputCount: o.x, scale: map.m[0, 0], offset: map.t.x,
                interpolation: interpolation, sigma: sigma.x)
            let ky = AxisKernel(
                inputCount: n.y, outputCount: o.y, scale: map.m[1, 1], offset: map.t.y,
                interpolation: interpolation, sigma: sigma.y)
            let kz = AxisKernel(
                inputCount: n.z, outputCount: o.z, scale: map.m[2, 2], offset: map.t.z,
                interpolation: interpolation, sigma: sigma.z)
            let voxels = separable(source.voxels, dimensions: n, kernels: (kx, ky, kz))
            return Volume(geometry: geometry, voxels: voxels)
        }
        var prefiltered = source.voxels
        if sigma.x > 0 || sigma.y > 0 || sigma.z > 0 {
            let kernels = (
                AxisKernel(
                    inputCount: n.x, outputCount: n.x, scale: 1, offset: 0, interpolation: .nearest,
                    sigma: sigma.x),
                AxisKernel(
                    inputCount: n.y, outputCount: n.y, scale: 1, offset: 0, interpolation: .nearest,
                    sigma: sigma.y),
                AxisKernel(
                    inputCount: n.z, outputCount: n.z, scale: 1, offset: 0, interpolation: .nearest,
                    sigma: sigma.z)
            )
            prefiltered = separable(source.voxels, dimensions: n, kernels: kernels)
        }
        let voxels = general(
            prefiltered, dimensions: n, output: o, map: map, interpolation: interpolation,
            outside: outside, displacement: displacement)
        return Volume(geometry: geometry, voxels: voxels)
    }

    /// Resamples a label volume onto `geometry` with nearest-neighbour interpolation (no pre-filter).
    static func resampleLabels(
        _ source: Volume<UInt8>, onto geometry: VolumeGeometry,
        outside: UInt8? = nil
    ) -> Volume<UInt8> {
        guard let map = IndexMap(from: geometry, to: source.geometry) else {
            return Volume(geometry: geometry, repeating: outside ?? 0)
        }
        return resampleLabels(source, onto: geometry, map: map, outside: outside)
    }

    static func resampleLabels(
        _ source: Volume<UInt8>, onto geometry: VolumeGeometry, map: IndexMap,
        outside: UInt8?, displacement: DisplacementField? = nil
    ) -> Volume<UInt8> {
        let n = source.geometry.dimensions
        let o = geometry.dimensions
        let plane = o.x * o.y
        let voxels = [UInt8](unsafeUninitializedCapacity: geometry.voxelCount) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            source.voxels.withUnsafeBufferPointer { src in
                let s = src.baseAddress!
                let sourcePointer = SharedPointer(base: UnsafeMutablePointer(mutating: s))
                if map.isAxisAligned && displacement == nil {
                    // Separable: one index table per axis.
                    func table(_ count: Int, _ inputCount: Int, _ a: Double, _ b: Double) -> [Int] {
                        (0..<count).map { i in
                            let u = voxelIndex((a * Double(i) + b + 0.5).rounded(.down))
                            if outside == nil { return min(max(u, 0), inputCount - 1) }
                            return (u < 0 || u >= inputCount) ? -1 : u
                        }
                    }
                    let xs = table(o.x, n.x, map.m[0, 0], map.t.x)
                    let ys = table(o.y, n.y, map.m[1, 1], map.t.y)
                    let zs = table(o.z, n.z, map.m[2, 2], map.t.z)
                    let fill = outside ?? 0
                    parallelChunks(o.z) { range in
                        for k in range {
                            for j in 0..<o.y {
                                let d = destination.base + k * plane + j * o.x
                                let (z, y) = (zs[k], ys[j])
                                if z < 0 || y < 0 {
                                    d.initialize(repeating: fill, count: o.x)
                                    continue
                                }
                                let row = sourcePointer.base + (z * n.y + y) * n.x
                                for i in 0..<o.x {
                                    let x = xs[i]
                                    d[i] = x < 0 ? fill : row[x]
                                }
                            }
                        }
                    }
                } else {
                    parallelChunks(o.z) { range in
                        for k in range {
                            for j in 0..<o.y {
                                let d = destination.base + k * plane + j * o.x
                                for i in 0..<o.x {
                                    var u = map.m * Vector3(Double(i), Double(j), Double(k)) + map.t
                                    if let displacement { u += displacement.at(i, j, k) }
                                    var x = voxelIndex((u.x + 0.5).rounded(.down))
                                    var y = voxelIndex((u.y + 0.5).rounded(.down))
                                    var z = voxelIndex((u.z + 0.5).rounded(.down))
                                    if x < 0 || y < 0 || z < 0 || x >= n.x || y >= n.y || z >= n.z {
                                        if let outside {
                                            d[i] = outside
                                            continue
                                        }
                                        x = min(max(x, 0), n.x - 1)
                                        y = min(max(y, 0), n.y - 1)
                                        z = min(max(z, 0), n.z - 1)
                                    }
                                    d[i] = sourcePointer.base[(z * n.y + y) * n.x + x]
                                }
                            }
                        }
                    }
                }
            }
            initialized = geometry.voxelCount
        }
        return Volume(geometry: geometry, voxels: voxels)
    }

    // MARK: - Separable passes

    /// Applies one `AxisKernel` per axis; identity axes are skipped.
    ///
    /// With enough output slices to keep every core busy, the three passes are fused per output slice: z (a
    /// weighted sum of a few input planes), then y, then x, in two per-worker scratch planes, writing the output
    /// slice directly: no volume-sized intermediate is allocated and the input is streamed about once. Otherwise
    /// (few output slices, e.g. 2-D) three whole-volume passes x, y, z run, each parallel over its outer axis.
    static func separable(
        _ input: [Float], dimensions n: SIMD3<Int>,
        kernels: (x: AxisKernel, y: AxisKernel, z: AxisKernel)
    ) -> [Float] {
        let threads = ProcessInfo.processInfo.activeProcessorCount
        if kernels.z.outputCount >= 4 * threads {
            return fused(input, dimensions: n, kernels: kernels)
        }
        var current = input
        var dims = n
        if !kernels.x.isIdentity {
            current = passX(current, dims, kernels.x)
            dims.x = kernels.x.outputCount
        }
        if !kernels.y.isIdentity {
            current = passY(current, dims, kernels.y)
            dims.y = kernels.y.outputCount
        }
        if !kernels.z.isIdentity {
            current = passZ(current, dims, kernels.z)
            dims.z = kernels.z.outputCount
        }
        return current
    }

    static func fused(
        _ input: [Float], dimensions n: SIMD3<Int>,
        kernels: (x: AxisKernel, y: AxisKernel, z: AxisKernel)
    ) -> [Float] {
        let (kx, ky, kz) = kernels
        let mx = kx.outputCount
        let my = ky.outputCount
        let mz = kz.outputCount
        let plane = n.x * n.y
        let outputPlane = mx * my
        return [Float](unsafeUninitializedCapacity: outputPlane * mz) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            input.withUnsafeBufferPointer { src in
                let source = SharedPointer(base: UnsafeMutablePointer(mutating: src.baseAddress!))
                parallelChunks(mz) { range in
                    // Per-worker scratch, allocated once per chunk (not per voxel or per slice).
                    let zPlane = UnsafeMutablePointer<Float>.allocate(capacity: kz.isIdentity ? 1 : plane)
                    let yPlane = UnsafeMutablePointer<Float>.allocate(capacity: ky.isIdentity ? 1 : n.x * my)
                    defer {
                        zPlane.deallocate()
                        yPlane.deallocate()
                    }
                    for o in range {
                        // z: a weighted sum of input planes.
                        var a = UnsafePointer(source.base + o * plane)
                        if !kz.isIdentity {
                            zPlane.initialize(repeating: 0, count: plane)
                            for t in 0..<kz.count[o] {
                                let weight = kz.weights[o * kz.taps + t]
                                let s = source.base + (kz.start[o] + t) * plane
                                for p in 0..<plane { zPlane[p] += weight * s[p] }
                            }
                            a = UnsafePointer(zPlane)
                        }
                        // y: weighted sums of rows (vectorised along x).
                        var b = a
                        if !ky.isIdentity {
                            for oy in 0..<my {
                                let d = yPlane + oy * n.x
                                d.initialize(repeating: 0, count: n.x)
                                for t in 0..<ky.count[oy] {
                                    let weight = ky.weights[oy * ky.taps + t]
                                    let s = a + (ky.start[oy] + t) * n.x
                                    for i in 0..<n.x { d[i] += weight * s[i] }
                                }
                            }
                            b = UnsafePointer(yPlane)
                        }
                        // x: a few taps per output voxel, straight into the output slice.
                        let d = destination.base + o * outputPlane
                        if kx.isIdentity {
                            d.update(from: b, count: outputPlane)
                            continue
                        }
                        kx.weights.withUnsafeBufferPointer { w in
                            for row in 0..<my {
                                let s = b + row * n.x
                                let line = d + row * mx
                                for ox in 0..<mx {
                                    let first = s + kx.start[ox]
                                    let weights = w.baseAddress! + ox * kx.taps
                                    var sum: Float = 0
                                    for t in 0..<kx.count[ox] { sum += weights[t] * first[t] }
                                    line[ox] = sum
                                }
                            }
                        }
                    }
                }
            }
            initialized = outputPlane * mz
        }
    }

    static func passX(_ input: [Float], _ n: SIMD3<Int>, _ kernel: AxisKernel) -> [Float] {
        let m = kernel.outputCount
        let rows = n.y * n.z
        return [Float](unsafeUninitializedCapacity: m * rows) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            input.withUnsafeBufferPointer { src in
                let source = SharedPointer(base: UnsafeMutablePointer(mutating: src.baseAddress!))
                parallelChunks(rows) { range in
                    kernel.weights.withUnsafeBufferPointer { w in
                        kernel.start.withUnsafeBufferPointer { start in
                            kernel.count.withUnsafeBufferPointer { count in
                                for row in range {
                                    let s = source.base + row * n.x
                                    let d = destination.base + row * m
                                    for o in 0..<m {
                                        let first = s + start[o]
                                        let weights = w.baseAddress! + o * kernel.taps
                                        var sum: Float = 0
                                        for t in 0..<count[o] { sum += weights[t] * first[t] }
                                        d[o] = sum
                                    }
                                }
                            }
                        }
                    }
                }
            }
            initialized = m * rows
        }
    }

    static func passY(_ input: [Float], _ n: SIMD3<Int>, _ kernel: AxisKernel) -> [Float] {
        let m = kernel.outputCount
        return [Float](unsafeUninitializedCapacity: n.x * m * n.z) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            input.withUnsafeBufferPointer { src in
                let source = SharedPointer(base: UnsafeMutablePointer(mutating: src.baseAddress!))
                parallelChunks(n.z) { range in
                    for k in range {
                        for o in 0..<m {
                            let d = destination.base + (k * m + o) * n.x
                            d.initialize(repeating: 0, count: n.x)
                            for t in 0..<kernel.count[o] {
                                let weight = kernel.weights[o * kernel.taps + t]
                                let s = source.base + (k * n.y + kernel.start[o] + t) * n.x
                                for i in 0..<n.x { d[i] += weight * s[i] }
                            }
                        }
                    }
                }
            }
            initialized = n.x * m * n.z
        }
    }

    static func passZ(_ input: [Float], _ n: SIMD3<Int>, _ kernel: AxisKernel) -> [Float] {
        let m = kernel.outputCount
        let plane = n.x * n.y
        return [Float](unsafeUninitializedCapacity: plane * m) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            input.withUnsafeBufferPointer { src in
                let source = SharedPointer(base: UnsafeMutablePointer(mutating: src.baseAddress!))
                // Chunks of output planes and, inside a plane, of rows, so both cores work even for few planes.
                let rowBlock = 64
                let blocks = (n.y + rowBlock - 1) / rowBlock
                parallelChunks(m * blocks) { range in
                    for item in range {
                        let o = item / blocks
                        let block = item % blocks
                        let offset = block * rowBlock * n.x
                        let length = min(rowBlock, n.y - block * rowBlock) * n.x
                        let d = destination.base + o * plane + offset
                        d.initialize(repeating: 0, count: length)
                        for t in 0..<kernel.count[o] {
                            let weight = kernel.weights[o * kernel.taps + t]
                            let s = source.base + (kernel.start[o] + t) * plane + offset
                            for p in 0..<length { d[p] += weight * s[p] }
                        }
                    }
                }
            }
            initialized = plane * m
        }
    }

    // MARK: - General affine (and deformable) sampling

    static func general(
        _ input: [Float], dimensions n: SIMD3<Int>, output o: SIMD3<Int>, map: IndexMap,
        interpolation: Interpolation, outside: OutsideValue,
        displacement: DisplacementField?
    ) -> [Float] {
        let plane = o.x * o.y
        let count = o.x * o.y * o.z
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            let destination = SharedPointer(base: out.baseAddress!)
            input.withUnsafeBufferPointer { src in
                let source = SharedPointer(base: UnsafeMutablePointer(mutating: src.baseAddress!))
                parallelChunks(o.z) { range in
                    let sampler = PointSampler(base: source.base, n: n, outside: outside)
                    for k in range {
                        for j in 0..<o.y {
                            let d = destination.base + k * plane + j * o.x
                            for i in 0..<o.x {
                                var u = map.m * Vector3(Double(i), Double(j), Double(k)) + map.t
                                if let displacement { u += displacement.at(i, j, k) }
                                switch interpolation {
                                case .nearest: d[i] = sampler.nearest(u)
                                case .linear: d[i] = sampler.linear(u)
                                case .cubic: d[i] = sampler.cubic(u)
                                }
                            }
                        }
                    }
                }
            }
            initialized = count
        }
    }
}

/// Point interpolation in a float volume at continuous voxel index `u`, with clamped or constant outside.
struct PointSampler {
    let base: UnsafeMutablePointer<Float>
    let n: SIMD3<Int>
    let outside: OutsideValue

    @inline(__always) func value(_ x: Int, _ y: Int, _ z: Int) -> Float {
        if x < 0 || y < 0 || z < 0 || x >= n.x || y >= n.y || z >= n.z {
            switch outside {
            case .constant(let fill): return fill
            case .clamp:
                return base[(min(max(z, 0), n.z - 1) * n.y + min(max(y, 0), n.y - 1)) * n.x + min(max(x, 0), n.x - 1)]
            }
        }
        return base[(z * n.y + y) * n.x + x]
    }

    @inline(__always) func nearest(_ u: Vector3) -> Float {
        value(
            voxelIndex((u.x + 0.5).rounded(.down)), voxelIndex((u.y + 0.5).rounded(.down)),
            voxelIndex((u.z + 0.5).rounded(.down)))
    }

    @inline(__always) func linear(_ u: Vector3) -> Float {
        let f = Vector3(u.x.rounded(.down), u.y.rounded(.down), u.z.rounded(.down))
        guard f.x.magnitude < 1e9, f.y.magnitude < 1e9, f.z.magnitude < 1e9 else { return value(-1, -1, -1) }
        let x = Int(f.x)
        let y = Int(f.y)
        let z = Int(f.z)
        let fx = Float(u.x - f.x)
        let fy = Float(u.y - f.y)
        let fz = Float(u.z - f.z)
        let c00 = value(x, y, z) * (1 - fx) + value(x + 1, y, z) * fx
        let c10 = value(x, y + 1, z) * (1 - fx) + value(x + 1, y + 1, z) * fx
        let c01 = value(x, y, z + 1) * (1 - fx) + value(x + 1, y, z + 1) * fx
        let c11 = value(x, y + 1, z + 1) * (1 - fx) + value(x + 1, y + 1, z + 1) * fx
        return (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz
    }

    @inline(__always) func cubic(_ u: Vector3) -> Float {
        let f = Vector3(u.x.rounded(.down), u.y.rounded(.down), u.z.rounded(.down))
        guard f.x.magnitude < 1e9, f.y.magnitude < 1e9, f.z.magnitude < 1e9 else { return value(-1, -1, -1) }
        let x = Int(f.x) - 1
        let y = Int(f.y) - 1
        let z = Int(f.z) - 1
        let dx = u.x - f.x
        let dy = u.y - f.y
        let dz = u.z - f.z
        // SIMD4 weights: no per-voxel heap allocation.
        let wx = SIMD4<Float>(
            Float(AxisKernel.keys(1 + dx)), Float(AxisKernel.keys(dx)),
            Float(AxisKernel.keys(1 - dx)), Float(AxisKernel.keys(2 - dx)))
        let wy = SIMD4<Float>(
            Float(AxisKernel.keys(1 + dy)), Float(AxisKernel.keys(dy)),
            Float(AxisKernel.keys(1 - dy)), Float(AxisKernel.keys(2 - dy)))
        let wz = SIMD4<Float>(
            Float(AxisKernel.keys(1 + dz)), Float(AxisKernel.keys(dz)),
            Float(AxisKernel.keys(1 - dz)), Float(AxisKernel.keys(2 - dz)))
        var total: Float = 0
        for c in 0..<4 {
            var plane: Float = 0
            for b in 0..<4 {
                let row = SIMD4<Float>(
                    value(x, y + b, z + c), value(x + 1, y + b, z + c), value(x + 2, y + b, z + c),
                    value(x + 3, y + b, z + c))
                plane += (row * wx).sum() * wy[b]
            }
            total += plane * wz[c]
        }
        return total
    }
}

/// A smooth displacement field in source voxel units, given on a coarse control grid spanning the output grid and
/// interpolated trilinearly at each output voxel.
struct DisplacementField: Sendable {
    /// Control points per axis (≥ 2).
    var control: SIMD3<Int>
    /// Output grid dimensions the control grid spans (corner control points on corner voxels).
    var output: SIMD3<Int>
    /// Displacements (x, y, z) in source voxels, control grid z, y, x order.
    var values: [Vector3]

    @inline(__always) func at(_ i: Int, _ j: Int, _ k: Int) -> Vector3 {
        func coordinate(_ index: Int, _ size: Int, _ points: Int) -> (Int, Double) {
            let g = size > 1 ? Double(index) * Double(points - 1) / Double(size - 1) : 0
            let lower = min(Int(g), points - 2)
            return (lower, g - Double(lower))
        }
        let (x, fx) = coordinate(i, output.x, control.x)
        let (y, fy) = coordinate(j, output.y, control.y)
        let (z, fz) = coordinate(k, output.z, control.z)
        func v(_ a: Int, _ b: Int, _ c: Int) -> Vector3 { values[((z + c) * control.y + y + b) * control.x + x + a] }
        let c00 = v(0, 0, 0) * (1 - fx) + v(1, 0, 0) * fx
        let c10 = v(0, 1, 0) * (1 - fx) + v(1, 1, 0) * fx
        let c01 = v(0, 0, 1) * (1 - fx) + v(1, 0, 1) * fx
        let c11 = v(0, 1, 1) * (1 - fx) + v(1, 1, 1) * fx
        return (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz
    }
}

/// A sampling coordinate (voxel units, already rounded) as an index: values far outside any grid (or NaN, from a
/// degenerate geometry) become ±10⁹ / -1, which every caller treats as outside or clamps to the edge, instead of
/// trapping in `Int(_:)`.
@inline(__always)
func voxelIndex(_ u: Double) -> Int {
    guard u == u else { return -1 }
    return Int(min(max(u, -1e9), 1e9))
}
