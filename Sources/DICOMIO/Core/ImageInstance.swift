/// The geometry and intensity mapping of one frame (PS3.3 C.7.6.2 Image Plane, C.7.6.16 functional groups).
public struct FrameInfo: Sendable, Equatable {
    /// (0020,0032) Image Position (Patient): centre of the first transmitted voxel, LPS mm.
    public var position: Vector3
    /// (0020,0037) Image Orientation (Patient): direction of increasing column index (along a row).
    public var rowCosine: Vector3
    /// (0020,0037) second triple: direction of increasing row index (down a column).
    public var columnCosine: Vector3
    /// (0028,0030) Pixel Spacing: [spacing between rows (y), spacing between columns (x)], mm.
    public var pixelSpacing: (row: Double, column: Double)
    /// (0028,1053) Rescale Slope and (0028,1052) Rescale Intercept (PS3.3 C.11.1.1.2).
    public var rescaleSlope: Double
    public var rescaleIntercept: Double
    /// (0018,0050) Slice Thickness, mm, when given.
    public var sliceThickness: Double?
    /// Referenced segment number (SEG frames only), (0062,000B).
    public var referencedSegmentNumber: Int?
    /// Referenced source SOP Instance UIDs (SEG frames only), from the Derivation Image Sequence.
    public var referencedSOPInstanceUIDs: [String] = []

    public static func == (a: FrameInfo, b: FrameInfo) -> Bool {
        a.position == b.position && a.rowCosine == b.rowCosine && a.columnCosine == b.columnCosine
            && a.pixelSpacing == b.pixelSpacing && a.rescaleSlope == b.rescaleSlope
            && a.rescaleIntercept == b.rescaleIntercept && a.sliceThickness == b.sliceThickness
            && a.referencedSegmentNumber == b.referencedSegmentNumber
            && a.referencedSOPInstanceUIDs == b.referencedSOPInstanceUIDs
    }

    /// Slice normal: row cosine × column cosine, normalised (cosines are stored as decimal strings).
    public var normal: Vector3 { rowCosine.cross(columnCosine).normalized }
}

/// A Modality LUT (0028,3000): stored value → output value by table look-up (PS3.3 C.11.1).
public struct ModalityLUT: Sendable, Equatable {
    /// First stored value mapped, from (0028,3002) LUT Descriptor value 2.
    public var firstMapped: Int
    /// Table entries, from (0028,3006) LUT Data.
    public var table: [Float]

    /// Applies the table, clamping outside its range as PS3.3 C.11.1.1 requires.
    @inline(__always) public func apply(_ stored: Int) -> Float {
        let i = min(max(stored - firstMapped, 0), table.count - 1)
        return table[i]
    }
}

/// The header of one DICOM instance (a file): identity, pixel format and per-frame geometry.
public struct ImageInstance: Sendable {
    public var path: String
    public var sopClassUID: String
    public var sopInstanceUID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var frameOfReferenceUID: String?
    public var modality: String
    public var seriesDescription: String
    public var seriesNumber: Int?
    public var instanceNumber: Int?
    public var transferSyntax: TransferSyntax
    public var rows: Int
    public var columns: Int
    public var samplesPerPixel: Int
    public var photometricInterpretation: String
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var highBit: Int
    /// (0028,0103) 0 = unsigned, 1 = two's complement.
    public var pixelRepresentation: Int
    public var numberOfFrames: Int
    /// One entry per frame (one for single-frame images).
    public var frames: [FrameInfo]
    public var modalityLUT: ModalityLUT?
    /// (0018,1120) Gantry/Detector Tilt in degrees, when given.
    public var gantryTilt: Double?
    /// Selected tags for reports: patient age/sex, manufacturer, model, kVp, convolution kernel, ...
    public var tags: [String: String]

    /// A DICOM SEG, BINARY/FRACTIONAL (…66.4) or LABELMAP (…66.7, Supplement 243).
    public var isSegmentation: Bool {
        sopClassUID == SOPClass.segmentationStorage || sopClassUID == SOPClass.labelMapSegmentationStorage
    }
    public var isDICOMDIR: Bool { sopClassUID == SOPClass.mediaStorageDirectory }
}

/// SOP Class UIDs Tessera recognises (PS3.4 B.5).
public enum SOPClass {
    public static let ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"
    public static let enhancedCTImageStorage = "1.2.840.10008.5.1.4.1.1.2.1"
    public static let mrImageStorage = "1.2.840.10008.5.1.4.1.1.4"
    public static let enhancedMRImageStorage = "1.2.840.10008.5.1.4.1.1.4.1"
    public static let secondaryCaptureImageStorage = "1.2.840.10008.5.1.4.1.1.7"
    public static let segmentationStorage = "1.2.840.10008.5.1.4.1.1.66.4"
    /// Label Map Segmentation Storage (DICOM 2024, Supplement 243): one frame per slice holding segment numbers.
    public static let labelMapSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.7"
    public static let rtDoseStorage = "1.2.840.10008.5.1.4.1.1.481.2"
    public static let rtStructureSetStorage = "1.2.840.10008.5.1.4.1.1.481.3"
    public static let mediaStorageDirectory = "1.2.840.10008.1.3.10"
}

extension SOPClass {
    /// SOP Class UID prefixes of objects that are not images for training, with what they are (PS3.4 B.5). Some
    /// carry (7FE0,0010) Pixel Data (RT Dose, RT Image, waveforms): they must not become CT/MR volumes.
    static let nonImagePrefixes: [(prefix: String, kind: String)] = [
        ("1.2.840.10008.5.1.4.1.1.481.2", "RT Dose"),
        ("1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set"),
        ("1.2.840.10008.5.1.4.1.1.481.", "RT object (plan, treatment record, RT Image, ...)"),
        ("1.2.840.10008.5.1.4.1.1.88.", "Structured Report"),
        ("1.2.840.10008.5.1.4.1.1.11.", "Presentation State"),
        ("1.2.840.10008.5.1.4.1.1.9.", "Waveform"),
        ("1.2.840.10008.5.1.4.1.1.104.", "Encapsulated document"),
        ("1.2.840.10008.5.1.4.1.1.66.1", "Spatial Registration"),
        ("1.2.840.10008.5.1.4.1.1.66.2", "Spatial Fiducials"),
        ("1.2.840.10008.5.1.4.1.1.66.3", "Deformable Spatial Registration"),
        ("1.2.840.10008.5.1.4.1.1.66.5", "Surface Segmentation"),
        ("1.2.840.10008.5.1.4.1.1.66.6", "Tractography Results"),
        ("1.2.840.10008.5.1.4.1.1.68.", "Surface Scan"),
        ("1.2.840.10008.5.1.4.1.1.66", "Raw Data"),  // exact, or a sub-class not listed above
        ("1.2.840.10008.5.1.4.1.1.4.2", "MR Spectroscopy"),
    ]

    /// What a non-image object is ("RT Dose", "Structured Report", ...), or nil for images and SEGs.
    public static func nonImageKind(_ uid: String) -> String? {
        if uid == segmentationStorage || uid == labelMapSegmentationStorage { return nil }
        for (prefix, kind) in nonImagePrefixes {
            if prefix.hasSuffix(".") ? uid.hasPrefix(prefix) : (uid == prefix || uid.hasPrefix(prefix + ".")) {
                return kind
            }
        }
        return nil
    }
}
