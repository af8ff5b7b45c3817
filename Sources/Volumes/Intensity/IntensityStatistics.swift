import DICOMIO

/// Statistics and point maps shared by the intensity transforms (accumulated in Double).
enum IntensityStatistics {
    /// Minimum and maximum. - Throws: `.nonFinite` when a voxel is NaN or ±Inf.
    static func extrema(_ voxels: [Float], transform: String) throws(VolumesError) -> (Float, Float) {
        var lo = Float.infinity
        var hi = -Float.infinity
        var finite = true
        voxels.withUnsafeBufferPointer { v in
            for x in v {
                if !x.isFinite { finite = false }
                lo = min(lo, x)
                hi = max(hi, x)
            }
        }
        guard finite, !voxels.isEmpty else {
            throw VolumesError(
                .nonFinite, transform: transform,
                "the volume is empty or holds NaN/Inf voxels; check the decoder and rescale")
        }
        return (lo, hi)
    }

    /// `v′ = a + (b − a)(v − lo)/(hi − lo)`, optionally clipped to [a, b]; `a` everywhere when hi == lo.
    static func affine(
        _ voxels: inout [Float], from source: (Double, Double), to target: (Float, Float),
        clip: Bool
    ) {
        let (lo, hi) = source
        let (a, b) = target
        guard hi > lo else {
            for i in voxels.indices { voxels[i] = a }
            return
        }
        // a + (v − lo)·k, so that v = lo maps to exactly a.
        let k = Float(Double(b - a) / (hi - lo))
        let low = Float(lo)
        voxels.withUnsafeMutableBufferPointer { v in
            if clip {
                for i in v.indices { v[i] = min(max(a + (v[i] - low) * k, a), b) }
            } else {
                for i in v.indices { v[i] = a + (v[i] - low) * k }
            }
        }
    }

    /// Mean and population standard deviation over the voxels where `mask` is non-zero (all when `nil`).
    /// - Throws: `.emptyMask`, `.nonFinite`.
    static func meanAndDeviation(_ voxels: [Float], mask: [UInt8]?, transform: String) throws(VolumesError)
        -> (mean: Double, deviation: Double, count: Int)
    {
        var sum = 0.0
        var count = 0
        voxels.withUnsafeBufferPointer { v in
            if let mask {
                for i in v.indices where mask[i] != 0 {
                    sum += Double(v[i])
                    count += 1
                }
            } else {
                for x in v { sum += Double(x) }
                count = v.count
            }
        }
        guard count > 0 else {
            throw VolumesError(
                .emptyMask, transform: transform,
                "the mask selects no voxel; use the whole volume or a lower threshold")
        }
        let mean = sum / Double(count)
        var squares = 0.0
        voxels.withUnsafeBufferPointer { v in
            if let mask {
                for i in v.indices where mask[i] != 0 {
                    let d = Double(v[i]) - mean
                    squares += d * d
                }
            } else {
                for x in v {
                    let d = Double(x) - mean
                    squares += d * d
                }
            }
        }
        guard mean.isFinite, squares.isFinite else {
            throw VolumesError(.nonFinite, transform: transform, "the volume holds NaN/Inf voxels")
        }
        return (mean, (squares / Double(count)).squareRoot(), count)
    }

    /// Percentiles with linear interpolation between order statistics (numpy's default `method='linear'`):
    /// for p in [0, 100], position `h = p/100 · (n − 1)`, value `x₍⌊h⌋₎ + (h − ⌊h⌋)(x₍⌊h⌋+1₎ − x₍⌊h⌋₎)`.
    /// Exact (selection on a copy, O(n) per percentile), not a histogram estimate.
    static func percentiles(_ voxels: [Float], _ ps: [Double]) -> [Double] {
        var work = voxels
        let n = work.count
        guard n > 0 else { return ps.map { _ in 0 } }
        return ps.map { p in
            let h = p.isFinite ? min(max(p, 0), 100) / 100 * Double(n - 1) : 0
            let lower = CheckedConversion.int(h, rounding: .down) ?? 0
            let a = Double(select(&work, lower))
            guard lower + 1 < n, h > Double(lower) else { return a }
            let b = Double(select(&work, lower + 1))
            return a + (h - Double(lower)) * (b - a)
        }
    }

    /// The k-th smallest value (0-based), partially reordering `values` (Hoare quickselect, median-of-three).
    static func select(_ values: inout [Float], _ k: Int) -> Float {
        values.withUnsafeMutableBufferPointer { v in
            var lo = 0
            var hi = v.count - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                // Median of three as pivot.
                if v[mid] < v[lo] { v.swapAt(mid, lo) }
                if v[hi] < v[lo] { v.swapAt(hi, lo) }
                if v[hi] < v[mid] { v.swapAt(hi, mid) }
                let pivot = v[mid]
                var i = lo
                var j = hi
                while i <= j {
                    while v[i] < pivot { i += 1 }
                    while pivot < v[j] { j -= 1 }
                    if i <= j {
                        v.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if k <= j { hi = j } else if k >= i { lo = i } else { return v[k] }
            }
            return v[k]
        }
    }

    /// numpy's `interp(x, xp, fp)`: piecewise linear through (xp, fp), xp non-decreasing, clamped outside.
    @inline(__always) static func interpolate(_ x: Double, _ xp: [Double], _ fp: [Double]) -> Double {
        let last = xp.count - 1
        if x < xp[0] { return fp[0] }
        if x >= xp[last] { return fp[last] }
        // Largest j with xp[j] <= x (< last here).
        var lo = 0
        var hi = last
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if xp[mid] <= x { lo = mid } else { hi = mid }
        }
        let span = xp[lo + 1] - xp[lo]
        return span > 0 ? fp[lo] + (x - xp[lo]) * (fp[lo + 1] - fp[lo]) / span : fp[lo]
    }
}
