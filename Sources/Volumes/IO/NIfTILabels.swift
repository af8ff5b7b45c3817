import DICOMIO
import Foundation

/// NIfTI-1 label maps (made in 3D Slicer, ITK-SNAP, …) as label volumes on a DICOM series' grid.
///
/// A NIfTI file places its voxels in RAS (x to the patient's left → right, y posterior → anterior); DICOM in LPS.
/// The two differ by the sign of x and y, so a NIfTI affine row-negated in x and y is the LPS grid
/// (`VolumeGeometry.affineRAS` is the inverse). The file's grid must be the series' grid within
/// `NIfTI.GeometryTolerance`: nothing is resampled, so labels drawn on a resliced or reoriented copy are refused
/// with what differs.
extension NIfTI {
    /// How closely a NIfTI grid must match a series' grid.
    public struct GeometryTolerance: Sendable, Equatable {
        /// Every corner voxel's centre may move by at most this fraction of the smallest voxel edge (covers the
        /// origin and the spacing: a spacing error accumulates over the axis).
        public var position: Double
        /// Each component of each axis' unit direction may differ by at most this.
        public var direction: Double

        public init(position: Double = 0.1, direction: Double = 1e-3) {
            self.position = position
            self.direction = direction
        }

        public static let `default` = GeometryTolerance()
    }

    /// NIfTI datatype codes accepted for label maps, with their names.
    public static let labelDatatypes: [Int: (name: String, bits: Int)] = [
        2: ("uint8", 8), 4: ("int16", 16), 512: ("uint16", 16), 8: ("int32", 32), 16: ("float32", 32),
    ]
}

extension NIfTI.File {
    /// The file's voxel grid in DICOM LPS: from the sform when sform_code > 0, else from the qform
    /// (quaternion, qfac and pixdim) when qform_code > 0.
    /// - Throws: when neither is set (the file does not say where it is in the patient), or when the affine is
    ///   not finite or has a zero-length column.
    public func geometry(path: String = "") throws(NIfTI.Error) -> VolumeGeometry {
        var columns: [Vector3]
        var offset: Vector3
        if sformCode > 0 {
            columns = (0..<3).map { c in Vector3(sform[0][c], sform[1][c], sform[2][c]) }
            offset = Vector3(sform[0][3], sform[1][3], sform[2][3])
        } else if qformCode > 0 {
            guard spacing.x > 0, spacing.y > 0, spacing.z > 0 else {
                throw NIfTI.Error(
                    message: "the qform's pixdim[1...3] (\(spacing.x), \(spacing.y), \(spacing.z)) must be positive",
                    path: path)
            }
            let (b, c, d) = quaternion
            let a = max(0, 1 - (b * b + c * c + d * d)).squareRoot()
            let r = [
                [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
            ]
            let scale = [spacing.x, spacing.y, spacing.z * (qfac < 0 ? -1 : 1)]
            columns = (0..<3).map { col in Vector3(r[0][col], r[1][col], r[2][col]) * scale[col] }
            offset = qoffset
        } else {
            throw NIfTI.Error(
                message: "neither sform_code nor qform_code is set, so the file does not say where its voxels are "
                    + "in the patient; save the labels with the image's geometry (Slicer, ITK-SNAP and nibabel do)",
                path: path)
        }
        // RAS → LPS: negate x and y.
        columns = columns.map { Vector3(-$0.x, -$0.y, $0.z) }
        let origin = Vector3(-offset.x, -offset.y, offset.z)
        let norms = columns.map(\.length)
        guard norms.allSatisfy({ $0.isFinite && $0 > 0 }), origin.x.isFinite, origin.y.isFinite, origin.z.isFinite
        else {
            throw NIfTI.Error(
                message: "the \(sformCode > 0 ? "sform" : "qform") affine is not finite or has a zero-length axis",
                path: path)
        }
        return VolumeGeometry(
            dimensions: dimensions, origin: origin, spacing: Vector3(norms[0], norms[1], norms[2]),
            direction: (columns[0] / norms[0], columns[1] / norms[1], columns[2] / norms[2]))
    }

    /// The voxels as labels 0...255 (x fastest), after scl_slope/scl_inter.
    /// - Throws: for a datatype other than uint8, int16, uint16, int32 or float32 (or a bitpix that disagrees with
    ///   it), and for a value that is not an integer in 0...255 (naming the first such voxel and how many there
    ///   are).
    public func labelValues(path: String = "") throws(NIfTI.Error) -> [UInt8] {
        guard let type = NIfTI.labelDatatypes[datatype] else {
            throw NIfTI.Error(
                message: "datatype \(datatype) is not a label datatype; label maps are uint8, int16, uint16, int32 "
                    + "or float32 (codes 2, 4, 512, 8, 16)", path: path)
        }
        guard bitsPerVoxel == type.bits else {
            throw NIfTI.Error(
                message: "bitpix \(bitsPerVoxel) disagrees with datatype \(type.name) (\(type.bits) bits)", path: path)
        }
        let count = dimensions.x * dimensions.y * dimensions.z
        var out = [UInt8](repeating: 0, count: count)
        var bad = 0
        var first: (index: Int, value: Double)?
        forEachScaledValue { i, v in
            if v.isFinite, v >= 0, v <= 255, v == v.rounded() {
                out[i] = UInt8(v)
            } else {
                bad += 1
                if first == nil { first = (i, v) }
            }
        }
        if let first {
            let plane = dimensions.x * dimensions.y
            let (k, rest) = first.index.quotientAndRemainder(dividingBy: plane)
            let (j, i) = rest.quotientAndRemainder(dividingBy: dimensions.x)
            throw NIfTI.Error(
                message: "\(bad) voxel(s) are not integer labels in 0...255, the first at (i, j, k) = (\(i), \(j), "
                    + "\(k)) with value \(first.value); a label map holds segment numbers (0 = background)",
                path: path)
        }
        return out
    }
}

extension Volume where Voxel == UInt8 {
    /// A NIfTI-1 label map on `geometry` (the grid of the DICOM series it was drawn on), voxel values unchanged.
    ///
    /// - Parameters:
    ///   - tolerance: how far the file's grid may be from `geometry` (default 0.1 voxel, 1e-3 in direction).
    ///   - maxBytes: the largest decompressed file read.
    /// - Throws: the reader's errors (hostile or truncated headers), `labelValues`' (datatype, non-integer or
    ///   out-of-range values) and, when the grids differ, one error listing every difference: dimensions, an
    ///   axis' direction (a flipped or permuted axis), spacing and the first voxel's position.
    public init(
        niftiLabels path: String, matching geometry: VolumeGeometry,
        tolerance: NIfTI.GeometryTolerance = .default, maxBytes: Int = NIfTI.defaultMaxBytes
    ) throws(NIfTI.Error) {
        let file = try NIfTI.read(path, maxBytes: maxBytes)
        let grid = try file.geometry(path: path)
        if let difference = NIfTI.differences(grid, geometry, tolerance: tolerance) {
            throw NIfTI.Error(
                message: "the label map's grid is not the series' grid: \(difference) (tolerance: "
                    + "\(tolerance.position) voxel in position, \(tolerance.direction) in direction cosines; NIfTI RAS "
                    + "read as LPS). Export the labels on the series' own grid, without resampling or reorienting",
                path: path)
        }
        let values = try file.labelValues(path: path)
        self.init(geometry: geometry, voxels: values)
    }
}

extension NIfTI {
    /// What differs between a file's grid and a series' grid beyond `tolerance`, or nil when they match.
    public static func differences(
        _ file: VolumeGeometry, _ series: VolumeGeometry, tolerance: GeometryTolerance = .default
    ) -> String? {
        func show(_ v: Vector3, _ digits: Int = 3) -> String {
            "(" + [v.x, v.y, v.z].map { String(format: "%.\(digits)f", $0) }.joined(separator: ", ") + ")"
        }
        func dims(_ d: SIMD3<Int>) -> String { "\(d.x)×\(d.y)×\(d.z)" }
        guard file.dimensions == series.dimensions else {
            return "dimensions \(dims(file.dimensions)) in the file, \(dims(series.dimensions)) in the series"
        }
        var found: [String] = []
        let names = ["x (columns)", "y (rows)", "z (slices)"]
        let fileAxes = [file.direction.x, file.direction.y, file.direction.z]
        let seriesAxes = [series.direction.x, series.direction.y, series.direction.z]
        for a in 0..<3 {
            let d = fileAxes[a] - seriesAxes[a]
            if max(abs(d.x), abs(d.y), abs(d.z)) > tolerance.direction {
                let flipped = (fileAxes[a] + seriesAxes[a]).length < 2 * tolerance.direction
                found.append(
                    "the \(names[a]) axis points \(show(fileAxes[a])) (LPS) in the file, \(show(seriesAxes[a])) in "
                        + "the series" + (flipped ? " (flipped)" : ""))
            }
        }
        let smallest = min(series.spacing.x, series.spacing.y, series.spacing.z)
        let allowed = tolerance.position * smallest
        let n = series.dimensions &- 1
        if found.isEmpty {
            let fs = [file.spacing.x, file.spacing.y, file.spacing.z]
            let ss = [series.spacing.x, series.spacing.y, series.spacing.z]
            let nn = [n.x, n.y, n.z]
            if (0..<3).contains(where: { abs(fs[$0] - ss[$0]) * Double(max(nn[$0], 1)) > allowed }) {
                found.append(
                    "spacing \(show(file.spacing, 4)) mm in the file, \(show(series.spacing, 4)) mm in the series")
            }
        }
        let shift = (file.origin - series.origin).length
        if shift > allowed {
            found.append(
                "the first voxel's centre is \(show(file.origin)) (LPS mm) in the file, \(show(series.origin)) in the "
                    + "series (\(String(format: "%.3f", shift)) mm apart)")
        }
        if found.isEmpty {
            // Everything within tolerance axis by axis; the corners must agree too (a sum of small errors).
            for corner in 0..<8 {
                let i = Double(corner & 1 == 0 ? 0 : n.x)
                let j = Double(corner & 2 == 0 ? 0 : n.y)
                let k = Double(corner & 4 == 0 ? 0 : n.z)
                let gap = (file.position(i, j, k) - series.position(i, j, k)).length
                if gap > allowed {
                    found.append(
                        "the corner voxel (\(Int(i)), \(Int(j)), \(Int(k))) is \(String(format: "%.3f", gap)) mm from "
                            + "the series'")
                    break
                }
            }
        }
        return found.isEmpty ? nil : found.joined(separator: "; ")
    }
}
