/// One segment of a DICOM SEG, from (0062,0002) Segment Sequence (PS3.3 C.8.20.2).
public struct SegmentDescription: Sendable, Equatable {
    /// (0062,0004) Segment Number, 1-based; the label value in label volumes.
    public var number: Int
    /// (0062,0005) Segment Label.
    public var label: String
    /// Code meaning of the Segmented Property Type, e.g. "Liver".
    public var propertyType: String?
}

/// A DICOM Segmentation instance (SOP Class 1.2.840.10008.5.1.4.1.1.66.4): segments and frames, each frame tied
/// to a segment and to a source image (by referenced SOP instance or by plane position).
public struct Segmentation: Sendable {
    public enum Kind: String, Sendable { case binary = "BINARY", fractional = "FRACTIONAL" }

    public var instance: ImageInstance
    public var kind: Kind
    /// (0062,000E) Maximum Fractional Value (FRACTIONAL only).
    public var maximumFractionalValue: Int
    public var segments: [SegmentDescription]
    /// (0008,1115) Referenced Series Sequence → (0020,000E), when present.
    public var referencedSeriesInstanceUID: String?

    /// Reads a SEG's header.
    /// - Throws: `.segmentation` when the file is not a SEG or its segment/frame description is inconsistent.
    public init(path: String) throws(DICOMError) {
        let file = try DICOMFile(path: path)
        try self.init(file: file)
    }

    public init(file: DICOMFile) throws(DICOMError) {
        let instance = try ImageInstance(file: file)
        guard instance.isSegmentation else {
            throw DICOMError(.segmentation, "not a DICOM SEG (SOP Class \(instance.sopClassUID)); pass the "
                                 + "segmentation file, not an image", path: file.path)
        }
        let ds = file.dataset
        self.instance = instance
        switch ds.nonEmptyString(.segmentationType) {
        case "BINARY": kind = .binary
        case "FRACTIONAL": kind = .fractional
        case let other:
            throw DICOMError(.segmentation, "(0062,0001) Segmentation Type is '\(other ?? "")'; BINARY or "
                                 + "FRACTIONAL expected", path: file.path)
        }
        maximumFractionalValue = (try? ds.integer(.maximumFractionalValue)) ?? 255
        var segments: [SegmentDescription] = []
        for item in ds.sequence(.segmentSequence) {
            guard let number = try? item.integer(.segmentNumber), number > 0, number < 256 else {
                throw DICOMError(.segmentation, "a (0062,0002) Segment Sequence item has no valid (0062,0004) "
                                     + "Segment Number (1...255 supported)", path: file.path)
            }
            let type = item.firstItem(DICOMTag(0x0062, 0x000F)).flatMap { $0.nonEmptyString(DICOMTag(0x0008, 0x0104)) }
            segments.append(SegmentDescription(number: number, label: item.nonEmptyString(.segmentLabel) ?? "Segment \(number)",
                                               propertyType: type))
        }
        guard !segments.isEmpty else {
            throw DICOMError(.segmentation, "the SEG has no (0062,0002) Segment Sequence items", path: file.path)
        }
        self.segments = segments
        referencedSeriesInstanceUID = ds.firstItem(.referencedSeriesSequence)?.nonEmptyString(.seriesInstanceUID)
        let known = Set(segments.map(\.number))
        for (i, frame) in instance.frames.enumerated() {
            guard let n = frame.referencedSegmentNumber, known.contains(n) else {
                throw DICOMError(.segmentation, "frame \(i + 1) references segment "
                                     + "\(frame.referencedSegmentNumber.map(String.init) ?? "none"), which the Segment "
                                     + "Sequence does not define", path: file.path)
            }
        }
        if kind == .binary && instance.bitsAllocated != 1 {
            throw DICOMError(.segmentation, "BINARY SEG with (0028,0100) Bits Allocated \(instance.bitsAllocated); "
                                 + "1 expected", path: file.path)
        }
        if kind == .fractional && instance.bitsAllocated != 8 {
            throw DICOMError(.segmentation, "FRACTIONAL SEG with (0028,0100) Bits Allocated "
                                 + "\(instance.bitsAllocated); 8 expected", path: file.path)
        }
    }

    /// Frame masks: `frames × rows × columns` bytes, 1/0 for BINARY (unpacked from 1-bit data, LSB first, frames
    /// not padded to byte boundaries, PS3.5 8.1.1), 0...max for FRACTIONAL.
    public func frameMasks(file: DICOMFile) throws(DICOMError) -> [UInt8] {
        let plane = instance.rows * instance.columns
        let total = plane * instance.numberOfFrames
        let kind = self.kind
        let path = instance.path
        return try file.withPixelData { (raw) throws(DICOMError) -> [UInt8] in
            switch kind {
            case .binary:
                guard raw.count * 8 >= total else {
                    throw DICOMError(.truncatedPixelData, "SEG pixel data holds \(raw.count * 8) bits for \(total) "
                                         + "voxels; the file is truncated", path: path)
                }
                var out = [UInt8](repeating: 0, count: total)
                for i in 0..<total { out[i] = (raw[i >> 3] >> UInt8(i & 7)) & 1 }
                return out
            case .fractional:
                guard raw.count >= total else {
                    throw DICOMError(.truncatedPixelData, "SEG pixel data holds \(raw.count) bytes for \(total) "
                                         + "voxels; the file is truncated", path: path)
                }
                return Array(raw.prefix(total))
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
    public func labelMap(onto stack: SliceStack, of series: DICOMSeries, file: DICOMFile) throws(DICOMError)
        -> (labels: [UInt8], overlaps: Int)
    {
        let path = instance.path
        guard instance.rows == stack.rows, instance.columns == stack.columns else {
            throw DICOMError(.segmentation, "SEG frames are \(instance.rows)×\(instance.columns) but the series is "
                                 + "\(stack.rows)×\(stack.columns); a SEG on another grid is not supported",
                             path: path)
        }
        var sliceBySOP: [String: Int] = [:]
        for (k, slice) in stack.slices.enumerated() where series.instances[slice.instance].numberOfFrames == 1 {
            sliceBySOP[series.instances[slice.instance].sopInstanceUID] = k
        }
        let origin = stack.slices[0].position
        let masks = try frameMasks(file: file)
        let plane = stack.rows * stack.columns
        var labels = [UInt8](repeating: 0, count: plane * stack.slices.count)
        var overlaps = 0
        let threshold = kind == .binary ? 1 : max(1, (maximumFractionalValue + 1) / 2)
        for (f, frame) in instance.frames.enumerated() {
            var slice: Int? = frame.referencedSOPInstanceUIDs.lazy.compactMap { sliceBySOP[$0] }.first
            if slice == nil {
                let offset = frame.position - origin
                let step = stack.sliceSpacing
                let along = offset.dot(stack.sliceDirection) / step
                let k = Int(along.rounded())
                let inPlane = offset - Double(k) * step * stack.sliceDirection
                guard abs(along - Double(k)) < 0.1, k >= 0, k < stack.slices.count,
                      abs(inPlane.dot(stack.rowCosine)) < 0.1 * stack.pixelSpacing.column,
                      abs(inPlane.dot(stack.columnCosine)) < 0.1 * stack.pixelSpacing.row
                else {
                    throw DICOMError(.segmentation, "frame \(f + 1) at (\(frame.position.x), \(frame.position.y), "
                                         + "\(frame.position.z)) lies on no slice of the referenced series; check that "
                                         + "the SEG belongs to this series", path: path)
                }
                slice = k
            }
            guard let k = slice, let segment = frame.referencedSegmentNumber else { continue }
            let value = UInt8(segment)
            let src = f * plane, dst = k * plane
            for i in 0..<plane where Int(masks[src + i]) >= threshold {
                let old = labels[dst + i]
                if old != 0 && old != value { overlaps += 1 }
                if value > old { labels[dst + i] = value }
            }
        }
        return (labels, overlaps)
    }
}
