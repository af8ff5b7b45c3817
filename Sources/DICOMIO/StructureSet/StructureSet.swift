import CDCMTKShim
import Foundation

/// An RT Structure Set (SOP Class 1.2.840.10008.5.1.4.1.1.481.3, PS3.3 A.19) read through DCMTK's dcmrt:
/// its ROIs with their closed planar contours, and the series it was drawn on.
///
/// Every count is checked against `ReadingLimits` before anything of that size is copied: the file size
/// (`maxStructureSetBytes`), the (3006,0020)/(3006,0039) items (`maxROIs`), the (3006,0040) items and the
/// (3006,0016) items (`maxContours`), and the sum of (3006,0046) Number of Contour Points (`maxContourPoints`).
/// (3006,0046) must equal the points (3006,0050) holds; coordinates must be finite and within `maxCoordinate`.
/// POINT and OPEN_* contours are skipped with a warning. Rasterisation onto a series: `Volume.labels(structureSet:…)`
/// in the Volumes module.
public struct StructureSet: Sendable {
    public var path: String
    public var sopInstanceUID: String
    /// (0020,000E) of the structure set's own series.
    public var seriesInstanceUID: String
    /// (3006,0002) Structure Set Label.
    public var label: String
    /// ROIs in (3006,0020) order.
    public var rois: [StructureSetROI]
    /// The series named by (3006,0010), in file order.
    public var references: [StructureSetReference]
    /// What was skipped (POINT and OPEN_* contours, closed contours with fewer than 3 points), one sentence each
    /// naming the ROI and the contour.
    public var warnings: [String]

    /// Reads an RT Structure Set.
    /// - Throws: `.structureSet` for a file that is not an RT Structure Set, a count above `limits`, a Number of
    ///   Contour Points that disagrees with the Contour Data, a duplicate ROI Number, a contour of an unknown ROI
    ///   or a coordinate that is not a finite number within `limits.maxCoordinate`; DCMTK's errors for files it
    ///   cannot parse.
    public init(path: String, limits: ReadingLimits = .default) throws(DICOMError) {
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw DICOMError(
                .fileNotFound, "cannot read the RT Structure Set; check the path", path: path,
                cause: "\(error)")
        }
        guard size <= limits.maxStructureSetBytes else {
            throw DICOMError(
                .structureSet,
                "the file is \(size) bytes, above the limit of \(limits.maxStructureSetBytes) "
                    + "(ReadingLimits.maxStructureSetBytes); raise it if the structure set is genuine", path: path)
        }
        let file = try DICOMFile(path: path, maxReadLength: 0)
        try self.init(file: file, limits: limits)
    }

    /// Reads an RT Structure Set from an opened file (opened with `maxReadLength: 0`, or values are read from
    /// disk as dcmrt copies them).
    public init(file: DICOMFile, limits: ReadingLimits = .default) throws(DICOMError) {
        let path = file.path
        let ds = file.dataset
        let sopClass = ds.nonEmptyString(.sopClassUID) ?? ""
        guard sopClass == SOPClass.rtStructureSetStorage else {
            throw DICOMError(
                .structureSet,
                "not an RT Structure Set (SOP Class '\(sopClass)', expected \(SOPClass.rtStructureSetStorage)); "
                    + "pass the RTSTRUCT file", path: path)
        }
        self.path = path
        sopInstanceUID = ds.nonEmptyString(.sopInstanceUID) ?? ""
        seriesInstanceUID = ds.nonEmptyString(.seriesInstanceUID) ?? ""
        label = ds.nonEmptyString(.structureSetLabel) ?? ""

        var counts = TSRStructureSetCounts()
        var status = TSRStatus()
        guard tsr_structure_set_count(file.handle, &counts, &status) == 0 else {
            throw DICOMError(.internalFailure, statusMessage(&status), path: path)
        }
        try checkSize(
            Int(counts.rois), limit: limits.maxROIs, "(3006,0020) Structure Set ROI Sequence items",
            limitName: "maxROIs", allowZero: true, path: path)
        try checkSize(
            Int(counts.roiContours), limit: limits.maxROIs, "(3006,0039) ROI Contour Sequence items",
            limitName: "maxROIs", allowZero: true, path: path)
        try checkSize(
            Int(counts.contours), limit: limits.maxContours, "(3006,0040) Contour Sequence items",
            limitName: "maxContours", allowZero: true, path: path)
        try checkSize(
            Int(counts.referencedImages), limit: limits.maxContours,
            "(3006,0016) Contour Image Sequence items of the referenced series", limitName: "maxContours",
            allowZero: true, path: path)
        try checkSize(
            Int(counts.referencedSeries) + max(0, Int(counts.referencedFramesOfReference)), limit: limits.maxROIs,
            "(3006,0010) and (3006,0014) referenced frame of reference and series items", limitName: "maxROIs",
            allowZero: true, path: path)
        guard counts.rois > 0 else {
            throw DICOMError(
                .structureSet, "the RT Structure Set has no (3006,0020) Structure Set ROI Sequence items",
                path: path)
        }

        guard let set = tsr_structure_set_read(file.handle, &status) else {
            let code = DICOMError.Code(shimCode: status.code)
            throw DICOMError(code, statusMessage(&status) + ". " + code.advice, path: path)
        }
        defer { tsr_structure_set_free(set) }

        var rois: [StructureSetROI] = []
        var indexByNumber: [Int: Int] = [:]
        for r in 0..<max(0, Int(tsr_structure_set_roi_count(set))) {
            var roi = TSRROI()
            guard tsr_structure_set_roi(set, UInt32(r), &roi, &status) == 0 else {
                throw DICOMError(.structureSet, statusMessage(&status), path: path)
            }
            let name = withUnsafeBytes(of: &roi.name) { cText($0) }
            guard roi.hasNumber != 0 else {
                throw DICOMError(
                    .structureSet,
                    "(3006,0020) item \(r + 1) ('\(name)') has no integer (3006,0022) ROI Number", path: path)
            }
            let number = Int(roi.number)
            guard indexByNumber[number] == nil else {
                throw DICOMError(
                    .structureSet,
                    "(3006,0022) ROI Number \(number) is used by two ROIs ('\(name)' and "
                        + "'\(rois[indexByNumber[number] ?? 0].name)')", path: path)
            }
            indexByNumber[number] = rois.count
            let frame = withUnsafeBytes(of: &roi.frameOfReferenceUID) { cText($0) }
            let algorithm = withUnsafeBytes(of: &roi.generationAlgorithm) { cText($0) }
            rois.append(
                StructureSetROI(
                    number: number, name: name, frameOfReferenceUID: frame.isEmpty ? nil : frame,
                    generationAlgorithm: algorithm.isEmpty ? nil : algorithm, contours: [], skippedContours: 0))
        }

        var warnings: [String] = []
        var pointsSoFar = 0
        for rc in 0..<max(0, Int(tsr_structure_set_roi_contour_count(set))) {
            var referenced: Int32 = 0
            var contourCount: Int32 = 0
            guard tsr_structure_set_roi_contour(set, UInt32(rc), &referenced, &contourCount, &status) == 0 else {
                throw DICOMError(.structureSet, statusMessage(&status), path: path)
            }
            guard let r = indexByNumber[Int(referenced)] else {
                throw DICOMError(
                    .structureSet,
                    "(3006,0039) ROI Contour Sequence item \(rc + 1) references ROI \(referenced), which "
                        + "(3006,0020) Structure Set ROI Sequence does not define", path: path)
            }
            let roiName = "ROI '\(rois[r].name)' (number \(rois[r].number))"
            for c in 0..<max(0, Int(contourCount)) {
                let contourName = "\(roiName), contour \(c + 1)"
                var contour = TSRContour()
                guard tsr_structure_set_contour(set, UInt32(rc), UInt32(c), &contour, &status) == 0 else {
                    throw DICOMError(.structureSet, "\(contourName): " + statusMessage(&status), path: path)
                }
                let type = withUnsafeBytes(of: &contour.geometricType) { cText($0) }
                guard type == "CLOSED_PLANAR" else {
                    warnings.append(
                        "\(contourName): (3006,0042) Contour Geometric Type \(type.isEmpty ? "absent" : type), skipped "
                            + "(only CLOSED_PLANAR contours are filled)")
                    rois[r].skippedContours += 1
                    continue
                }
                guard contour.hasNumberOfPoints != 0 else {
                    throw DICOMError(
                        .structureSet,
                        "\(contourName): (3006,0046) Number of Contour Points is absent or not an integer",
                        path: path)
                }
                let declared = Int(contour.numberOfPoints)
                try checkSize(
                    declared, limit: limits.maxContourPoints, "\(contourName): (3006,0046) Number of Contour Points",
                    limitName: "maxContourPoints", allowZero: true, path: path)
                // Both terms are at most maxContourPoints: no overflow.
                pointsSoFar += declared
                guard pointsSoFar <= limits.maxContourPoints else {
                    throw DICOMError(
                        .invalidAttribute,
                        "the (3006,0046) Number of Contour Points of the contours up to \(contourName) add up to "
                            + "\(pointsSoFar), above the limit of \(limits.maxContourPoints) "
                            + "(ReadingLimits.maxContourPoints); raise it if the structure set is genuine", path: path)
                }
                var values = [Double](repeating: 0, count: 3 * declared)
                let held = values.withUnsafeMutableBufferPointer { buffer in
                    tsr_structure_set_contour_data(
                        set, UInt32(rc), UInt32(c), buffer.baseAddress, buffer.count, &status)
                }
                guard held >= 0 else {
                    throw DICOMError(.structureSet, "\(contourName): " + statusMessage(&status), path: path)
                }
                guard held == 3 * declared else {
                    let shape = held % 3 == 0 ? "\(held / 3) points" : "not x, y, z triplets"
                    throw DICOMError(
                        .structureSet,
                        "\(contourName): (3006,0046) Number of Contour Points is \(declared) but (3006,0050) Contour "
                            + "Data holds \(held) values (\(shape)); the structure set is corrupt, re-export it",
                        path: path)
                }
                var points: [Vector3] = []
                points.reserveCapacity(declared)
                for p in 0..<declared {
                    let v = Vector3(values[3 * p], values[3 * p + 1], values[3 * p + 2])
                    guard v.x.isFinite, v.y.isFinite, v.z.isFinite,
                        max(abs(v.x), abs(v.y), abs(v.z)) <= limits.maxCoordinate
                    else {
                        throw DICOMError(
                            .structureSet,
                            "\(contourName): point \(p + 1) (\(v.x), \(v.y), \(v.z)) is not a finite coordinate within "
                                + "±\(limits.maxCoordinate) mm (ReadingLimits.maxCoordinate)", path: path)
                    }
                    points.append(v)
                }
                guard points.count >= 3 else {
                    warnings.append(
                        "\(contourName): CLOSED_PLANAR with \(points.count) point(s), skipped (a closed contour "
                            + "needs at least 3)")
                    rois[r].skippedContours += 1
                    continue
                }
                let image = withUnsafeBytes(of: &contour.firstImageSOPInstanceUID) { cText($0) }
                rois[r].contours.append(
                    ROIContour(index: c + 1, points: points, referencedSOPInstanceUID: image.isEmpty ? nil : image))
            }
        }
        self.rois = rois
        self.warnings = warnings

        var references: [StructureSetReference] = []
        for s in 0..<max(0, Int(tsr_structure_set_referenced_series_count(set))) {
            var entry = TSRReferencedSeries()
            guard tsr_structure_set_referenced_series(set, UInt32(s), &entry) == 0 else { continue }
            var images: [String] = []
            var buffer = [CChar](repeating: 0, count: 128)
            for i in 0..<max(0, Int(entry.imageCount)) {
                if tsr_structure_set_referenced_image(set, UInt32(s), UInt32(i), &buffer, buffer.count) > 0 {
                    images.append(decodeCString(buffer))
                }
            }
            let frame = withUnsafeBytes(of: &entry.frameOfReferenceUID) { cText($0) }
            let series = withUnsafeBytes(of: &entry.seriesInstanceUID) { cText($0) }
            references.append(
                StructureSetReference(
                    frameOfReferenceUID: frame.isEmpty ? nil : frame, seriesInstanceUID: series.isEmpty ? nil : series,
                    sopInstanceUIDs: images))
        }
        self.references = references
    }

    /// Every (0008,1155) the structure set names: the referenced series' Contour Image Sequences and the contours'.
    public var referencedSOPInstanceUIDs: Set<String> {
        var all = Set(references.flatMap(\.sopInstanceUIDs))
        for roi in rois { for c in roi.contours { if let uid = c.referencedSOPInstanceUID { all.insert(uid) } } }
        return all
    }

    /// The series of `candidates` this structure set was drawn on: the one its (3006,0014) RT Referenced Series
    /// Sequence names, else the one holding an image it references ((3006,0016) → (0008,1155)), else the only one
    /// in its frame of reference; nil when none (or several in its frame of reference, naming none) fit.
    public func referencedSeries(in candidates: [DICOMSeries]) -> DICOMSeries? {
        let named = references.compactMap(\.seriesInstanceUID)
        if let match = candidates.first(where: { named.contains($0.seriesInstanceUID) }) { return match }
        let images = referencedSOPInstanceUIDs
        if !images.isEmpty,
            let match = candidates.first(where: { s in s.instances.contains { images.contains($0.sopInstanceUID) } })
        {
            return match
        }
        let frames = frameOfReferenceUIDs
        let inFrame = candidates.filter { s in s.frameOfReferenceUID.map(frames.contains) ?? false }
        return inFrame.count == 1 ? inFrame[0] : nil
    }

    /// The frames of reference the structure set and its ROIs name.
    public var frameOfReferenceUIDs: Set<String> {
        Set(references.compactMap(\.frameOfReferenceUID) + rois.compactMap(\.frameOfReferenceUID))
    }
}

/// A NUL-terminated fixed-size C text field as a String (UTF-8, invalid bytes replaced).
private func cText(_ raw: UnsafeRawBufferPointer) -> String {
    let bytes = raw.bindMemory(to: UInt8.self)
    let end = bytes.firstIndex(of: 0) ?? bytes.count
    return String(decoding: bytes[0..<end], as: UTF8.self)
}
