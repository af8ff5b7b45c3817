/// A DICOM attribute tag (group, element), PS3.5 §7.1.
public struct DICOMTag: Hashable, Sendable, CustomStringConvertible {
    public let group: UInt16
    public let element: UInt16

    public init(_ group: UInt16, _ element: UInt16) {
        self.group = group
        self.element = element
    }

    public var description: String {
        "(" + hex4(group) + "," + hex4(element) + ")"
    }
}

private func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: 4 - s.count) + s
}

// MARK: - Attributes Tessera reads (PS3.6 data dictionary)

extension DICOMTag {
    // File meta and SOP common
    public static let transferSyntaxUID = DICOMTag(0x0002, 0x0010)
    public static let mediaStorageSOPClassUID = DICOMTag(0x0002, 0x0002)
    public static let specificCharacterSet = DICOMTag(0x0008, 0x0005)
    public static let imageType = DICOMTag(0x0008, 0x0008)
    public static let sopClassUID = DICOMTag(0x0008, 0x0016)
    public static let sopInstanceUID = DICOMTag(0x0008, 0x0018)
    public static let studyDate = DICOMTag(0x0008, 0x0020)
    public static let seriesDate = DICOMTag(0x0008, 0x0021)
    public static let contentDate = DICOMTag(0x0008, 0x0023)
    public static let studyTime = DICOMTag(0x0008, 0x0030)
    public static let seriesTime = DICOMTag(0x0008, 0x0031)
    public static let contentTime = DICOMTag(0x0008, 0x0033)
    public static let accessionNumber = DICOMTag(0x0008, 0x0050)
    public static let modality = DICOMTag(0x0008, 0x0060)
    public static let manufacturer = DICOMTag(0x0008, 0x0070)
    public static let institutionName = DICOMTag(0x0008, 0x0080)
    public static let referringPhysicianName = DICOMTag(0x0008, 0x0090)
    public static let stationName = DICOMTag(0x0008, 0x1010)
    public static let studyDescription = DICOMTag(0x0008, 0x1030)
    public static let seriesDescription = DICOMTag(0x0008, 0x103E)
    public static let manufacturerModelName = DICOMTag(0x0008, 0x1090)
    public static let referencedSeriesSequence = DICOMTag(0x0008, 0x1115)
    public static let referencedSOPClassUID = DICOMTag(0x0008, 0x1150)
    public static let referencedSOPInstanceUID = DICOMTag(0x0008, 0x1155)
    public static let sourceImageSequence = DICOMTag(0x0008, 0x2112)
    public static let derivationImageSequence = DICOMTag(0x0008, 0x9124)
    // Patient
    public static let patientName = DICOMTag(0x0010, 0x0010)
    public static let patientID = DICOMTag(0x0010, 0x0020)
    public static let patientBirthDate = DICOMTag(0x0010, 0x0030)
    public static let patientSex = DICOMTag(0x0010, 0x0040)
    public static let patientAge = DICOMTag(0x0010, 0x1010)
    // Acquisition
    public static let bodyPartExamined = DICOMTag(0x0018, 0x0015)
    public static let sliceThickness = DICOMTag(0x0018, 0x0050)
    public static let kvp = DICOMTag(0x0018, 0x0060)
    public static let spacingBetweenSlices = DICOMTag(0x0018, 0x0088)
    public static let deviceSerialNumber = DICOMTag(0x0018, 0x1000)
    public static let softwareVersions = DICOMTag(0x0018, 0x1020)
    public static let gantryDetectorTilt = DICOMTag(0x0018, 0x1120)
    public static let convolutionKernel = DICOMTag(0x0018, 0x1210)
    public static let patientPosition = DICOMTag(0x0018, 0x5100)
    // Relationship
    public static let studyInstanceUID = DICOMTag(0x0020, 0x000D)
    public static let seriesInstanceUID = DICOMTag(0x0020, 0x000E)
    public static let studyID = DICOMTag(0x0020, 0x0010)
    public static let seriesNumber = DICOMTag(0x0020, 0x0011)
    public static let acquisitionNumber = DICOMTag(0x0020, 0x0012)
    public static let instanceNumber = DICOMTag(0x0020, 0x0013)
    public static let imagePositionPatient = DICOMTag(0x0020, 0x0032)
    public static let imageOrientationPatient = DICOMTag(0x0020, 0x0037)
    public static let frameOfReferenceUID = DICOMTag(0x0020, 0x0052)
    public static let positionReferenceIndicator = DICOMTag(0x0020, 0x1040)
    public static let sliceLocation = DICOMTag(0x0020, 0x1041)
    public static let planePositionSequence = DICOMTag(0x0020, 0x9113)
    public static let planeOrientationSequence = DICOMTag(0x0020, 0x9116)
    public static let dimensionIndexValues = DICOMTag(0x0020, 0x9157)
    // Image pixel
    public static let samplesPerPixel = DICOMTag(0x0028, 0x0002)
    public static let photometricInterpretation = DICOMTag(0x0028, 0x0004)
    public static let numberOfFrames = DICOMTag(0x0028, 0x0008)
    public static let rows = DICOMTag(0x0028, 0x0010)
    public static let columns = DICOMTag(0x0028, 0x0011)
    public static let pixelSpacing = DICOMTag(0x0028, 0x0030)
    public static let bitsAllocated = DICOMTag(0x0028, 0x0100)
    public static let bitsStored = DICOMTag(0x0028, 0x0101)
    public static let highBit = DICOMTag(0x0028, 0x0102)
    public static let pixelRepresentation = DICOMTag(0x0028, 0x0103)
    public static let windowCenter = DICOMTag(0x0028, 0x1050)
    public static let windowWidth = DICOMTag(0x0028, 0x1051)
    public static let rescaleIntercept = DICOMTag(0x0028, 0x1052)
    public static let rescaleSlope = DICOMTag(0x0028, 0x1053)
    public static let rescaleType = DICOMTag(0x0028, 0x1054)
    public static let modalityLUTSequence = DICOMTag(0x0028, 0x3000)
    public static let lutDescriptor = DICOMTag(0x0028, 0x3002)
    public static let lutData = DICOMTag(0x0028, 0x3006)
    public static let pixelMeasuresSequence = DICOMTag(0x0028, 0x9110)
    public static let pixelValueTransformationSequence = DICOMTag(0x0028, 0x9145)
    // Segmentation (PS3.3 C.8.20)
    public static let segmentationType = DICOMTag(0x0062, 0x0001)
    public static let segmentSequence = DICOMTag(0x0062, 0x0002)
    public static let segmentNumber = DICOMTag(0x0062, 0x0004)
    public static let segmentLabel = DICOMTag(0x0062, 0x0005)
    public static let segmentIdentificationSequence = DICOMTag(0x0062, 0x000A)
    public static let referencedSegmentNumber = DICOMTag(0x0062, 0x000B)
    public static let maximumFractionalValue = DICOMTag(0x0062, 0x000E)
    public static let segmentationFractionalType = DICOMTag(0x0062, 0x0010)
    // RT Structure Set (PS3.3 C.8.8.5) and ROI Contour (C.8.8.6)
    public static let structureSetLabel = DICOMTag(0x3006, 0x0002)
    public static let referencedFrameOfReferenceSequence = DICOMTag(0x3006, 0x0010)
    public static let rtReferencedStudySequence = DICOMTag(0x3006, 0x0012)
    public static let rtReferencedSeriesSequence = DICOMTag(0x3006, 0x0014)
    public static let contourImageSequence = DICOMTag(0x3006, 0x0016)
    public static let structureSetROISequence = DICOMTag(0x3006, 0x0020)
    public static let roiNumber = DICOMTag(0x3006, 0x0022)
    public static let referencedFrameOfReferenceUID = DICOMTag(0x3006, 0x0024)
    public static let roiName = DICOMTag(0x3006, 0x0026)
    public static let roiContourSequence = DICOMTag(0x3006, 0x0039)
    public static let contourSequence = DICOMTag(0x3006, 0x0040)
    public static let contourGeometricType = DICOMTag(0x3006, 0x0042)
    public static let numberOfContourPoints = DICOMTag(0x3006, 0x0046)
    public static let contourData = DICOMTag(0x3006, 0x0050)
    public static let referencedROINumber = DICOMTag(0x3006, 0x0084)
    // Multi-frame functional groups (PS3.3 C.7.6.16)
    public static let sharedFunctionalGroupsSequence = DICOMTag(0x5200, 0x9229)
    public static let perFrameFunctionalGroupsSequence = DICOMTag(0x5200, 0x9230)
    public static let pixelData = DICOMTag(0x7FE0, 0x0010)
}
