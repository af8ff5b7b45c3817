/// One closed planar contour of an ROI: (3006,0050) Contour Data as points, patient (LPS) millimetres.
public struct ROIContour: Sendable, Equatable {
    /// 1-based position of the contour among its ROI's (3006,0040) Contour Sequence items, for messages.
    public var index: Int
    public var points: [Vector3]
    /// (3006,0016) Contour Image Sequence → (0008,1155) of the first item, when present.
    public var referencedSOPInstanceUID: String?
}

/// One ROI of an RT Structure Set: (3006,0020) Structure Set ROI Sequence item and its (3006,0039) ROI Contour
/// Sequence contours.
public struct StructureSetROI: Sendable, Equatable {
    /// (3006,0022) ROI Number, unique within the structure set.
    public var number: Int
    /// (3006,0026) ROI Name, as written (matching to labels is `ROILabelMapping`'s job).
    public var name: String
    /// (3006,0024) Referenced Frame of Reference UID.
    public var frameOfReferenceUID: String?
    /// (3006,0036) ROI Generation Algorithm (AUTOMATIC, SEMIAUTOMATIC, MANUAL).
    public var generationAlgorithm: String?
    /// The CLOSED_PLANAR contours, in file order.
    public var contours: [ROIContour]
    /// Contours of other geometric types (POINT, OPEN_PLANAR, OPEN_NONPLANAR) and closed contours with fewer than
    /// three points: listed in `StructureSet.warnings`, never filled.
    public var skippedContours: Int
}

/// A series an RT Structure Set names: (3006,0010) Referenced Frame of Reference Sequence → (3006,0012) RT
/// Referenced Study Sequence → (3006,0014) RT Referenced Series Sequence.
public struct StructureSetReference: Sendable, Equatable {
    /// (0020,0052) Frame of Reference UID of the (3006,0010) item.
    public var frameOfReferenceUID: String?
    /// (0020,000E) of the (3006,0014) item; nil for a frame of reference that names no series.
    public var seriesInstanceUID: String?
    /// (3006,0016) Contour Image Sequence → (0008,1155) Referenced SOP Instance UIDs.
    public var sopInstanceUIDs: [String]
}
