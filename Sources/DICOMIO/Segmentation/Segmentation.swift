/// One segment of a DICOM SEG, from (0062,0002) Segment Sequence (PS3.3 C.8.20.2).
public struct SegmentDescription: Sendable, Equatable {
    /// (0062,0004) Segment Number, 1-based; the label value in label volumes.
    public var number: Int
    /// (0062,0005) Segment Label.
    public var label: String
    /// Code meaning of the Segmented Property Type, e.g. "Liver".
    public var propertyType: String?
}

/// A DICOM Segmentation instance: segments and frames, each frame tied to a source image (by referenced SOP
/// instance or by plane position).
///
/// BINARY and FRACTIONAL SEGs (SOP Class 1.2.840.10008.5.1.4.1.1.66.4) hold one frame per segment and slice, tied
/// to its segment by (0062,000B) Referenced Segment Number. LABELMAP SEGs (Label Map Segmentation Storage,
/// 1.2.840.10008.5.1.4.1.1.66.7, DICOM 2024 Supplement 243) hold one frame per slice whose 8- or 16-bit values are
/// segment numbers (0 = background). DCMTK 3.6.7's dcmseg predates Supplement 243, so all three are read with
/// plain dcmdata.
public struct Segmentation: Sendable {
    public enum Kind: String, Sendable {
        case binary = "BINARY"
        case fractional = "FRACTIONAL"
        case labelMap = "LABELMAP"
    }

    public var instance: ImageInstance
    public var kind: Kind
    /// (0062,000E) Maximum Fractional Value (FRACTIONAL only).
    public var maximumFractionalValue: Int
    public var segments: [SegmentDescription]
    /// (0008,1115) Referenced Series Sequence → (0020,000E), when present.
    public var referencedSeriesInstanceUID: String?

    /// Reads a SEG's header.
    /// - Throws: `.segmentation` when the file is not a SEG or its segment/frame description is inconsistent.
    public init(path: String, limits: ReadingLimits = .default) throws(DICOMError) {
        let file = try DICOMFile(path: path)
        try self.init(file: file, limits: limits)
    }

    public init(file: DICOMFile, limits: ReadingLimits = .default) throws(DICOMError) {
        let instance = try ImageInstance(file: file, limits: limits)
        guard instance.isSegmentation else {
            throw DICOMError(
                .segmentation,
                "not a DICOM SEG (SOP Class \(instance.sopClassUID)); pass the "
                    + "segmentation file, not an image", path: file.path)
        }
        let ds = file.dataset
        self.instance = instance
        switch ds.nonEmptyString(.segmentationType) {
        case "BINARY": kind = .binary
        case "FRACTIONAL": kind = .fractional
        case "LABELMAP": kind = .labelMap
        case let other:
            throw DICOMError(
                .segmentation,
                "(0062,0001) Segmentation Type is '\(other ?? "")'; BINARY, "
                    + "FRACTIONAL or LABELMAP expected", path: file.path)
        }
        guard instance.samplesPerPixel == 1 else {
            throw DICOMError(
                .segmentation,
                "SEG with (0028,0002) Samples per Pixel \(instance.samplesPerPixel); 1 "
                    + "expected", path: file.path)
        }
        maximumFractionalValue = (try? ds.integer(.maximumFractionalValue)) ?? 255
        var segments: [SegmentDescription] = []
        for item in ds.sequence(.segmentSequence) {
            guard let number = try? item.integer(.segmentNumber), number > 0, number < 256 else {
                throw DICOMError(
                    .segmentation,
                    "a (0062,0002) Segment Sequence item has no valid (0062,0004) "
                        + "Segment Number (1...255 supported)", path: file.path)
            }
            let type = item.firstItem(DICOMTag(0x0062, 0x000F)).flatMap { $0.nonEmptyString(DICOMTag(0x0008, 0x0104)) }
            segments.append(
                SegmentDescription(
                    number: number, label: item.nonEmptyString(.segmentLabel) ?? "Segment \(number)",
                    propertyType: type))
        }
        guard !segments.isEmpty else {
            throw DICOMError(.segmentation, "the SEG has no (0062,0002) Segment Sequence items", path: file.path)
        }
        self.segments = segments
        referencedSeriesInstanceUID = ds.firstItem(.referencedSeriesSequence)?.nonEmptyString(.seriesInstanceUID)
        let known = Set(segments.map(\.number))
        guard known.count == segments.count else {
            throw DICOMError(
                .segmentation,
                "the (0062,0002) Segment Sequence defines a (0062,0004) Segment Number "
                    + "twice", path: file.path)
        }
        for (i, frame) in instance.frames.enumerated() where kind != .labelMap {
            guard let n = frame.referencedSegmentNumber, known.contains(n) else {
                throw DICOMError(
                    .segmentation,
                    "frame \(i + 1) references segment "
                        + "\(frame.referencedSegmentNumber.map(String.init) ?? "none"), which the Segment "
                        + "Sequence does not define", path: file.path)
            }
        }
        if kind == .binary && instance.bitsAllocated != 1 {
            throw DICOMError(
                .segmentation,
                "BINARY SEG with (0028,0100) Bits Allocated \(instance.bitsAllocated); "
                    + "1 expected", path: file.path)
        }
        if kind == .fractional && instance.bitsAllocated != 8 {
            throw DICOMError(
                .segmentation,
                "FRACTIONAL SEG with (0028,0100) Bits Allocated "
                    + "\(instance.bitsAllocated); 8 expected", path: file.path)
        }
        if kind == .labelMap && instance.bitsAllocated != 8 && instance.bitsAllocated != 16 {
            throw DICOMError(
                .segmentation,
                "LABELMAP SEG with (0028,0100) Bits Allocated "
                    + "\(instance.bitsAllocated); 8 or 16 expected", path: file.path)
        }
    }

    /// Frame masks: `frames × rows × columns` bytes, 1/0 for BINARY (unpacked from 1-bit data, LSB first, frames
    /// not padded to byte boundaries, PS3.5 8.1.1), 0...max for FRACTIONAL, the segment number for LABELMAP.
    /// - Throws: `.truncatedPixelData` when the pixel data is shorter than the header declares; `.segmentation`
    ///   for a LABELMAP value above 255 (label volumes are uint8).
    public func frameMasks(file: DICOMFile) throws(DICOMError) -> [UInt8] {
        let path = instance.path
        // Bounded by ReadingLimits.maxVoxelsPerVolume when the header was read; checked again, never trapping.
        let total = try checkedProduct(
            [instance.rows, instance.columns, instance.numberOfFrames], limit: Int.max,
            "(0028,0010) Rows × (0028,0011) Columns × (0028,0008) Number of Frames",
            limitName: "maxVoxelsPerVolume", path: path)
        let kind = self.kind
        let bitsAllocated = instance.bitsAllocated
        return try file.withPixelData { (raw) throws(DICOMError) -> [UInt8] in
            switch kind {
            case .binary:
                guard raw.count * 8 >= total else {
                    throw DICOMError(
                        .truncatedPixelData,
                        "SEG pixel data holds \(raw.count * 8) bits for \(total) "
                            + "voxels; the file is truncated", path: path)
                }
                var out = [UInt8](repeating: 0, count: total)
                for i in 0..<total { out[i] = (raw[i >> 3] >> UInt8(i & 7)) & 1 }
                return out
            case .fractional:
                guard raw.count >= total else {
                    throw DICOMError(
                        .truncatedPixelData,
                        "SEG pixel data holds \(raw.count) bytes for \(total) "
                            + "voxels; the file is truncated", path: path)
                }
                return Array(raw.prefix(total))
            case .labelMap:
                let bytesPerVoxel = bitsAllocated / 8
                guard raw.count / bytesPerVoxel >= total else {
                    throw DICOMError(
                        .truncatedPixelData,
                        "LABELMAP pixel data holds \(raw.count) bytes for \(total) "
                            + "voxels of \(bitsAllocated) bits; the file is truncated", path: path)
                }
                if bytesPerVoxel == 1 { return Array(raw.prefix(total)) }
                var out = [UInt8](repeating: 0, count: total)
                for i in 0..<total {
                    let v = raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    guard v <= 255 else {
                        throw DICOMError(
                            .segmentation,
                            "LABELMAP value \(v) at voxel \(i): segment numbers above "
                                + "255 are not supported (label volumes are uint8)", path: path)
                    }
                    out[i] = UInt8(v)
                }
                return out
            }
        }
    }

    /// Maps every frame onto `stack` of `series` and returns a label map (`slices × rows × columns`, x fastest):
    /// 0 = background, the segment number otherwise. FRACTIONAL frames count where value ≥ half the maximum.
    /// Where segments overlap the higher segment number wins; `overlaps` counts such voxels.
    ///
    /// Frames are placed by (0008,1155) Referenced SOP Instance UID (Derivation Image Sequence) when it names a
    /// slice of the stack, else by (0020,0032) position projected on the stack's slice axis.
    /// - Throws: `.segmentation` when the SEG grid differs from the series or a frame lies outside it.
    public func labelMap(
        onto stack: SliceStack, of series: DICOMSeries, file: DICOMFile,
        limits: ReadingLimits = .default
    ) throws(DICOMError) -> (labels: [UInt8], overlaps: Int) {
        let path = instance.path
        guard !stack.slices.isEmpty else {
            throw DICOMError(.segmentation, "the referenced series has no slices", path: path)
        }
        guard instance.rows == stack.rows, instance.columns == stack.columns else {
            throw DICOMError(
                .segmentation,
                "SEG frames are \(instance.rows)×\(instance.columns) but the series is "
                    + "\(stack.rows)×\(stack.columns); a SEG on another grid is not supported",
                path: path)
        }
        var sliceBySOP: [String: Int] = [:]
        for (k, slice) in stack.slices.enumerated() where series.instances[slice.instance].numberOfFrames == 1 {
            sliceBySOP[series.instances[slice.instance].sopInstanceUID] = k
        }
        let origin = stack.slices[0].position
        let volumeVoxels = try checkedProduct(
            [stack.rows, stack.columns, stack.slices.count],
            limit: limits.maxVoxelsPerVolume, "label volume columns × rows × slices",
            limitName: "maxVoxelsPerVolume", path: path)
        let masks = try frameMasks(file: file)
        let plane = stack.rows * stack.columns
        var labels = [UInt8](repeating: 0, count: volumeVoxels)
        let known = Set(segments.map(\.number))
        var overlaps = 0
        let threshold = kind == .binary ? 1 : max(1, (maximumFractionalValue + 1) / 2)
        for (f, frame) in instance.frames.enumerated() {
            var slice: Int? = frame.referencedSOPInstanceUIDs.lazy.compactMap { sliceBySOP[$0] }.first
            if slice == nil {
                let offset = frame.position - origin
                let step = stack.sliceSpacing
                let along = offset.dot(stack.sliceDirection) / step
                // A frame at z = 1e300 (or a zero spacing) gives an along that is no Int: on no slice.
                let k = Int(checked: along.rounded()) ?? -1
                let inPlane = offset - Double(k) * step * stack.sliceDirection
                guard abs(along - Double(k)) < 0.1, k >= 0, k < stack.slices.count,
                    abs(inPlane.dot(stack.rowCosine)) < 0.1 * stack.pixelSpacing.column,
                    abs(inPlane.dot(stack.columnCosine)) < 0.1 * stack.pixelSpacing.row
                else {
                    throw DICOMError(
                        .segmentation,
                        "frame \(f + 1) at (\(frame.position.x), \(frame.position.y), "
                            + "\(frame.position.z)) lies on no slice of the referenced series; check that "
                            + "the SEG belongs to this series", path: path)
                }
                slice = k
            }
            guard let k = slice else { continue }
            let src = f * plane
            let dst = k * plane
            if kind == .labelMap {
                for i in 0..<plane where masks[src + i] != 0 {
                    let value = masks[src + i]
                    guard known.contains(Int(value)) else {
                        throw DICOMError(
                            .segmentation,
                            "frame \(f + 1) holds label \(value), which the (0062,0002) "
                                + "Segment Sequence does not define", path: path)
                    }
                    let old = labels[dst + i]
                    if old != 0 && old != value { overlaps += 1 }
                    if value > old { labels[dst + i] = value }
                }
                continue
            }
            guard let segment = frame.referencedSegmentNumber, let value = UInt8(exactly: segment) else { continue }
            for i in 0..<plane where Int(masks[src + i]) >= threshold {
                let old = labels[dst + i]
                if old != 0 && old != value { overlaps += 1 }
                if value > old { labels[dst + i] = value }
            }
        }
        return (labels, overlaps)
    }
}
