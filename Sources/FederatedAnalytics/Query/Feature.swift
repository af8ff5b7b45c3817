/// What a cohort query can ask about. Tag features come from DICOM attributes of the first instance of a series;
/// image features from the series' HU volume and its DICOM SEG.
public enum Feature: Hashable, Sendable, CustomStringConvertible {
    /// A DICOM attribute (by keyword, see `TagFeature`).
    case tag(TagFeature)
    /// Per patient: mean HU of voxels inside the body (HU > −500); per voxel: the HU distribution inside the body.
    case huInsideBody
    /// Per patient: mean HU inside SEG segment n; per voxel: the HU distribution inside the segment.
    case huInsideLabel(Int)
    /// Volume of SEG segment n in mL (voxel count × voxel volume in mm³ / 1000).
    case structureVolume(Int)

    /// Parses the query spelling: a DICOM keyword (`PatientAge`, `KVP`, ...), `hu-in-body`, `hu-in-label:N`,
    /// `volume-ml:N`.
    public init(parsing text: String) throws(AnalyticsError) {
        if text == "hu-in-body" {
            self = .huInsideBody
            return
        }
        for (prefix, make) in [("hu-in-label:", Feature.huInsideLabel), ("volume-ml:", Feature.structureVolume)] {
            if text.hasPrefix(prefix) {
                guard let n = Int(text.dropFirst(prefix.count)), n > 0, n < 256 else {
                    throw AnalyticsError(
                        .invalidQuery, "feature '\(text)': the segment number after '\(prefix)' must be 1...255")
                }
                self = make(n)
                return
            }
        }
        guard let tag = TagFeature(rawValue: text) else {
            throw AnalyticsError(
                .invalidQuery,
                "unknown feature '\(text)'. Known: "
                    + TagFeature.allCases.map(\.rawValue).joined(separator: ", ")
                    + ", hu-in-body, hu-in-label:N, volume-ml:N")
        }
        self = .tag(tag)
    }

    public var description: String {
        switch self {
        case .tag(let t): return t.rawValue
        case .huInsideBody: return "hu-in-body"
        case .huInsideLabel(let n): return "hu-in-label:\(n)"
        case .structureVolume(let n): return "volume-ml:\(n)"
        }
    }

    public var isCategorical: Bool {
        if case .tag(let t) = self { return t.isCategorical }
        return false
    }

    /// Image features need the volume (and SEG) to be decoded.
    public var needsImage: Bool {
        if case .tag = self { return false }
        return true
    }

    /// Unit of the values, for reports.
    public var unit: String {
        switch self {
        case .tag(let t): return t.unit
        case .huInsideBody, .huInsideLabel: return "HU"
        case .structureVolume: return "mL"
        }
    }
}

/// DICOM attributes a query may use, by keyword (PS3.6).
public enum TagFeature: String, CaseIterable, Sendable {
    case patientAge = "PatientAge"  // (0010,1010) AS, reported in years
    case patientSex = "PatientSex"  // (0010,0040) CS
    case manufacturer = "Manufacturer"  // (0008,0070) LO
    case manufacturerModelName = "ManufacturerModelName"  // (0008,1090) LO
    case modality = "Modality"  // (0008,0060) CS
    case sliceThickness = "SliceThickness"  // (0018,0050) DS, mm
    case pixelSpacing = "PixelSpacing"  // (0028,0030) DS, mm (mean of row and column spacing)
    case kvp = "KVP"  // (0018,0060) DS, kV
    case convolutionKernel = "ConvolutionKernel"  // (0018,1210) SH
    case studyYear = "StudyYear"  // (0008,0020) Study Date, year

    public var isCategorical: Bool {
        switch self {
        case .patientSex, .manufacturer, .manufacturerModelName, .modality, .convolutionKernel: return true
        default: return false
        }
    }

    public var unit: String {
        switch self {
        case .patientAge: return "years"
        case .sliceThickness, .pixelSpacing: return "mm"
        case .kvp: return "kV"
        case .studyYear: return "year"
        default: return ""
        }
    }
}
