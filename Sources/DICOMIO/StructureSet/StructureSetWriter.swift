import CDCMTKShim
import Foundation

/// Writes an RT Structure Set (SOP Class 1.2.840.10008.5.1.4.1.1.481.3, PS3.3 A.19) of CLOSED_PLANAR contours drawn
/// on one image series, through DCMTK's dcmdata (`DICOMWriter`, no dcmrt object model needed to write).
///
/// Written: Patient and General Study modules copied from the series' first image; RT Series (modality RTSTRUCT);
/// General Equipment; Frame of Reference (the series'); Structure Set with (3006,0010) Referenced Frame of
/// Reference → RT Referenced Study → RT Referenced Series → Contour Image Sequence (every image of the series: SOP
/// Class and Instance UIDs); (3006,0020) Structure Set ROI Sequence; (3006,0039) ROI Contour Sequence (each contour
/// with its image in (3006,0016)); RT ROI Observations; SOP Common. Coordinates are DS values of at most 16 characters,
/// 4 decimals (0.1 µm).
///
/// What is written can be read back by `StructureSet` with the default `ReadingLimits`: more ROIs, contours or
/// points than those limits, a contour of fewer than 3 points, a coordinate beyond `maxCoordinate` or not finite,
/// are refused before anything is written.
public struct StructureSetWriter: Sendable {
    /// The image series the contours were drawn on.
    public struct SeriesReference: Sendable {
        /// A file of the series: the Patient and General Study attributes are copied from it.
        public var imagePath: String
        public var studyInstanceUID: String
        public var seriesInstanceUID: String
        public var frameOfReferenceUID: String
        /// Every image of the series, in slice order: (SOP Class UID, SOP Instance UID).
        public var images: [(sopClassUID: String, sopInstanceUID: String)]

        public init(
            imagePath: String, studyInstanceUID: String, seriesInstanceUID: String, frameOfReferenceUID: String,
            images: [(sopClassUID: String, sopInstanceUID: String)]
        ) {
            self.imagePath = imagePath
            self.studyInstanceUID = studyInstanceUID
            self.seriesInstanceUID = seriesInstanceUID
            self.frameOfReferenceUID = frameOfReferenceUID
            self.images = images
        }
    }

    /// One closed planar contour: the image it lies on (an index into `SeriesReference.images`) and its points,
    /// patient LPS millimetres.
    public struct Contour: Sendable, Equatable {
        public var image: Int
        public var points: [Vector3]

        public init(image: Int, points: [Vector3]) {
            self.image = image
            self.points = points
        }
    }

    /// One ROI: (3006,0022) number, (3006,0026) name, (3006,002A) display colour, (3006,00A4) RT ROI Interpreted
    /// Type (ORGAN, GTV, PTV, …) and (3006,0036) ROI Generation Algorithm (AUTOMATIC, SEMIAUTOMATIC, MANUAL).
    public struct ROI: Sendable {
        public var number: Int
        public var name: String
        public var color: (red: UInt8, green: UInt8, blue: UInt8)
        public var interpretedType: String
        public var generationAlgorithm: String
        public var contours: [Contour]

        public init(
            number: Int, name: String, color: (red: UInt8, green: UInt8, blue: UInt8) = (255, 0, 0),
            interpretedType: String = "ORGAN", generationAlgorithm: String = "AUTOMATIC", contours: [Contour]
        ) {
            self.number = number
            self.name = name
            self.color = color
            self.interpretedType = interpretedType
            self.generationAlgorithm = generationAlgorithm
            self.contours = contours
        }
    }

    /// (3006,0002) Structure Set Label (1…16 characters).
    public var label = "Tessera"
    public var seriesDescription = "Structures"
    public var seriesNumber = 100
    public var manufacturer = "Tessera"
    public var modelName = "tessera"
    public var softwareVersions = "0.1"
    /// (0008,1070) Operators' Name (PN; empty by default).
    public var operatorsName = ""
    /// Fixed UIDs, date and time make the output reproducible; nil: new UIDs (DCMTK's generator) and now.
    public var seriesInstanceUID: String?
    public var sopInstanceUID: String?
    /// (3006,0008) YYYYMMDD and (3006,0009) HHMMSS.
    public var date: String?
    public var time: String?
    /// The counts checked before writing (the reader's limits, so that every written file reads back).
    public var limits: ReadingLimits = .default

    public init() {}

    /// Writes the structure set to `path` (Explicit VR Little Endian).
    /// - Throws: `.invalidArgument` for an ROI number outside 1…2³¹−1 or repeated, an empty or over-long name,
    ///   a contour on an image the series does not have, with fewer than 3 points or a coordinate that is not
    ///   finite or beyond `limits.maxCoordinate`, counts above `limits`; `.write` when DCMTK cannot write; the
    ///   reading errors of the referenced image.
    public func write(to path: String, series: SeriesReference, rois: [ROI]) throws(DICOMError) {
        try check(series: series, rois: rois, path: path)
        let source = try DICOMFile(path: series.imagePath)
        let (date, time) = self.date.map { ($0, self.time ?? "000000") } ?? Self.now()
        var sopInstanceUID = self.sopInstanceUID ?? ""
        if sopInstanceUID.isEmpty { sopInstanceUID = try Self.newUID() }
        var seriesInstanceUID = self.seriesInstanceUID ?? ""
        if seriesInstanceUID.isEmpty { seriesInstanceUID = try Self.newUID() }
        let writer = DICOMWriter()
        let ds = writer.dataset
        let copied: [DICOMTag] = [
            .patientName, .patientID, .patientBirthDate, .patientSex, .studyDate, .studyTime,
            .referringPhysicianName, .studyID, .accessionNumber, .studyDescription, .positionReferenceIndicator,
        ]
        try ds.set(.specificCharacterSet, source.dataset.string(.specificCharacterSet) ?? "ISO_IR 100")
        for tag in copied { try ds.set(tag, source.dataset.string(tag) ?? "") }
        let tags: [(DICOMTag, String)] = [
            (.sopClassUID, SOPClass.rtStructureSetStorage),
            (.sopInstanceUID, sopInstanceUID),
            (.studyInstanceUID, series.studyInstanceUID),
            (.seriesInstanceUID, seriesInstanceUID),
            (.modality, "RTSTRUCT"), (.seriesNumber, String(seriesNumber)), (.seriesDescription, seriesDescription),
            (.operatorsName, operatorsName), (.instanceNumber, "1"),
            (.manufacturer, manufacturer), (.manufacturerModelName, modelName), (.softwareVersions, softwareVersions),
            (.seriesDate, date), (.seriesTime, time),
            (.frameOfReferenceUID, series.frameOfReferenceUID),
            (.structureSetLabel, label), (.structureSetDate, date), (.structureSetTime, time),
        ]
        for (tag, value) in tags { try ds.set(tag, value) }

        let frame = try ds.appendItem(.referencedFrameOfReferenceSequence)
        try frame.set(.frameOfReferenceUID, series.frameOfReferenceUID)
        let study = try frame.appendItem(.rtReferencedStudySequence)
        // (0008,1150) for a study reference: Detached Study Management (retired), as PS3.3 C.8.8.5.1 asks.
        try study.set(.referencedSOPClassUID, "1.2.840.10008.3.1.2.3.1")
        try study.set(.referencedSOPInstanceUID, series.studyInstanceUID)
        let referenced = try study.appendItem(.rtReferencedSeriesSequence)
        try referenced.set(.seriesInstanceUID, series.seriesInstanceUID)
        for image in series.images {
            let item = try referenced.appendItem(.contourImageSequence)
            try item.set(.referencedSOPClassUID, image.sopClassUID)
            try item.set(.referencedSOPInstanceUID, image.sopInstanceUID)
        }
        for roi in rois {
            let item = try ds.appendItem(.structureSetROISequence)
            try item.set(.roiNumber, String(roi.number))
            try item.set(.referencedFrameOfReferenceUID, series.frameOfReferenceUID)
            try item.set(.roiName, roi.name)
            try item.set(.roiGenerationAlgorithm, roi.generationAlgorithm)
        }
        for roi in rois {
            let item = try ds.appendItem(.roiContourSequence)
            try item.set(.roiDisplayColor, "\(roi.color.red)\\\(roi.color.green)\\\(roi.color.blue)")
            for (n, contour) in roi.contours.enumerated() {
                let c = try item.appendItem(.contourSequence)
                let image = series.images[contour.image]
                let reference = try c.appendItem(.contourImageSequence)
                try reference.set(.referencedSOPClassUID, image.sopClassUID)
                try reference.set(.referencedSOPInstanceUID, image.sopInstanceUID)
                try c.set(.contourNumber, String(n + 1))
                try c.set(.contourGeometricType, "CLOSED_PLANAR")
                try c.set(.numberOfContourPoints, String(contour.points.count))
                try c.set(
                    .contourData,
                    contour.points.map {
                        formatDecimalString($0.x) + "\\" + formatDecimalString($0.y) + "\\"
                            + formatDecimalString($0.z)
                    }.joined(separator: "\\"))
            }
            try item.set(.referencedROINumber, String(roi.number))
        }
        for roi in rois {
            let item = try ds.appendItem(.rtROIObservationsSequence)
            try item.set(.observationNumber, String(roi.number))
            try item.set(.referencedROINumber, String(roi.number))
            try item.set(.rtROIInterpretedType, roi.interpretedType)
            try item.set(.roiInterpreter, "")
        }
        try writer.write(to: path)
    }

    /// Refuses what could not be read back, before anything is written.
    func check(series: SeriesReference, rois: [ROI], path: String) throws(DICOMError) {
        func fail(_ why: String) -> DICOMError {
            DICOMError(.invalidArgument, "cannot write the RT Structure Set: " + why, path: path)
        }
        guard !series.images.isEmpty else { throw fail("the referenced series has no images") }
        guard (1...16).contains(label.count) else {
            throw fail("(3006,0002) Structure Set Label must be 1…16 characters")
        }
        guard rois.count <= limits.maxROIs else {
            throw fail("\(rois.count) ROIs, more than maxROIs \(limits.maxROIs)")
        }
        var numbers = Set<Int>()
        var contours = 0
        var points = 0
        for roi in rois {
            guard (1...Int(Int32.max)).contains(roi.number), numbers.insert(roi.number).inserted else {
                throw fail("ROI number \(roi.number) is outside 1…2147483647 or repeated")
            }
            guard (1...64).contains(roi.name.count), !roi.name.contains("\\") else {
                throw fail("ROI \(roi.number): (3006,0026) ROI Name must be 1…64 characters without a backslash")
            }
            contours += roi.contours.count
            guard contours <= limits.maxContours else {
                throw fail("more than maxContours \(limits.maxContours) contours")
            }
            for (n, contour) in roi.contours.enumerated() {
                guard series.images.indices.contains(contour.image) else {
                    throw fail("ROI '\(roi.name)' contour \(n + 1) lies on image \(contour.image), outside the series")
                }
                guard contour.points.count >= 3 else {
                    throw fail("ROI '\(roi.name)' contour \(n + 1) has \(contour.points.count) points; 3 at least")
                }
                points += contour.points.count
                guard points <= limits.maxContourPoints else {
                    throw fail("more than maxContourPoints \(limits.maxContourPoints) contour points")
                }
                for p in contour.points {
                    for v in [p.x, p.y, p.z] where !(v.isFinite && abs(v) <= limits.maxCoordinate) {
                        throw fail(
                            "ROI '\(roi.name)' contour \(n + 1) has coordinate \(v), not a finite number within "
                                + "±\(limits.maxCoordinate) mm")
                    }
                }
            }
        }
    }

    /// A new UID from DCMTK's generator (its site root).
    static func newUID() throws(DICOMError) -> String {
        var buffer = [CChar](repeating: 0, count: 128)
        guard tsr_new_uid(nil, &buffer, buffer.count) > 0 else {
            throw DICOMError(.internalFailure, "DCMTK could not generate a UID")
        }
        return decodeCString(buffer)
    }

    static func now() -> (date: String, time: String) {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        let now = Date()
        formatter.dateFormat = "yyyyMMdd"
        let date = formatter.string(from: now)
        formatter.dateFormat = "HHmmss"
        return (date, formatter.string(from: now))
    }
}

/// A DS (decimal string) value: 4 decimals, trailing zeros and a trailing point removed (`2.8`, `-177.8`, `5`), at
/// most 16 characters for magnitudes below 10¹⁰.
public func formatDecimalString(_ v: Double) -> String {
    var s = String(format: "%.4f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s == "-0" ? "0" : s
}
