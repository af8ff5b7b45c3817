import CDCMTKShim
import Glibc

/// Describes one segment to write: label and coded property (SNOMED CT by default), PS3.3 C.8.20.2.
public struct SegmentSpecification: Sendable {
    public var label: String
    public var categoryCode: (value: String, scheme: String, meaning: String)
    public var typeCode: (value: String, scheme: String, meaning: String)
    /// MANUAL, SEMIAUTOMATIC or AUTOMATIC.
    public var algorithmType: String
    public var algorithmName: String

    public init(
        label: String,
        categoryCode: (value: String, scheme: String, meaning: String) = ("91723000", "SCT", "Anatomical Structure"),
        typeCode: (value: String, scheme: String, meaning: String),
        algorithmType: String = "MANUAL", algorithmName: String = ""
    ) {
        self.label = label
        self.categoryCode = categoryCode
        self.typeCode = typeCode
        self.algorithmType = algorithmType
        self.algorithmName = algorithmName
    }
}

/// Writes a DICOM SEG through DCMTK's dcmseg, referencing the source images it was drawn on.
public struct SegmentationWriter: Sendable {
    public var seriesDescription = "Segmentation"
    public var seriesNumber = 100
    public var contentLabel = "SEGMENTATION"
    public var contentCreator = "Tessera^Pipeline"
    public var manufacturer = "Tessera"
    public var modelName = "tessera"
    public var softwareVersions = "0.1"
    /// Fixed UIDs and dates make the output reproducible; nil lets DCMTK choose.
    public var seriesInstanceUID: String?
    public var sopInstanceUID: String?
    public var contentDate: String?
    public var contentTime: String?
    /// FRACTIONAL (PROBABILITY) instead of BINARY; masks then hold 0...`maximumFractionalValue`.
    public var fractional = false
    public var maximumFractionalValue: UInt16 = 255
    /// Frames without any voxel of their segment are left out (as most SEG writers do).
    public var skipEmptyFrames = true

    public init() {}

    /// - Parameters:
    ///   - masks: `segments.count × sourcePaths.count × rows × columns`, x fastest; segment `s` on slice `k`.
    ///   - sourcePaths: the image files, one per slice, in slice order.
    public func write(
        to path: String, masks: [UInt8], rows: Int, columns: Int, sourcePaths: [String],
        segments: [SegmentSpecification]
    ) throws(DICOMError) {
        guard (1...65535).contains(rows), (1...65535).contains(columns), !sourcePaths.isEmpty,
            sourcePaths.count <= Int(UInt32.max), segments.count <= Int(UInt32.max)
        else {
            throw DICOMError(
                .invalidArgument,
                "a SEG of \(rows)×\(columns) on \(sourcePaths.count) slices cannot be "
                    + "written: (0028,0010) Rows and (0028,0011) Columns must be 1 to 65535", path: path)
        }
        let expected = try checkedProduct(
            [segments.count, sourcePaths.count, rows, columns], limit: Int.max,
            "segments × slices × rows × columns", limitName: "maxVoxelsPerVolume",
            path: path)
        guard masks.count == expected, !segments.isEmpty else {
            throw DICOMError(
                .invalidArgument,
                "masks hold \(masks.count) values; \(segments.count) segments × "
                    + "\(sourcePaths.count) slices × \(rows)×\(columns) expected", path: path)
        }
        var status = TSRStatus()
        // Keep every C string alive for the call.
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer { strings.forEach { free($0) } }
        func c(_ s: String?) -> UnsafePointer<CChar>? {
            guard let s, let p = strdup(s) else { return nil }
            strings.append(p)
            return UnsafePointer(p)
        }
        let sources: [UnsafePointer<CChar>?] = sourcePaths.map { c($0) }
        let descriptions: [TSRSegmentDescription] = segments.map { s in
            TSRSegmentDescription(
                label: c(s.label), categoryCode: c(s.categoryCode.value), categoryScheme: c(s.categoryCode.scheme),
                categoryMeaning: c(s.categoryCode.meaning), typeCode: c(s.typeCode.value),
                typeScheme: c(s.typeCode.scheme), typeMeaning: c(s.typeCode.meaning),
                algorithmType: c(s.algorithmType), algorithmName: c(s.algorithmName))
        }
        let rc: Int32 = sources.withUnsafeBufferPointer { sourceBuffer in
            descriptions.withUnsafeBufferPointer { segmentBuffer in
                masks.withUnsafeBufferPointer { maskBuffer in
                    var spec = TSRSegmentationSpec()
                    spec.sourcePaths = sourceBuffer.baseAddress
                    spec.sourceCount = UInt32(sourcePaths.count)
                    spec.rows = UInt16(rows)
                    spec.columns = UInt16(columns)
                    spec.frames = maskBuffer.baseAddress
                    spec.segments = segmentBuffer.baseAddress
                    spec.segmentCount = UInt32(segments.count)
                    spec.fractional = fractional ? 1 : 0
                    spec.maxFractionalValue = maximumFractionalValue
                    spec.skipEmptyFrames = skipEmptyFrames ? 1 : 0
                    spec.seriesDescription = c(seriesDescription)
                    spec.seriesNumber = c(String(seriesNumber))
                    spec.instanceNumber = c("1")
                    spec.contentLabel = c(contentLabel)
                    spec.contentCreator = c(contentCreator)
                    spec.manufacturer = c(manufacturer)
                    spec.modelName = c(modelName)
                    spec.serialNumber = c("1")
                    spec.softwareVersions = c(softwareVersions)
                    spec.seriesInstanceUID = c(seriesInstanceUID)
                    spec.sopInstanceUID = c(sopInstanceUID)
                    spec.contentDate = c(contentDate)
                    spec.contentTime = c(contentTime)
                    return tsr_segmentation_write(&spec, path, &status)
                }
            }
        }
        if rc != 0 {
            throw DICOMError(.write, "cannot write the DICOM SEG: " + statusMessage(&status), path: path)
        }
    }
}
