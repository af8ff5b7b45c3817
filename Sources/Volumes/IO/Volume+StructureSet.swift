import DICOMIO

/// The label volume of an RT Structure Set on a series' grid, and what went into it.
public struct StructureSetLabels: Sendable {
    /// One ROI that became a label.
    public struct Filled: Sendable, Equatable {
        public var roiNumber: Int
        public var roiName: String
        public var label: Int
        /// Contours filled (CLOSED_PLANAR ones).
        public var contours: Int
        /// Voxels inside the ROI (before overlaps are resolved).
        public var voxels: Int
    }

    /// `slices × rows × columns` labels (x fastest) on the series' grid: 0 background, the ROI's label otherwise.
    public var volume: Volume<UInt8>
    public var filled: [Filled]
    /// Voxels inside ROIs of two different labels (the higher label is kept, as for SEG segments).
    public var overlaps: Int
    /// The mapping's findings (unmatched ROIs, missing labels) and the structure set's skipped contours.
    public var warnings: [String]
}

extension Volume where Voxel == UInt8 {
    /// Rasterises an RT Structure Set onto a stack of the series it references (`ContourRasterizer`'s placement
    /// and even-odd fill at voxel centres).
    ///
    /// - Parameters:
    ///   - mapping: which ROI becomes which label (`ROILabelMapping`); nil: every ROI becomes its (3006,0022) ROI
    ///     Number (1...255), and ROIs without closed contours are left out with a warning.
    ///   - limits: `maxVoxelsPerVolume` is checked before the label volume is allocated.
    /// - Throws: `.structureSet` when the structure set does not reference the series (by (0020,000E), an image's
    ///   (0008,1155) or the frame of reference), when an ROI's frame of reference differs from the series', when
    ///   a mapped ROI has no CLOSED_PLANAR contour (empty ROI), when a label is ambiguous, and for contours off
    ///   the slice planes or on oblique planes (naming the ROI and the contour).
    public static func labels(
        structureSet: StructureSet, series: DICOMSeries, stack: SliceStack? = nil,
        mapping: ROILabelMapping? = nil, limits: ReadingLimits = .default
    ) throws(DICOMError) -> StructureSetLabels {
        let path = structureSet.path
        let stack = try series.volumeStack(stack)
        guard !stack.slices.isEmpty else {
            throw DICOMError(.structureSet, "the referenced series has no slices", path: path)
        }
        try checkReference(structureSet, series: series)
        let geometry = VolumeGeometry(stack: stack)
        let count = try limits.checkedVoxelCount(
            columns: stack.columns, rows: stack.rows, slices: stack.slices.count, path: path)

        var warnings = structureSet.warnings
        var chosen: [(roi: StructureSetROI, label: Int)] = []
        if let mapping {
            let match = mapping.match(structureSet.rois.map { ($0.number, $0.name) })
            if let first = match.ambiguous.first {
                throw DICOMError(
                    .structureSet,
                    "label \(first.label) is matched by several ROIs ("
                        + first.roiNames.map { "'\($0)'" }.joined(separator: ", ")
                        + "); rename the ROIs or narrow the label's synonyms so one ROI matches", path: path)
            }
            warnings += match.report
            for assignment in match.assignments {
                guard let roi = structureSet.rois.first(where: { $0.number == assignment.roiNumber }) else { continue }
                guard !roi.contours.isEmpty else {
                    throw DICOMError(
                        .structureSet,
                        "ROI '\(roi.name)' (number \(roi.number)) for label \(assignment.label) is empty: it has no "
                            + "CLOSED_PLANAR contour"
                            + (roi.skippedContours > 0 ? " (\(roi.skippedContours) other contour(s) skipped)" : "")
                            + "; draw the structure or leave the label out", path: path)
                }
                chosen.append((roi, assignment.label))
            }
        } else {
            for roi in structureSet.rois {
                guard (1...255).contains(roi.number) else {
                    warnings.append(
                        "ROI '\(roi.name)' has ROI Number \(roi.number), outside 1...255: left out (give a label "
                            + "mapping)")
                    continue
                }
                guard !roi.contours.isEmpty else {
                    warnings.append("ROI '\(roi.name)' (number \(roi.number)) has no CLOSED_PLANAR contour: left out")
                    continue
                }
                chosen.append((roi, roi.number))
            }
        }

        let columns = stack.columns
        let rows = stack.rows
        let plane = columns * rows
        var labels = [UInt8](repeating: 0, count: count)
        var filled: [StructureSetLabels.Filled] = []
        var overlaps = 0
        for (roi, label) in chosen {
            if let roiFrame = roi.frameOfReferenceUID, let seriesFrame = series.frameOfReferenceUID,
                roiFrame != seriesFrame
            {
                throw DICOMError(
                    .structureSet,
                    "ROI '\(roi.name)' (number \(roi.number)) is drawn in frame of reference \(roiFrame), but series "
                        + "\(series.seriesInstanceUID) is in \(seriesFrame); the structure set belongs to another "
                        + "series", path: path)
            }
            var bySlice: [Int: [[SIMD2<Double>]]] = [:]
            for contour in roi.contours {
                let placed = try ContourRasterizer.place(
                    contour.points, on: geometry,
                    what: "ROI '\(roi.name)' (number \(roi.number)), contour "
                        + "\(contour.index)", path: path)
                bySlice[placed.slice, default: []].append(placed.polygon)
            }
            // Labels are 1...255 (ROILabelMapping checks them; ROI Numbers outside were left out above).
            guard let value = UInt8(exactly: label) else { continue }
            var voxels = 0
            for (k, polygons) in bySlice {
                let base = k * plane
                ContourRasterizer.fill(polygons, columns: columns, rows: rows) { i, j in
                    let v = base + j * columns + i
                    voxels += 1
                    let old = labels[v]
                    if old != 0 && old != value { overlaps += 1 }
                    if value > old { labels[v] = value }
                }
            }
            filled.append(
                StructureSetLabels.Filled(
                    roiNumber: roi.number, roiName: roi.name, label: label, contours: roi.contours.count,
                    voxels: voxels))
        }
        return StructureSetLabels(
            volume: Volume(geometry: geometry, voxels: labels), filled: filled, overlaps: overlaps,
            warnings: warnings)
    }

    /// Refuses a structure set that names neither this series, nor one of its images, nor its frame of reference
    /// (`StructureSet.referencedSeries(in:)` with this series as the only candidate).
    static func checkReference(_ structureSet: StructureSet, series: DICOMSeries) throws(DICOMError) {
        if structureSet.referencedSeries(in: [series]) != nil { return }
        let named = structureSet.references.compactMap(\.seriesInstanceUID)
        let frames = structureSet.frameOfReferenceUIDs.sorted()
        if named.isEmpty, structureSet.referencedSOPInstanceUIDs.isEmpty, frames.isEmpty {
            throw DICOMError(
                .structureSet,
                "the structure set names no referenced series, image or frame of reference ((3006,0010) is "
                    + "missing or empty), so the series it was drawn on is unknown", path: structureSet.path)
        }
        throw DICOMError(
            .structureSet,
            "the structure set references series " + (named.isEmpty ? "(none named)" : named.joined(separator: ", "))
                + " in frame of reference " + (frames.isEmpty ? "(none named)" : frames.joined(separator: ", "))
                + ", not series \(series.seriesInstanceUID) (frame of reference "
                + "\(series.frameOfReferenceUID ?? "none")); pick the series it was drawn on", path: structureSet.path)
    }
}
