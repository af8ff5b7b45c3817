import DICOMIO
import Foundation

/// Writes the small, deterministic DICOM fixtures of the test suite (`Tests/Fixtures/DICOM/`), one folder per case.
/// Transcoded variants (implicit VR, big endian, deflated, RLE, JPEG, JPEG-LS, JPEG 2000) are made from these by
/// `scripts/make_fixtures.sh` with DCMTK's own tools, so decoders are tested on files DCMTK did not write through us.
public struct FixtureFactory: Sendable {
    public var seed: UInt64 = 7

    public init() {}

    /// One synthetic series' layout.
    struct SeriesSpec {
        var name: String
        var modality = "CT"
        var sopClass = SOPClass.ctImageStorage
        var rows = 32, columns = 40
        var slices = 8
        /// Pixel Spacing (0028,0030): row spacing (y), column spacing (x), mm.
        var pixelSpacing = (row: 0.8, column: 0.7)
        var sliceSpacing = 2.5
        var rowCosine = Vector3(cos(0.2), sin(0.2), 0)
        var columnCosine = Vector3(-sin(0.2), cos(0.2), 0)
        var origin = Vector3(-14.25, -20.5, 33.75)
        /// Extra displacement per slice (gantry tilt shear), mm.
        var shearPerSlice = Vector3(0, 0, 0)
        var bitsAllocated = 16, bitsStored = 16
        var signed = true
        var slope = 1.0, intercept = 0.0
        /// Replace the rescale by a (0028,3000) Modality LUT Sequence: value = 2·stored − 1000.
        var modalityLUT = false
        /// Set random bits above the High Bit (a reader must mask them).
        var dirtyHighBits = false
        /// Slice indices left out (a gap).
        var omit: Set<Int> = []
        /// Instance numbers counting down the normal.
        var reverseInstanceNumbers = false
        var seriesNumber = 1
        var description = "Fixture"
        /// The study (and patient, frame of reference) the series belongs to; nil: its own, named after it.
        var study: String?
        /// Intensity (e.g. HU) at a patient position (LPS mm), stored as (value − intercept) / slope rounded; nil:
        /// the index pattern of `storedValue`.
        var content: (@Sendable (Vector3) -> Double)?

        /// The patient position (LPS mm) of voxel (i, j, k): column i along the row cosine, row j along the column
        /// cosine.
        func position(_ i: Int, _ j: Int, _ k: Int, slice: Vector3) -> Vector3 {
            slice + Double(i) * pixelSpacing.column * rowCosine + Double(j) * pixelSpacing.row * columnCosine
        }
    }

    /// Writes every case; returns the case folder names.
    public func writeAll(into root: String) throws(DICOMError) -> [String] {
        var cases: [String] = []
        func series(_ spec: SeriesSpec, folder: String) throws(DICOMError) -> [String] {
            try writeSeries(spec, folder: root + "/" + folder)
        }
        let base = SeriesSpec(name: "base")
        _ = try series(base, folder: "explicit-le")
        cases.append("explicit-le")
        var bits12 = SeriesSpec(name: "bits12")
        bits12.bitsStored = 12
        bits12.signed = false
        bits12.intercept = -1024
        bits12.slope = 1
        _ = try series(bits12, folder: "bits12-unsigned")
        cases.append("bits12-unsigned")
        var dirty = SeriesSpec(name: "dirty")
        dirty.bitsStored = 12
        dirty.signed = true
        dirty.dirtyHighBits = true
        dirty.slope = 0.5
        dirty.intercept = -10
        _ = try series(dirty, folder: "bits12-signed-dirty")
        cases.append("bits12-signed-dirty")
        var mr = SeriesSpec(name: "mr8")
        mr.modality = "MR"
        mr.sopClass = SOPClass.mrImageStorage
        mr.bitsAllocated = 8
        mr.bitsStored = 8
        mr.signed = false
        _ = try series(mr, folder: "mr-8bit")
        cases.append("mr-8bit")
        var reversed = SeriesSpec(name: "reversed")
        reversed.rowCosine = Vector3(-1, 0, 0)
        reversed.columnCosine = Vector3(0, 1, 0)
        reversed.reverseInstanceNumbers = true
        _ = try series(reversed, folder: "reversed")
        cases.append("reversed")
        var gap = SeriesSpec(name: "gap")
        gap.omit = [3]
        _ = try series(gap, folder: "gap")
        cases.append("gap")
        var tilt = SeriesSpec(name: "tilt")
        tilt.rowCosine = Vector3(1, 0, 0)
        tilt.columnCosine = Vector3(0, 1, 0)
        tilt.shearPerSlice = Vector3(0, tan(15 * Double.pi / 180) * 2.5, 0)
        _ = try series(tilt, folder: "gantry-tilt")
        cases.append("gantry-tilt")
        var lut = SeriesSpec(name: "lut")
        lut.modalityLUT = true
        lut.signed = false
        lut.bitsStored = 12
        _ = try series(lut, folder: "modality-lut")
        cases.append("modality-lut")
        var second = SeriesSpec(name: "second")
        second.rows = 24
        second.columns = 24
        second.slices = 5
        second.seriesNumber = 2
        second.description = "Second"
        _ = try series(base, folder: "two-series")
        _ = try series(second, folder: "two-series")
        cases.append("two-series")
        try writeEnhancedCT(SeriesSpec(name: "enhanced"), folder: root + "/multiframe-enhanced-ct")
        cases.append("multiframe-enhanced-ct")
        for fractional in [false, true] {
            let folder = fractional ? "seg-fractional" : "seg-binary"
            var spec = SeriesSpec(name: folder)
            spec.slices = 7  // 7·32·40 bits: frames do not end on byte boundaries
            let paths = try series(spec, folder: folder)
            try writeSegmentation(spec, sources: paths, fractional: fractional, path: root + "/" + folder + "/seg.dcm")
            cases.append(folder)
        }
        return cases
    }

    // MARK: - Content

    /// Stored value at voxel (i, j, k): a smooth pattern with structure in every direction, covering the range.
    func storedValue(_ spec: SeriesSpec, _ i: Int, _ j: Int, _ k: Int) -> Int {
        let maxValue = spec.signed ? (1 << (spec.bitsStored - 1)) - 1 : (1 << spec.bitsStored) - 1
        let minValue = spec.signed ? -(1 << (spec.bitsStored - 1)) : 0
        if let content = spec.content {
            let v = (content(spec.position(i, j, k, slice: position(spec, k))) - spec.intercept) / spec.slope
            return max(minValue, min(maxValue, Int(exactly: v.rounded()) ?? minValue))
        }
        let t = sin(Double(i) * 0.37 + Double(k) * 0.9) * cos(Double(j) * 0.23 - Double(k) * 0.4)
        let v = Double(minValue) + (Double(maxValue - minValue)) * (0.5 + 0.5 * t)
        return max(minValue, min(maxValue, (Int(exactly: v.rounded()) ?? minValue) + (i + 3 * j + 7 * k) % 5))
    }

    func packed(_ spec: SeriesSpec, slice k: Int, generator g: inout SeededGenerator) -> [UInt16] {
        var words = [UInt16](repeating: 0, count: spec.rows * spec.columns)
        let mask = (1 << spec.bitsStored) - 1
        for j in 0..<spec.rows {
            for i in 0..<spec.columns {
                var w = UInt16(truncatingIfNeeded: storedValue(spec, i, j, k) & mask)
                if spec.dirtyHighBits { w |= UInt16(truncatingIfNeeded: (g.next() & 0xF) << 12) }
                words[j * spec.columns + i] = w
            }
        }
        return words
    }

    func position(_ spec: SeriesSpec, _ k: Int) -> Vector3 {
        let normal = spec.rowCosine.cross(spec.columnCosine)
        return spec.origin + Double(k) * spec.sliceSpacing * normal + Double(k) * spec.shearPerSlice
    }

    func ds(_ v: Double) -> String {
        var s = String(format: "%.6f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s == "-0" ? "0" : s
    }

    func vector(_ v: Vector3) -> String { "\(ds(v.x))\\\(ds(v.y))\\\(ds(v.z))" }

    func commonTags(_ spec: SeriesSpec, uids: UIDFactory, key: String) -> [(DICOMTag, String)] {
        [
            (.specificCharacterSet, "ISO_IR 100"), (.imageType, "ORIGINAL\\PRIMARY\\AXIAL"),
            (.studyDate, "20260101"), (.studyTime, "120000"), (.contentDate, "20260101"), (.contentTime, "120000"),
            (.accessionNumber, "FX1"), (.modality, spec.modality), (.manufacturer, "Tessera Fixtures"),
            (.referringPhysicianName, ""), (.seriesDescription, spec.description),
            (.patientName, "Fixture^\(spec.study ?? spec.name)"), (.patientID, "FX-\(spec.study ?? spec.name)"),
            (.patientBirthDate, "19700101"),
            (.patientSex, "O"), (.studyInstanceUID, uids.uid("study/" + (spec.study ?? spec.name))),
            (.seriesInstanceUID, uids.uid(key)), (.studyID, "1"), (.seriesNumber, String(spec.seriesNumber)),
            (.frameOfReferenceUID, uids.uid("for/" + (spec.study ?? spec.name))), (.positionReferenceIndicator, ""),
            (.patientPosition, "HFS"), (.photometricInterpretation, "MONOCHROME2"), (.kvp, "120"),
            (.acquisitionNumber, "1"), (.sliceThickness, ds(spec.sliceSpacing)),
        ]
    }

    func pixelModule(_ w: WritableDICOMItem, _ spec: SeriesSpec) throws(DICOMError) {
        try w.set(.samplesPerPixel, uint16: 1)
        try w.set(.rows, uint16: UInt16(spec.rows))
        try w.set(.columns, uint16: UInt16(spec.columns))
        try w.set(.bitsAllocated, uint16: UInt16(spec.bitsAllocated))
        try w.set(.bitsStored, uint16: UInt16(spec.bitsStored))
        try w.set(.highBit, uint16: UInt16(spec.bitsStored - 1))
        try w.set(.pixelRepresentation, uint16: spec.signed ? 1 : 0)
    }

    func rescale(_ w: WritableDICOMItem, _ spec: SeriesSpec) throws(DICOMError) {
        if spec.modalityLUT {
            let item = try w.appendItem(.modalityLUTSequence)
            try item.set(.lutDescriptor, uint16s: [4096, 0, 16])
            try item.set(DICOMTag(0x0028, 0x3003), "LINEAR x2 - 1000")
            try item.set(.rescaleType, "HU")
            // Output = 2·stored (a real LUT maps to unsigned values; the intercept-free table keeps it so).
            try item.set(.lutData, uint16s: (0..<4096).map { UInt16(min(65535, 2 * $0)) })
        } else if spec.modality != "MR" {
            try w.set(.rescaleIntercept, ds(spec.intercept))
            try w.set(.rescaleSlope, ds(spec.slope))
            try w.set(.rescaleType, "HU")
        }
    }

    @discardableResult
    func writeSeries(_ spec: SeriesSpec, folder: String) throws(DICOMError) -> [String] {
        try makeFolder(folder)
        let uids = UIDFactory(seed: seed)
        var g = SeededGenerator(seed: seed ^ UInt64(spec.name.utf8.count))
        var paths: [String] = []
        let key = "series/" + spec.name
        let kept = (0..<spec.slices).filter { !spec.omit.contains($0) }
        for k in kept {
            let w = DICOMWriter()
            let d = w.dataset
            for (tag, value) in commonTags(spec, uids: uids, key: key) { try d.set(tag, value) }
            try d.set(.sopClassUID, spec.sopClass)
            try d.set(.sopInstanceUID, uids.uid(key + "/\(k)"))
            let number = spec.reverseInstanceNumbers ? spec.slices - k : k + 1
            try d.set(.instanceNumber, String(number))
            try d.set(.imagePositionPatient, vector(position(spec, k)))
            try d.set(.imageOrientationPatient, vector(spec.rowCosine) + "\\" + vector(spec.columnCosine))
            try d.set(.pixelSpacing, "\(ds(spec.pixelSpacing.row))\\\(ds(spec.pixelSpacing.column))")
            if spec.shearPerSlice != Vector3(0, 0, 0) { try d.set(.gantryDetectorTilt, "15") }
            try pixelModule(d, spec)
            try rescale(d, spec)
            let words = packed(spec, slice: k, generator: &g)
            if spec.bitsAllocated == 8 {
                try d.setPixelData(bytes: words.map { UInt8(truncatingIfNeeded: $0) })
            } else {
                try d.setPixelData(words)
            }
            // Names that do not sort like the slices.
            let name = String(format: "%@/%08X", folder, UInt32(truncatingIfNeeded: g.next()))
            try w.write(to: name)
            paths.append(name)
        }
        return paths
    }

    /// An Enhanced CT image: all frames in one file, geometry in functional groups (PS3.3 C.7.6.16).
    func writeEnhancedCT(_ spec: SeriesSpec, folder: String) throws(DICOMError) {
        try makeFolder(folder)
        let uids = UIDFactory(seed: seed)
        var g = SeededGenerator(seed: seed)
        let w = DICOMWriter()
        let d = w.dataset
        for (tag, value) in commonTags(spec, uids: uids, key: "series/enhanced") where tag != .sliceThickness {
            try d.set(tag, value)
        }
        try d.set(.imageType, "ORIGINAL\\PRIMARY\\AXIAL\\NONE")
        try d.set(.sopClassUID, SOPClass.enhancedCTImageStorage)
        try d.set(.sopInstanceUID, uids.uid("enhanced/instance"))
        try d.set(.instanceNumber, "1")
        try d.set(.numberOfFrames, String(spec.slices))
        try pixelModule(d, spec)
        let shared = try d.appendItem(.sharedFunctionalGroupsSequence)
        try shared.appendItem(.planeOrientationSequence).set(
            .imageOrientationPatient,
            vector(spec.rowCosine) + "\\" + vector(spec.columnCosine))
        let measures = try shared.appendItem(.pixelMeasuresSequence)
        try measures.set(.pixelSpacing, "\(ds(spec.pixelSpacing.row))\\\(ds(spec.pixelSpacing.column))")
        try measures.set(.sliceThickness, ds(spec.sliceSpacing))
        // Frames stored in a scrambled order; each has its own position and rescale.
        let order = [2, 0, 5, 1, 7, 3, 6, 4].filter { $0 < spec.slices }
        var words: [UInt16] = []
        for k in order {
            let frame = try d.appendItem(.perFrameFunctionalGroupsSequence)
            try frame.appendItem(.planePositionSequence).set(.imagePositionPatient, vector(position(spec, k)))
            let transform = try frame.appendItem(.pixelValueTransformationSequence)
            try transform.set(.rescaleIntercept, ds(-1000 + Double(k)))
            try transform.set(.rescaleSlope, ds(1 + 0.25 * Double(k % 3)))
            try transform.set(.rescaleType, "HU")
            words += packed(spec, slice: k, generator: &g)
        }
        try d.setPixelData(words)
        try w.write(to: folder + "/enhanced-ct")
    }

    /// A SEG on the series: segment 1 a sphere, segment 2 a box; fractional values ramp across the sphere's edge.
    func writeSegmentation(_ spec: SeriesSpec, sources: [String], fractional: Bool, path: String) throws(DICOMError) {
        let plane = spec.rows * spec.columns
        var masks = [UInt8](repeating: 0, count: 2 * spec.slices * plane)
        for k in 0..<spec.slices {
            for j in 0..<spec.rows {
                for i in 0..<spec.columns {
                    let dx = Double(i - 20) * spec.pixelSpacing.column
                    let dy = Double(j - 15) * spec.pixelSpacing.row
                    let dz = Double(k - 3) * spec.sliceSpacing
                    let r = (dx * dx + dy * dy + dz * dz).squareRoot()
                    var sphere: UInt8 = r < 7 ? 1 : 0
                    if fractional { sphere = UInt8(max(0, min(255, (9 - r) / 4 * 255))) }
                    masks[k * plane + j * spec.columns + i] = sphere
                    let box = i >= 2 && i < 9 && j >= 3 && j < 8 && k >= 1 && k < 5
                    masks[(spec.slices + k) * plane + j * spec.columns + i] = box ? (fractional ? 200 : 1) : 0
                }
            }
        }
        try writeSEG(
            masks: masks, spec, sources: sources, fractional: fractional, path: path,
            segments: [
                SegmentSpecification(label: "Sphere", typeCode: ("10200004", "SCT", "Liver")),
                SegmentSpecification(
                    label: "Box", typeCode: ("78961009", "SCT", "Spleen"),
                    algorithmType: "AUTOMATIC", algorithmName: "BoxDrawer"),
            ])
    }

    /// A SEG of `masks` (`segments.count` × slices × rows × columns, slice order) over the series' `sources`.
    func writeSEG(
        masks: [UInt8], _ spec: SeriesSpec, sources: [String], fractional: Bool, path: String,
        segments: [SegmentSpecification]
    ) throws(DICOMError) {
        let uids = UIDFactory(seed: seed)
        var writer = SegmentationWriter()
        writer.fractional = fractional
        writer.seriesInstanceUID = uids.uid(path + "/series")
        writer.sopInstanceUID = uids.uid(path + "/instance")
        writer.contentDate = "20260101"
        writer.contentTime = "120000"
        // Sources in slice order (the writer references each by its SOP Instance UID).
        try writer.write(
            to: path, masks: masks, rows: spec.rows, columns: spec.columns, sourcePaths: sources,
            segments: segments)
    }

    func makeFolder(_ path: String) throws(DICOMError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw DICOMError(.io, "cannot create the folder", path: path, cause: "\(error)")
        }
    }
}
