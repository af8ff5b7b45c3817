extension ImageInstance {
    /// Reads and checks the header of one file (pixel data stays on disk).
    ///
    /// - Throws: `DICOMError` for unreadable or non-DICOM files, missing or malformed required attributes
    ///   ((0028,0010) Rows, (0028,0011) Columns, (0028,0100) Bits Allocated, ...), sizes above `limits`, objects that
    ///   are not images (RT Dose, RT Structure Set, SR, presentation states: `.notImage`), or an unsupported
    ///   transfer syntax.
    public init(path: String, limits: ReadingLimits = .default) throws(DICOMError) {
        let file = try DICOMFile(path: path)
        try self.init(file: file, limits: limits)
    }

    /// Parses the header of an opened file, checking every size against `limits` before anything is allocated.
    public init(file: DICOMFile, limits: ReadingLimits = .default) throws(DICOMError) {
        let ds = file.dataset
        let path = file.path
        func required(_ tag: DICOMTag, _ name: String) throws(DICOMError) -> String {
            guard let v = ds.nonEmptyString(tag) else {
                throw DICOMError(
                    .missingAttribute, "\(tag) \(name) is missing; the file cannot be placed in a series",
                    path: path)
            }
            return v
        }
        func wrap<T>(_ body: () throws(DICOMError) -> T) throws(DICOMError) -> T {
            do { return try body() } catch {
                var e = error
                e.path = path
                throw e
            }
        }
        self.path = path
        self.sopClassUID = try required(.sopClassUID, "SOP Class UID")
        self.sopInstanceUID = try required(.sopInstanceUID, "SOP Instance UID")
        self.transferSyntax = file.transferSyntax
        self.tags = [:]
        let isDirectory =
            sopClassUID == SOPClass.mediaStorageDirectory
            || file.metaHeader.string(.mediaStorageSOPClassUID) == SOPClass.mediaStorageDirectory
        if isDirectory {
            self.sopClassUID = SOPClass.mediaStorageDirectory
            self.studyInstanceUID = ""
            self.seriesInstanceUID = ""
            self.frameOfReferenceUID = nil
            self.modality = ""
            self.seriesDescription = ""
            self.seriesNumber = nil
            self.instanceNumber = nil
            self.rows = 0
            self.columns = 0
            self.samplesPerPixel = 0
            self.photometricInterpretation = ""
            self.bitsAllocated = 0
            self.bitsStored = 0
            self.highBit = 0
            self.pixelRepresentation = 0
            self.numberOfFrames = 0
            self.frames = []
            self.modalityLUT = nil
            self.gantryTilt = nil
            return
        }
        self.studyInstanceUID = ds.nonEmptyString(.studyInstanceUID) ?? ""
        self.seriesInstanceUID = try required(.seriesInstanceUID, "Series Instance UID")
        self.frameOfReferenceUID = ds.nonEmptyString(.frameOfReferenceUID)
        self.modality = ds.nonEmptyString(.modality) ?? "OT"
        self.seriesDescription = ds.nonEmptyString(.seriesDescription) ?? ""
        self.seriesNumber = try wrap { () throws(DICOMError) in try ds.integer(.seriesNumber) }
        self.instanceNumber = try wrap { () throws(DICOMError) in try ds.integer(.instanceNumber) }
        for (tag, key) in Self.reportedTags {
            if let v = ds.nonEmptyString(tag) { tags[key] = v }
        }
        if let kind = SOPClass.nonImageKind(sopClassUID) {
            throw DICOMError(
                .notImage,
                "\(kind) (SOP Class \(sopClassUID)) is not an image for training; skipped", path: path)
        }
        guard ds.contains(.pixelData) else {
            throw DICOMError(
                .missingAttribute,
                "no (7FE0,0010) Pixel Data: not an image (SOP Class \(sopClassUID)); skipped", path: path)
        }
        func requiredInt(_ tag: DICOMTag, _ name: String) throws(DICOMError) -> Int {
            guard let v = try wrap({ () throws(DICOMError) in try ds.integer(tag) }) else {
                throw DICOMError(
                    .missingAttribute, "\(tag) \(name) is missing; the image cannot be decoded",
                    path: path)
            }
            return v
        }
        self.rows = try requiredInt(.rows, "Rows")
        self.columns = try requiredInt(.columns, "Columns")
        try checkSize(rows, limit: limits.maxRows, "(0028,0010) Rows", limitName: "maxRows", path: path)
        try checkSize(columns, limit: limits.maxColumns, "(0028,0011) Columns", limitName: "maxColumns", path: path)
        self.bitsAllocated = try requiredInt(.bitsAllocated, "Bits Allocated")
        self.bitsStored = try wrap { () throws(DICOMError) in try ds.integer(.bitsStored) } ?? bitsAllocated
        self.highBit = try wrap { () throws(DICOMError) in try ds.integer(.highBit) } ?? (bitsStored - 1)
        self.pixelRepresentation = try wrap { () throws(DICOMError) in try ds.integer(.pixelRepresentation) } ?? 0
        self.samplesPerPixel = try wrap { () throws(DICOMError) in try ds.integer(.samplesPerPixel) } ?? 1
        self.photometricInterpretation = ds.nonEmptyString(.photometricInterpretation) ?? "MONOCHROME2"
        self.numberOfFrames = try wrap { () throws(DICOMError) in try ds.integer(.numberOfFrames) } ?? 1
        try checkSize(
            numberOfFrames, limit: limits.maxFrames, "(0028,0008) Number of Frames", limitName: "maxFrames",
            path: path)
        _ = try checkedProduct(
            [rows, columns, numberOfFrames], limit: limits.maxVoxelsPerVolume,
            "(0028,0010) Rows × (0028,0011) Columns × (0028,0008) Number of Frames",
            limitName: "maxVoxelsPerVolume", path: path)
        let tilt = try wrap { () throws(DICOMError) in try ds.number(.gantryDetectorTilt) }
        self.gantryTilt = tilt.flatMap { $0.isFinite && abs($0) <= 90 ? $0 : nil }
        guard (1...4).contains(samplesPerPixel) else {
            throw DICOMError(
                .invalidAttribute,
                "(0028,0002) Samples per Pixel is \(samplesPerPixel); 1 (grey-scale) "
                    + "or 3 (colour) expected", path: path)
        }
        guard [1, 8, 16, 32].contains(bitsAllocated), bitsStored >= 1, bitsStored <= bitsAllocated,
            highBit >= bitsStored - 1, highBit < bitsAllocated
        else {
            throw DICOMError(
                .invalidAttribute,
                "inconsistent pixel format: (0028,0100) Bits Allocated \(bitsAllocated), "
                    + "(0028,0101) Bits Stored \(bitsStored), (0028,0102) High Bit \(highBit)",
                path: path)
        }
        guard pixelRepresentation == 0 || pixelRepresentation == 1 else {
            throw DICOMError(
                .invalidAttribute,
                "(0028,0103) Pixel Representation must be 0 or 1, is "
                    + "\(pixelRepresentation)", path: path)
        }
        guard transferSyntax.isSupported else {
            throw DICOMError(
                .unsupportedTransferSyntax,
                "transfer syntax \(transferSyntax.uid) is not supported. "
                    + DICOMError.Code.unsupportedTransferSyntax.advice, path: path)
        }
        // Uncompressed pixel data shorter than the header declares is refused here, from its declared length,
        // before any volume is allocated for it.
        if transferSyntax.isNative, let length = ds.valueLength(.pixelData), length != 0xFFFF_FFFF {
            let bits = try checkedProduct(
                [rows, columns, numberOfFrames, samplesPerPixel, bitsAllocated],
                limit: Int.max, "(7FE0,0010) Pixel Data size in bits",
                limitName: "maxVoxelsPerVolume", path: path)
            let needed = bits / 8 + (bits % 8 == 0 ? 0 : 1)
            guard length >= needed else {
                throw DICOMError(
                    .truncatedPixelData,
                    "(7FE0,0010) Pixel Data holds \(length) bytes but \(numberOfFrames) frame(s) of "
                        + "\(rows)×\(columns)×\(samplesPerPixel) at \(bitsAllocated) bits need \(needed): "
                        + "the file is truncated; re-export it", path: path)
            }
        }
        self.modalityLUT = try wrap { () throws(DICOMError) in try Self.readModalityLUT(ds, limits: limits) }
        let frameCount = numberOfFrames
        self.frames = try wrap { () throws(DICOMError) in
            try Self.readFrames(ds, count: frameCount, path: path, limits: limits)
        }
    }

    static let reportedTags: [(DICOMTag, String)] = [
        (.patientID, "PatientID"), (.patientAge, "PatientAge"), (.patientSex, "PatientSex"),
        (.manufacturer, "Manufacturer"), (.manufacturerModelName, "ManufacturerModelName"),
        (.sliceThickness, "SliceThickness"), (.kvp, "KVP"), (.convolutionKernel, "ConvolutionKernel"),
        (.studyDate, "StudyDate"), (.bodyPartExamined, "BodyPartExamined"), (.patientPosition, "PatientPosition"),
        (.institutionName, "InstitutionName"), (.pixelSpacing, "PixelSpacing"),
    ]

    static func readModalityLUT(_ ds: DICOMItem, limits: ReadingLimits = .default) throws(DICOMError)
        -> ModalityLUT?
    {
        guard let item = ds.firstItem(.modalityLUTSequence) else { return nil }
        guard let descriptor = try item.numbers(.lutDescriptor), descriptor.count == 3,
            let data = item.bytes(.lutData)
        else {
            throw DICOMError(
                .invalidAttribute,
                "(0028,3000) Modality LUT Sequence lacks a valid (0028,3002) LUT Descriptor or "
                    + "(0028,3006) LUT Data")
        }
        // PS3.3 C.11.1.1.1: first value 0 means 65536 entries; the values may be encoded SS or US, so a negative
        // value is read back as its 16-bit two's complement (-1 as SS is 65535).
        func descriptorValue(_ k: Int) throws(DICOMError) -> Int {
            let v = try checkedInt(descriptor[k], "(0028,3002) LUT Descriptor value \(k + 1)")
            guard (-32768...65535).contains(v) else {
                throw DICOMError(
                    .invalidAttribute,
                    "(0028,3002) LUT Descriptor value \(k + 1) is \(v); a 16-bit "
                        + "value is expected")
            }
            return v < 0 ? v + 65536 : v
        }
        let declared = try descriptorValue(0)
        let entries = declared == 0 ? 65536 : declared
        try checkSize(
            entries, limit: limits.maxLUTEntries, "(0028,3002) LUT Descriptor number of entries",
            limitName: "maxLUTEntries")
        let bits = try descriptorValue(2)
        guard (8...16).contains(bits) else {
            throw DICOMError(
                .invalidAttribute,
                "(0028,3002) LUT Descriptor value 3 (bits per entry) is \(bits); "
                    + "8 to 16 expected")
        }
        let wordCount = data.count / 2
        var table = [Float](repeating: 0, count: entries)
        if bits > 8 || wordCount >= entries {
            guard wordCount >= entries else {
                throw DICOMError(
                    .invalidAttribute,
                    "(0028,3006) LUT Data holds \(wordCount) entries, "
                        + "(0028,3002) LUT Descriptor says \(entries)")
            }
            data.withUnsafeBytes { raw in
                for i in 0..<entries { table[i] = Float(raw.load(fromByteOffset: 2 * i, as: UInt16.self)) }
            }
        } else {
            guard data.count >= entries else {
                throw DICOMError(
                    .invalidAttribute,
                    "(0028,3006) LUT Data holds \(data.count) entries, "
                        + "(0028,3002) LUT Descriptor says \(entries)")
            }
            for i in 0..<entries { table[i] = Float(data[i]) }
        }
        var first = try checkedInt(descriptor[1], "(0028,3002) LUT Descriptor value 2 (first stored value mapped)")
        guard (-32768...65535).contains(first) else {
            throw DICOMError(
                .invalidAttribute,
                "(0028,3002) LUT Descriptor value 2 is \(first); a 16-bit value is "
                    + "expected")
        }
        if first > 32767 { first -= 65536 }  // US-encoded negative first value
        return ModalityLUT(firstMapped: first, table: table)
    }

    /// Geometry and rescale per frame: the classic Image Plane module for single frames, functional groups
    /// (per-frame first, then shared) for enhanced multi-frame images.
    static func readFrames(
        _ ds: DICOMItem, count: Int, path: String,
        limits: ReadingLimits = .default
    ) throws(DICOMError) -> [FrameInfo] {
        let shared = ds.firstItem(.sharedFunctionalGroupsSequence)
        let perFrame = ds.sequence(.perFrameFunctionalGroupsSequence)
        let topSlope = try ds.number(.rescaleSlope) ?? 1
        let topIntercept = try ds.number(.rescaleIntercept) ?? 0
        let topThickness = try ds.number(.sliceThickness)
        if perFrame.isEmpty && shared == nil {
            let base = try classicFrame(
                ds, slope: topSlope, intercept: topIntercept, thickness: topThickness,
                limits: limits)
            if count == 1 { return [base] }
            // Classic multi-frame without functional groups: frames stacked along the normal by
            // (0018,0088) Spacing Between Slices (or the slice thickness).
            let step = try ds.number(.spacingBetweenSlices) ?? topThickness ?? 1
            guard step.isFinite, step != 0, abs(step) * Double(count) <= limits.maxCoordinate else {
                throw DICOMError(
                    .invalidAttribute,
                    "(0018,0088) Spacing Between Slices (or (0018,0050) Slice Thickness) is \(step) for "
                        + "\(count) frames: the frames cannot be placed (limit "
                        + "\(limits.maxCoordinate) mm, ReadingLimits.maxCoordinate)")
            }
            return (0..<count).map { k in
                var f = base
                f.position = base.position + Double(k) * step * base.normal
                return f
            }
        }
        guard perFrame.count == count else {
            throw DICOMError(
                .invalidAttribute,
                "(5200,9230) Per-frame Functional Groups Sequence has \(perFrame.count) items for "
                    + "\(count) frames")
        }
        var frames: [FrameInfo] = []
        frames.reserveCapacity(count)
        for (index, item) in perFrame.enumerated() {
            func lookup(_ sequence: DICOMTag) -> DICOMItem? {
                item.firstItem(sequence) ?? shared?.firstItem(sequence)
            }
            guard let plane = lookup(.planePositionSequence), let ipp = try plane.numbers(.imagePositionPatient),
                ipp.count == 3
            else {
                throw DICOMError(
                    .missingAttribute,
                    "frame \(index + 1) has no (0020,9113) Plane Position Sequence / (0020,0032) Image "
                        + "Position (Patient)")
            }
            guard let orientation = lookup(.planeOrientationSequence),
                let iop = try orientation.numbers(.imageOrientationPatient), iop.count == 6
            else {
                throw DICOMError(
                    .missingAttribute,
                    "frame \(index + 1) has no (0020,9116) Plane Orientation Sequence / (0020,0037)")
            }
            guard let measures = lookup(.pixelMeasuresSequence), let ps = try measures.numbers(.pixelSpacing),
                ps.count == 2
            else {
                throw DICOMError(
                    .missingAttribute,
                    "frame \(index + 1) has no (0028,9110) Pixel Measures Sequence / (0028,0030)")
            }
            try checkUnitCosines(iop, frame: index)
            let transform = lookup(.pixelValueTransformationSequence)
            var frame = FrameInfo(
                position: Vector3(ipp[0], ipp[1], ipp[2]),
                rowCosine: Vector3(iop[0], iop[1], iop[2]).normalized,
                columnCosine: Vector3(iop[3], iop[4], iop[5]).normalized,
                pixelSpacing: (ps[0], ps[1]),
                rescaleSlope: try transform?.number(.rescaleSlope) ?? topSlope,
                rescaleIntercept: try transform?.number(.rescaleIntercept) ?? topIntercept,
                sliceThickness: try measures.number(.sliceThickness) ?? topThickness)
            if let segment = lookup(.segmentIdentificationSequence) {
                frame.referencedSegmentNumber = try segment.integer(.referencedSegmentNumber)
            }
            for derivation in item.sequence(.derivationImageSequence) {
                for source in derivation.sequence(.sourceImageSequence) {
                    if let uid = source.nonEmptyString(.referencedSOPInstanceUID) {
                        frame.referencedSOPInstanceUIDs.append(uid)
                    }
                }
            }
            try validate(frame, index: index, limits: limits)
            frames.append(frame)
        }
        return frames
    }

    static func classicFrame(
        _ ds: DICOMItem, slope: Double, intercept: Double, thickness: Double?,
        limits: ReadingLimits
    ) throws(DICOMError) -> FrameInfo {
        guard let ipp = try ds.numbers(.imagePositionPatient), ipp.count == 3 else {
            throw DICOMError(
                .missingAttribute,
                "(0020,0032) Image Position (Patient) is missing or does not have 3 values: the slice "
                    + "cannot be placed in a volume")
        }
        guard let iop = try ds.numbers(.imageOrientationPatient), iop.count == 6 else {
            throw DICOMError(
                .missingAttribute,
                "(0020,0037) Image Orientation (Patient) is missing or does not have 6 values")
        }
        guard let ps = try ds.numbers(.pixelSpacing), ps.count == 2 else {
            throw DICOMError(.missingAttribute, "(0028,0030) Pixel Spacing is missing or does not have 2 values")
        }
        try checkUnitCosines(iop, frame: 0)
        let frame = FrameInfo(
            position: Vector3(ipp[0], ipp[1], ipp[2]),
            rowCosine: Vector3(iop[0], iop[1], iop[2]).normalized,
            columnCosine: Vector3(iop[3], iop[4], iop[5]).normalized,
            pixelSpacing: (ps[0], ps[1]),
            rescaleSlope: slope, rescaleIntercept: intercept, sliceThickness: thickness)
        try validate(frame, index: 0, limits: limits)
        return frame
    }

    /// (0020,0037) holds two unit vectors; they are normalised after this check because they are stored as decimal
    /// strings of limited precision.
    static func checkUnitCosines(_ iop: [Double], frame index: Int) throws(DICOMError) {
        let r = Vector3(iop[0], iop[1], iop[2])
        let c = Vector3(iop[3], iop[4], iop[5])
        guard abs(r.length - 1) < 1e-3, abs(c.length - 1) < 1e-3 else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0020,0037) Image Orientation (Patient) is not two orthonormal "
                    + "direction cosines (lengths \(r.length), \(c.length))")
        }
    }

    static func validate(_ f: FrameInfo, index: Int, limits: ReadingLimits) throws(DICOMError) {
        let values = [
            f.position.x, f.position.y, f.position.z, f.pixelSpacing.row, f.pixelSpacing.column,
            f.rescaleSlope, f.rescaleIntercept,
        ]
        guard values.allSatisfy(\.isFinite) else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0020,0032) Image Position (Patient), (0028,0030) "
                    + "Pixel Spacing or (0028,1052)/(0028,1053) Rescale Intercept/Slope is not finite")
        }
        let p = f.position
        guard max(abs(p.x), abs(p.y), abs(p.z)) <= limits.maxCoordinate else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0020,0032) Image Position (Patient) (\(p.x), \(p.y), \(p.z)) lies "
                    + "beyond the limit of \(limits.maxCoordinate) mm (ReadingLimits.maxCoordinate); the "
                    + "header is corrupt")
        }
        guard max(f.pixelSpacing.row, f.pixelSpacing.column) <= limits.maxCoordinate else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0028,0030) Pixel Spacing \(f.pixelSpacing.row)\\"
                    + "\(f.pixelSpacing.column) exceeds the limit of \(limits.maxCoordinate) mm "
                    + "(ReadingLimits.maxCoordinate)")
        }
        // Values are applied in float32: a slope or intercept beyond its range would give infinite voxels.
        guard Float(f.rescaleSlope).isFinite, Float(f.rescaleIntercept).isFinite else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0028,1053) Rescale Slope \(f.rescaleSlope) or "
                    + "(0028,1052) Rescale Intercept \(f.rescaleIntercept) is beyond float32 range")
        }
        guard f.pixelSpacing.row > 0, f.pixelSpacing.column > 0 else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0028,0030) Pixel Spacing must be positive, is "
                    + "\(f.pixelSpacing.row)\\\(f.pixelSpacing.column)")
        }
        let r = f.rowCosine
        let c = f.columnCosine
        guard abs(r.length - 1) < 1e-3, abs(c.length - 1) < 1e-3, abs(r.dot(c)) < 1e-3 else {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0020,0037) Image Orientation (Patient) is not two orthonormal "
                    + "direction cosines (\(r.x), \(r.y), \(r.z) / \(c.x), \(c.y), \(c.z))")
        }
        guard f.rescaleSlope != 0 else {
            throw DICOMError(.invalidAttribute, "frame \(index + 1): (0028,1053) Rescale Slope is 0")
        }
        if let t = f.sliceThickness, !(t.isFinite && t >= 0 && t <= limits.maxCoordinate) {
            throw DICOMError(
                .invalidAttribute,
                "frame \(index + 1): (0018,0050) Slice Thickness is \(t); a finite "
                    + "length in mm up to \(limits.maxCoordinate) (ReadingLimits.maxCoordinate) is "
                    + "expected")
        }
    }
}
