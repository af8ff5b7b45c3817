import DICOMIO

/// Picks the series a command works on: the one named, the one a SEG references, or the only one there is.
public enum SeriesSelection {
    /// - Throws: `.seriesSelection` listing the series present when the choice is ambiguous or the UID unknown.
    public static func select(
        from series: [DICOMSeries], uid: String? = nil,
        referencedBy segmentation: Segmentation? = nil
    ) throws(DICOMError) -> DICOMSeries {
        func listing() -> String {
            series.map { s in
                "  \(s.seriesInstanceUID)  \(s.modality) #\(s.seriesNumber.map(String.init) ?? "-") \"\(s.seriesDescription)\" (\(s.sliceCount) slices)"
            }.joined(separator: "\n")
        }
        if series.isEmpty {
            throw DICOMError(
                .seriesSelection,
                "no readable image series in the folder; run `tessera inspect` on it "
                    + "to see why files were skipped")
        }
        if let uid {
            guard let match = series.first(where: { $0.seriesInstanceUID == uid }) else {
                throw DICOMError(.seriesSelection, "no series \(uid) in the folder. Series present:\n" + listing())
            }
            return match
        }
        if let segmentation {
            if let ref = segmentation.referencedSeriesInstanceUID,
                let match = series.first(where: { $0.seriesInstanceUID == ref })
            {
                return match
            }
            let refs = Set(segmentation.instance.frames.flatMap(\.referencedSOPInstanceUIDs))
            if let match = series.first(where: { s in s.instances.contains { refs.contains($0.sopInstanceUID) } }) {
                return match
            }
            throw DICOMError(
                .seriesSelection,
                "the series the SEG references "
                    + "(\(segmentation.referencedSeriesInstanceUID ?? "unnamed")) is not in the folder. "
                    + "Series present:\n" + listing(), path: segmentation.instance.path)
        }
        guard series.count == 1 else {
            throw DICOMError(
                .seriesSelection,
                "the folder holds \(series.count) series; choose one with "
                    + "--series UID:\n" + listing())
        }
        return series[0]
    }

    /// The series an RT Structure Set was drawn on: the one named by `uid`, else
    /// `StructureSet.referencedSeries(in:)` (the series its (3006,0014) names, one holding an image it references,
    /// or the only one in its frame of reference).
    /// - Throws: `.seriesSelection` listing the series present when none fits: the "missing reference" error.
    public static func select(
        from series: [DICOMSeries], uid: String? = nil, referencedBy structureSet: StructureSet
    ) throws(DICOMError) -> DICOMSeries {
        if uid != nil || series.isEmpty { return try select(from: series, uid: uid) }
        if let match = structureSet.referencedSeries(in: series) { return match }
        let named = structureSet.references.compactMap(\.seriesInstanceUID)
        let frames = structureSet.frameOfReferenceUIDs.sorted()
        let listing = series.map { s in
            "  \(s.seriesInstanceUID)  \(s.modality) \"\(s.seriesDescription)\" (frame of reference "
                + "\(s.frameOfReferenceUID ?? "none"), \(s.sliceCount) slices)"
        }.joined(separator: "\n")
        throw DICOMError(
            .seriesSelection,
            "the series the RT Structure Set references ("
                + (named.isEmpty ? "none named" : named.joined(separator: ", ")) + "; frame of reference "
                + (frames.isEmpty ? "none named" : frames.joined(separator: ", "))
                + ") is not in the folder, or several series share its frame of reference; choose one with "
                + "--series UID. Series present:\n" + listing, path: structureSet.path)
    }
}
