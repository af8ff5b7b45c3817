import DICOMIO
import Dispatch
import Foundation
import Synchronization

extension VolumeGeometry {
    /// The geometry of a slice stack: origin at the first slice's (0020,0032), x/y from (0020,0037), z along the
    /// slice displacement, spacing x/y from (0028,0030) and z from slice positions.
    public init(stack: SliceStack) {
        self.init(
            dimensions: SIMD3(stack.columns, stack.rows, stack.slices.count),
            origin: stack.slices[0].position,
            spacing: Vector3(stack.pixelSpacing.column, stack.pixelSpacing.row, stack.sliceSpacing),
            direction: (stack.rowCosine, stack.columnCosine, stack.sliceDirection))
    }
}

private struct SendableBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
}

extension Volume where Voxel == Float {
    /// Decodes a stack of a series into a float32 volume of real-world values (HU for CT), decoding files on
    /// `threads` threads.
    ///
    /// - Parameters:
    ///   - series: the series, as assembled by `SeriesAssembler`.
    ///   - stack: which stack; the one the assembler selected by default (refused for mixed orientations).
    ///   - limits: `maxVoxelsPerVolume` is checked before the volume is allocated.
    /// - Throws: `DICOMError` `.geometry` for a stack with blocking problems (missing slices, non-uniform spacing,
    ///   duplicates, mixed orientations), `.invalidAttribute` above `limits`, codec and truncation errors naming the
    ///   file.
    public init(
        series: DICOMSeries, stack: SliceStack? = nil, limits: ReadingLimits = .default,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws(DICOMError) {
        let stack = try series.volumeStack(stack)
        guard !stack.slices.isEmpty else {
            throw DICOMError(.geometry, "series \(series.seriesInstanceUID) has no image slices")
        }
        let voxelCount = try limits.checkedVoxelCount(
            columns: stack.columns, rows: stack.rows,
            slices: stack.slices.count,
            path: series.instances.first?.path)
        let geometry = VolumeGeometry(stack: stack)
        let plane = stack.rows * stack.columns
        // Which slots each instance's frames go to.
        var slotsByInstance: [Int: [(frame: Int, slot: Int)]] = [:]
        for (k, slice) in stack.slices.enumerated() {
            slotsByInstance[slice.instance, default: []].append((slice.frame, k))
        }
        let slotMap = slotsByInstance
        let work = slotMap.keys.sorted()
        let failure = Mutex<DICOMError?>(nil)
        let next = Atomic<Int>(0)
        let instances = series.instances
        // Every slot is written by exactly one frame, so the buffer need not be zero-filled first (that alone cost
        // a third of the load time of a 512×512×256 series: one more pass over 256 MiB).
        let voxels = [Float](unsafeUninitializedCapacity: voxelCount) { all, initialized in
            let buffer = SendableBuffer(base: all.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, work.count))) { _ in
                var scratch: [Float] = []
                while true {
                    let w = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if w >= work.count || failure.withLock({ $0 != nil }) { break }
                    let slots = slotMap[work[w]] ?? []
                    do throws(DICOMError) {
                        guard instances.indices.contains(work[w]) else {
                            throw DICOMError(.geometry, "a slice names instance \(work[w]), which the series lacks")
                        }
                        let instance = instances[work[w]]
                        guard instance.rows == stack.rows, instance.columns == stack.columns,
                            slots.allSatisfy({
                                $0.frame >= 0 && $0.frame < instance.numberOfFrames
                                    && $0.slot >= 0 && $0.slot < stack.slices.count
                            })
                        else {
                            throw DICOMError(
                                .geometry,
                                "the instance is \(instance.rows)×\(instance.columns) with "
                                    + "\(instance.numberOfFrames) frame(s), which does not fit the "
                                    + "\(stack.rows)×\(stack.columns) stack", path: instance.path)
                        }
                        let file = try DICOMFile(path: instance.path)
                        if instance.numberOfFrames == 1, let only = slots.first {
                            let out = UnsafeMutableBufferPointer(start: buffer.base + only.slot * plane, count: plane)
                            try instance.decodeFrames(from: file, into: out)
                        } else {
                            scratch = [Float](repeating: 0, count: plane * instance.numberOfFrames)
                            try scratch.withUnsafeMutableBufferPointer { (s) throws(DICOMError) in
                                try instance.decodeFrames(from: file, into: s)
                            }
                            for (frame, slot) in slots {
                                scratch.withUnsafeBufferPointer { s in
                                    (buffer.base + slot * plane).update(
                                        from: s.baseAddress! + frame * plane, count: plane)
                                }
                            }
                        }
                    } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                }
            }
            initialized = voxelCount
        }
        if let error = failure.withLock({ $0 }) { throw error }
        self.init(geometry: geometry, voxels: voxels)
    }
}

extension Volume where Voxel == UInt8 {
    /// The label volume of a DICOM SEG on the grid of the series it references (0 = background, the segment
    /// number otherwise).
    /// - Returns: the volume, the segments, and how many voxels belonged to more than one segment.
    public static func labels(
        segmentation path: String, series: DICOMSeries, stack: SliceStack? = nil,
        limits: ReadingLimits = .default
    ) throws(DICOMError)
        -> (volume: Volume<UInt8>, segments: [SegmentDescription], overlaps: Int)
    {
        let stack = try { () throws(DICOMError) -> SliceStack in
            if let stack { return stack }
            return try series.primaryStack()
        }()
        let file = try DICOMFile(path: path, maxReadLength: 0)
        let segmentation = try Segmentation(file: file, limits: limits)
        if let ref = segmentation.referencedSeriesInstanceUID, ref != series.seriesInstanceUID {
            throw DICOMError(
                .segmentation,
                "the SEG references series \(ref), not \(series.seriesInstanceUID); "
                    + "pick the series it was drawn on with --series \(ref)", path: path)
        }
        let (labels, overlaps) = try segmentation.labelMap(onto: stack, of: series, file: file, limits: limits)
        return (Volume(geometry: VolumeGeometry(stack: stack), voxels: labels), segmentation.segments, overlaps)
    }
}

extension DICOMSeries {
    /// `given` when there is one, else the series' primary stack; refused when it has a blocking problem.
    /// - Throws: `DICOMError` `.geometry` naming the series and the problem.
    func volumeStack(_ given: SliceStack?) throws(DICOMError) -> SliceStack {
        let stack: SliceStack
        if let given { stack = given } else { stack = try primaryStack() }
        if let blocking = stack.problems.first(where: \.isBlocking) {
            throw DICOMError(.geometry, "series \(seriesInstanceUID) cannot be read as a volume: \(blocking)")
        }
        return stack
    }
}
