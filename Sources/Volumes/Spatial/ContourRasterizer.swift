import DICOMIO
import Foundation

/// Planar contours filled onto a voxel grid: the RT Structure Set rasterisation rule.
///
/// Placement: every point of a contour is mapped to continuous voxel indices (i, j, k) with
/// `VolumeGeometry.continuousIndex(of:)`. The contour lies on slice k when every point's k is within
/// `sliceTolerance` (a tenth of the slice spacing) of that integer; a contour whose points are coplanar but whose
/// plane is tilted from the slices is refused as oblique, any other spread as off the slice planes.
///
/// Fill rule (even-odd at voxel centres): voxel (i, j) of slice k is inside an ROI when a ray from its centre
/// towards +i crosses the edges of the ROI's contours on that slice an odd number of times. An edge from a to b
/// counts when exactly one of a.j ≤ j and b.j ≤ j holds (half-open, so a vertex on the ray counts once and
/// horizontal edges never); its crossing is at i = a.i + (j − a.j)(b.i − a.i)/(b.j − a.j). Equivalently, with the
/// crossings of row j sorted, c₀ ≤ c₁ ≤ …, the voxels c₂ₘ ≤ i < c₂ₘ₊₁ are inside. All contours of an ROI on a
/// slice are crossed together, so a contour inside another is a hole and a third one inside the hole an island.
/// This is the rule of `skimage.draw.polygon` and PNPOLY for centres not on an edge; centres exactly on an edge
/// follow the half-open rule (left edges in, right edges out).
public enum ContourRasterizer {
    /// How far (in slices) a contour point may lie from its slice plane: 0.1 × the slice spacing.
    public static let sliceTolerance = 0.1

    /// A contour placed on the grid: its slice and its points as (i, j) voxel coordinates.
    public struct PlacedContour: Sendable, Equatable {
        public var slice: Int
        public var polygon: [SIMD2<Double>]
    }

    /// Where a contour lies on `geometry`'s slices.
    /// - Parameters:
    ///   - what: names the ROI and the contour in errors ("ROI 'Liver' (number 1), contour 3").
    /// - Throws: `.structureSet` "contour off the slice planes" (between slices or spread over several),
    ///   "oblique contour plane" (coplanar but tilted), or a slice outside the grid, each naming `what`.
    public static func place(
        _ points: [Vector3], on geometry: VolumeGeometry, what: String, path: String? = nil
    ) throws(DICOMError) -> PlacedContour {
        var indices: [SIMD3<Double>] = []
        indices.reserveCapacity(points.count)
        for p in points {
            guard let index = geometry.continuousIndex(of: p) else {
                throw DICOMError(
                    .structureSet, "\(what): the series' grid is degenerate (zero spacing or coplanar axes)",
                    path: path)
            }
            indices.append(index)
        }
        guard let low = indices.map(\.z).min(), let high = indices.map(\.z).max() else {
            throw DICOMError(.structureSet, "\(what): the contour has no points", path: path)
        }
        let middle = ((low + high) / 2).rounded()
        let spacing = geometry.spacing.z
        if high - middle <= sliceTolerance, middle - low <= sliceTolerance {
            guard let k = Int(checked: middle), k >= 0, k < geometry.dimensions.z else {
                throw DICOMError(
                    .structureSet,
                    "\(what): the contour lies at slice position \(format(middle)), outside the "
                        + "\(geometry.dimensions.z) slices of the referenced series; check that the structure set "
                        + "belongs to this series", path: path)
            }
            return PlacedContour(slice: k, polygon: indices.map { SIMD2($0.x, $0.y) })
        }
        if high - low <= 2 * sliceTolerance {
            throw DICOMError(
                .structureSet,
                "\(what): contour off the slice planes: its points lie at slice position \(format(low))"
                    + "…\(format(high)), more than \(sliceTolerance) × the slice spacing "
                    + "(\(format(sliceTolerance * spacing)) mm) from slice \(format(middle)); only contours drawn on "
                    + "the series' slices can be filled", path: path)
        }
        let slicePlane = geometry.direction.x.cross(geometry.direction.y).normalized
        if let normal = planeNormal(points), isPlanar(points, normal: normal, tolerance: sliceTolerance * spacing) {
            let cosine = min(1, abs(normal.dot(slicePlane)))
            let degrees = acos(cosine) * 180 / Double.pi
            throw DICOMError(
                .structureSet,
                "\(what): oblique contour plane, tilted \(format(degrees))° from the slice planes of the referenced "
                    + "series; only contours drawn on the series' slices can be filled (resample the structure "
                    + "set onto this series in the planning system)", path: path)
        }
        throw DICOMError(
            .structureSet,
            "\(what): contour off the slice planes: its points spread from slice position \(format(low)) to "
                + "\(format(high)) and lie on no plane; a CLOSED_PLANAR contour must lie on one slice", path: path)
    }

    /// The voxels inside `polygons` (continuous (i, j) coordinates) on a `columns × rows` plane, i fastest, by the
    /// even-odd rule at voxel centres (see the type's documentation).
    public static func fill(_ polygons: [[SIMD2<Double>]], columns: Int, rows: Int) -> [Bool] {
        var mask = [Bool](repeating: false, count: max(0, columns) * max(0, rows))
        fill(polygons, columns: columns, rows: rows) { i, j in mask[j * columns + i] = true }
        return mask
    }

    /// Calls `body(i, j)` once for every voxel inside `polygons`, row by row.
    public static func fill(
        _ polygons: [[SIMD2<Double>]], columns: Int, rows: Int, _ body: (Int, Int) -> Void
    ) {
        guard columns > 0, rows > 0 else { return }
        var lowest = Double.infinity
        var highest = -Double.infinity
        for polygon in polygons {
            for p in polygon {
                lowest = min(lowest, p.y)
                highest = max(highest, p.y)
            }
        }
        guard lowest <= highest else { return }
        // Rows the polygons can cross.
        let first = ceilClamped(lowest, upper: rows)
        let last = highest >= 0 ? min(rows - 1, ceilClamped(highest.rounded(.down), upper: rows)) : -1
        guard first <= last else { return }
        var crossings: [Double] = []
        for j in first...last {
            let y = Double(j)
            crossings.removeAll(keepingCapacity: true)
            for polygon in polygons where polygon.count >= 2 {
                var a = polygon[polygon.count - 1]
                for b in polygon {
                    if (a.y <= y) != (b.y <= y) {
                        crossings.append(a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y))
                    }
                    a = b
                }
            }
            crossings.sort()
            var m = 0
            while m + 1 < crossings.count {
                // Voxels c₂ₘ ≤ i < c₂ₘ₊₁.
                let from = ceilClamped(crossings[m], upper: columns)
                let to = ceilClamped(crossings[m + 1], upper: columns)
                if from < to { for i in from..<to { body(i, j) } }
                m += 2
            }
        }
    }

    /// Newell's normal of a polygon (unit), nil when it has no area.
    static func planeNormal(_ points: [Vector3]) -> Vector3? {
        guard points.count >= 3 else { return nil }
        var n = Vector3(0, 0, 0)
        var a = points[points.count - 1]
        for b in points {
            n += Vector3((a.y - b.y) * (a.z + b.z), (a.z - b.z) * (a.x + b.x), (a.x - b.x) * (a.y + b.y))
            a = b
        }
        let length = n.length
        guard length.isFinite, length > 1e-9 else { return nil }
        return n / length
    }

    /// True when every point lies within `tolerance` mm of the plane through the centroid with `normal`.
    static func isPlanar(_ points: [Vector3], normal: Vector3, tolerance: Double) -> Bool {
        let centroid = points.reduce(Vector3(0, 0, 0), +) / Double(points.count)
        return points.allSatisfy { abs(($0 - centroid).dot(normal)) <= tolerance }
    }
}

/// ⌈x⌉ clamped to 0...upper, converted without trapping (NaN and x ≤ 0 give 0, +∞ gives upper).
private func ceilClamped(_ x: Double, upper: Int) -> Int {
    guard x > 0 else { return 0 }
    guard x < Double(upper) else { return upper }
    return Int(exactly: x.rounded(.up)) ?? upper
}

private func format(_ v: Double) -> String {
    let rounded = (v * 100).rounded() / 100 + 0
    return rounded == rounded.rounded() ? String(Int(checked: rounded) ?? 0) : "\(rounded)"
}
