/// Closed planar contours of a mask on one slice: the inverse of `ContourRasterizer.fill`, used to write RT
/// Structure Sets.
///
/// Rule (marching squares at voxel centres, iso-level ½): the voxel centres (i, j) are the corners of a dual grid
/// of cells [i, i+1] × [j, j+1], the plane padded with one ring of outside centres. Every cell side whose two
/// centres differ gets a vertex at its midpoint, (i + ½, j) or (i, j + ½); inside each cell a segment joins the
/// midpoint where the boundary enters to the one where it leaves, cutting the inside corners off the outside ones.
/// A cell whose two inside centres sit on a diagonal (a saddle) keeps them apart, so diagonal neighbours belong to
/// separate contours (the inside is 4-connected). The segments close into polygons: one per boundary, holes and
/// islands inside holes as contours of their own; straight runs are merged (collinear vertices dropped).
///
/// Exactness: a segment inside a cell passes at least √2/4 ≈ 0.354 voxel from every centre (a corner cut off
/// through the midpoints of its two sides; straight across, 0.5), and the contours separate every inside centre
/// from every outside one. So the even-odd fill at voxel centres (`ContourRasterizer.fill`) gives back the mask
/// exactly, and still does after every vertex has moved by less than 0.35 voxel (rounding of the written
/// coordinates, the affine there and back): no edge can cross a centre on the way.
public enum ContourTracer {
    /// The contours of the voxels where `inside(i, j)` holds on a `columns × rows` plane, as polygons of continuous
    /// voxel coordinates (i, j). Deterministic: contours in the order their first vertex is met scanning rows of
    /// the doubled coordinate grid, each starting there.
    public static func contours(columns: Int, rows: Int, inside: (Int, Int) -> Bool) -> [[SIMD2<Double>]] {
        guard columns > 0, rows > 0 else { return [] }
        // Midpoints in doubled coordinates (X, Y) = (2i + 1, 2j) or (2i, 2j + 1), X in -2...2·columns, Y likewise.
        let width = 2 * columns + 3
        let height = 2 * rows + 3
        func key(_ x: Int, _ y: Int) -> Int { (y + 2) * width + (x + 2) }
        var next = [Int32](repeating: -1, count: width * height)
        func at(_ i: Int, _ j: Int) -> Bool { i >= 0 && j >= 0 && i < columns && j < rows && inside(i, j) }
        var any = false
        for j in -1..<rows {
            for i in -1..<columns {
                // Corners in cyclic order c0 (i, j), c1 (i+1, j), c2 (i+1, j+1), c3 (i, j+1); side s joins c_s and
                // c_(s+1).
                let corners = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1))
                let v = [corners.0, corners.1, corners.2, corners.3]
                if v[0] == v[1] && v[1] == v[2] && v[2] == v[3] { continue }
                any = true
                let midpoints = [
                    key(2 * i + 1, 2 * j), key(2 * i + 2, 2 * j + 1), key(2 * i + 1, 2 * j + 2), key(2 * i, 2 * j + 1),
                ]
                // A side where the cycle goes outside → inside is an entry; it joins the next exit (inside →
                // outside) along the cycle, cutting off the inside corners between them.
                for s in 0..<4 where !v[s] && v[(s + 1) % 4] {
                    var e = (s + 1) % 4
                    while !(v[e] && !v[(e + 1) % 4]) { e = (e + 1) % 4 }
                    next[midpoints[s]] = Int32(midpoints[e])
                }
            }
        }
        guard any else { return [] }
        var polygons: [[SIMD2<Double>]] = []
        var visited = [Bool](repeating: false, count: next.count)
        for start in next.indices where next[start] >= 0 && !visited[start] {
            var loop: [SIMD2<Int>] = []
            var k = start
            while !visited[k] {
                visited[k] = true
                loop.append(SIMD2(k % width - 2, k / width - 2))
                k = Int(next[k])
            }
            polygons.append(mergeStraightRuns(loop).map { SIMD2(Double($0.x) / 2, Double($0.y) / 2) })
        }
        return polygons
    }

    /// The loop without its vertices that lie on a straight line between their neighbours (exact, on integers).
    static func mergeStraightRuns(_ loop: [SIMD2<Int>]) -> [SIMD2<Int>] {
        let n = loop.count
        guard n > 3 else { return loop }
        return loop.indices.compactMap { m in
            let a = loop[(m + n - 1) % n]
            let b = loop[m]
            let c = loop[(m + 1) % n]
            let u = b &- a
            let w = c &- b
            return u.x * w.y - u.y * w.x == 0 ? nil : b
        }
    }
}
