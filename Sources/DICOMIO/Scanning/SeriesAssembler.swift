import Foundation

/// Groups instances into series and stacks and checks their geometry.
///
/// Grouping: by (0020,000E) Series Instance UID, then within a series by orientation and size. Sorting: by
/// position along the normal (row cosine × column cosine). Checks: duplicate positions, missing slices (a gap that
/// is a multiple of the usual spacing), non-uniform spacing, gantry tilt (slices displaced off the normal).
///
/// A series whose slices disagree in orientation (a localizer with its scout planes, radial MR slices) is not one
/// volume: by default it is refused with its stacks listed, and `stackChoice` picks one explicitly.
public struct SeriesAssembler: Sendable {
    /// Which stack of a series becomes its volume.
    public enum StackChoice: Sendable, Equatable {
        /// Refuse a series whose slices disagree in (0020,0037) orientation (a blocking `.mixedOrientations`
        /// problem listing the stacks); stacks of one orientation but different sizes: the largest. The default.
        case refuseMixedOrientations
        /// The stack with the most slices, whatever the orientations.
        case largest
        /// The stack at this index of `DICOMSeries.stacks` (largest first, as the refusal lists them). A series
        /// with one stack always uses it.
        case index(Int)
    }

    /// Relative tolerance on slice spacing before it counts as non-uniform.
    public var spacingTolerance: Double = 0.02
    /// Angle between the slice displacement and the normal (degrees) above which a stack is reported as tilted.
    public var tiltToleranceDegrees: Double = 0.5
    /// Which stack of a series with several is used.
    public var stackChoice: StackChoice = .refuseMixedOrientations
    /// Bounds on slices per series and voxels per volume.
    public var limits: ReadingLimits = .default

    public init(stackChoice: StackChoice = .refuseMixedOrientations, limits: ReadingLimits = .default) {
        self.stackChoice = stackChoice
        self.limits = limits
    }

    /// Image series (everything but SEG and non-image objects) sorted by series number then UID.
    public func assemble(_ instances: [ImageInstance]) -> [DICOMSeries] {
        var groups: [String: [ImageInstance]] = [:]
        var order: [String] = []
        for instance in instances
        where !instance.isSegmentation && !instance.isDICOMDIR
            && SOPClass.nonImageKind(instance.sopClassUID) == nil
        {
            if groups[instance.seriesInstanceUID] == nil { order.append(instance.seriesInstanceUID) }
            groups[instance.seriesInstanceUID, default: []].append(instance)
        }
        let series = order.map { uid in makeSeries(groups[uid] ?? []) }
        // Patient, then study date, then series number: the order a PACS shows.
        func key(_ s: DICOMSeries) -> (String, String, Int, String) {
            let tags = s.instances.first?.tags ?? [:]
            return (tags["PatientID"] ?? "", tags["StudyDate"] ?? "", s.seriesNumber ?? Int.max, s.seriesInstanceUID)
        }
        return series.sorted { key($0) < key($1) }
    }

    func makeSeries(_ members: [ImageInstance]) -> DICOMSeries {
        let instances = members.sorted { ($0.instanceNumber ?? 0, $0.path) < ($1.instanceNumber ?? 0, $1.path) }
        let first = instances[0]
        // Group frames by orientation (rounded) and size.
        struct Key: Hashable {
            var rows: Int
            var columns: Int
            var orientation: [Int]
        }
        var buckets: [Key: [SliceReference]] = [:]
        var keyOrder: [Key] = []
        var problems: [SeriesProblem] = []
        for (i, instance) in instances.enumerated() {
            if instance.samplesPerPixel != 1 || !instance.photometricInterpretation.hasPrefix("MONOCHROME") {
                if !problems.contains(where: { $0.kind == .colour }) {
                    problems.append(
                        SeriesProblem(
                            kind: .colour,
                            message:
                                "colour images (\(instance.photometricInterpretation)): not read as a CT/MR volume",
                            isBlocking: true))
                }
            }
            for (f, frame) in instance.frames.enumerated() {
                let o = [
                    frame.rowCosine.x, frame.rowCosine.y, frame.rowCosine.z,
                    frame.columnCosine.x, frame.columnCosine.y, frame.columnCosine.z,
                ]
                .map { Int(checked: ($0 * 1000).rounded()) ?? Int.min }
                let key = Key(rows: instance.rows, columns: instance.columns, orientation: o)
                if buckets[key] == nil { keyOrder.append(key) }
                let normal = frame.normal
                buckets[key, default: []].append(
                    SliceReference(
                        instance: i, frame: f, position: frame.position, distance: frame.position.dot(normal)))
            }
        }
        var stacks: [SliceStack] = keyOrder.compactMap { key in
            guard let refs = buckets[key], let firstRef = refs.first else { return nil }
            let frame = instances[firstRef.instance].frames[firstRef.frame]
            return makeStack(
                refs.sorted { $0.distance < $1.distance }, instances: instances, frame: frame,
                rows: key.rows, columns: key.columns)
        }
        stacks.sort { $0.slices.count > $1.slices.count }
        let sliceTotal = stacks.reduce(0) { $0 + $1.slices.count }
        if sliceTotal > limits.maxSlicesPerSeries {
            problems.append(
                SeriesProblem(
                    kind: .tooLarge,
                    message: "\(sliceTotal) slices, more than the limit of \(limits.maxSlicesPerSeries) "
                        + "(ReadingLimits.maxSlicesPerSeries); split the series or raise the limit",
                    isBlocking: true))
        }
        var selected: Int? = stacks.isEmpty ? nil : 0
        if stacks.count > 1 {
            let orientations = Set(
                stacks.map {
                    [
                        $0.rowCosine.x, $0.rowCosine.y, $0.rowCosine.z, $0.columnCosine.x,
                        $0.columnCosine.y, $0.columnCosine.z,
                    ]
                    .map { Int(checked: ($0 * 1000).rounded()) ?? Int.min }
                })
            let listing = stacks.enumerated().map { i, s in "stack \(i): \(s.summary)" }.joined(separator: "; ")
            switch stackChoice {
            case .refuseMixedOrientations where orientations.count > 1:
                selected = nil
                problems.append(
                    SeriesProblem(
                        kind: .mixedOrientations,
                        message: "slices of \(orientations.count) orientations, not one volume (\(listing)); refused: "
                            + "pick a stack with SeriesAssembler.stackChoice = .index(k) (`--stack k`)",
                        isBlocking: true))
            case .refuseMixedOrientations, .largest:
                problems.append(
                    SeriesProblem(
                        kind: orientations.count > 1 ? .mixedOrientations : .mixedSizes,
                        message: "\(stacks.count) stacks of different orientation or size (\(listing)); stack 0, the "
                            + "largest, is used",
                        isBlocking: false))
            case .index(let k):
                if stacks.indices.contains(k) {
                    selected = k
                    problems.append(
                        SeriesProblem(
                            kind: orientations.count > 1 ? .mixedOrientations : .mixedSizes,
                            message: "\(stacks.count) stacks of different orientation or size (\(listing)); stack \(k) "
                                + "is used, as chosen",
                            isBlocking: false))
                } else {
                    selected = nil
                    problems.append(
                        SeriesProblem(
                            kind: orientations.count > 1 ? .mixedOrientations : .mixedSizes,
                            message: "stack \(k) was chosen but the series has \(stacks.count) (\(listing))",
                            isBlocking: true))
                }
            }
        }
        let formats = Set(instances.map { "\($0.bitsAllocated)/\($0.bitsStored)/\($0.pixelRepresentation)" })
        if formats.count > 1 {
            problems.append(
                SeriesProblem(
                    kind: .inconsistentPixelFormat,
                    message:
                        "instances differ in bits allocated/stored/sign (\(formats.sorted().joined(separator: ", "))); each is decoded by its own header",
                    isBlocking: false))
        }
        for stack in stacks { problems.append(contentsOf: stack.problems) }
        return DICOMSeries(
            seriesInstanceUID: first.seriesInstanceUID, studyInstanceUID: first.studyInstanceUID,
            frameOfReferenceUID: first.frameOfReferenceUID, modality: first.modality,
            seriesDescription: first.seriesDescription, seriesNumber: first.seriesNumber,
            instances: instances, stacks: stacks, problems: problems, selectedStack: selected)
    }

    func makeStack(
        _ slices: [SliceReference], instances: [ImageInstance], frame: FrameInfo, rows: Int,
        columns: Int
    ) -> SliceStack {
        var problems: [SeriesProblem] = []
        let normal = frame.normal
        var spacing = frame.sliceThickness.flatMap { $0 > 0 && $0.isFinite ? $0 : nil } ?? 1
        var direction = normal
        if slices.count > 1 {
            let gaps = zip(slices.dropFirst(), slices).map { $0.distance - $1.distance }
            let duplicates = gaps.filter { $0 < 1e-3 }.count
            if duplicates > 0 {
                problems.append(
                    SeriesProblem(
                        kind: .duplicatePositions,
                        message: "\(duplicates) slice(s) share a position with another slice (repeated acquisition or "
                            + "several series under one UID); remove the duplicates or split the series",
                        isBlocking: true))
            }
            let positive = gaps.filter { $0 >= 1e-3 }.sorted()
            let median = positive.isEmpty ? 0 : positive[positive.count / 2]
            if median > 0 {
                var missing = 0
                var irregular: [Double] = []
                for gap in positive where abs(gap - median) > spacingTolerance * median + 1e-3 {
                    let ratio = gap / median
                    // A gap of millions of slices (a corrupt position) is not "missing slices" but irregular.
                    if ratio > 1.5, abs(ratio - ratio.rounded()) < 0.1, let whole = Int(checked: ratio.rounded()),
                        whole <= limits.maxSlicesPerSeries
                    {
                        missing += whole - 1
                    } else {
                        irregular.append(gap)
                    }
                }
                if missing > 0 {
                    problems.append(
                        SeriesProblem(
                            kind: .missingSlices,
                            message: "\(missing) slice(s) missing (gaps of a multiple of the \(format(median)) mm "
                                + "spacing); re-export the complete series",
                            isBlocking: true))
                }
                if !irregular.isEmpty {
                    problems.append(
                        SeriesProblem(
                            kind: .nonUniformSpacing,
                            message: "slice spacing varies from \(format(positive.first ?? 0)) to "
                                + "\(format(positive.last ?? 0)) mm (usual \(format(median)) mm); resample the series "
                                + "to uniform spacing before use",
                            isBlocking: true))
                }
            }
            let span = slices[slices.count - 1].position - slices[0].position
            let along = span.dot(normal)
            if along > 0 {
                spacing = along / Double(slices.count - 1)
                direction = span.normalized
                let cosAngle = min(1, abs(direction.dot(normal)))
                let angle = acos(cosAngle) * 180 / .pi
                if angle > tiltToleranceDegrees {
                    problems.append(
                        SeriesProblem(
                            kind: .gantryTilt,
                            message: "slices are displaced \(format(angle))° off the slice normal (gantry tilt): the "
                                + "volume is sheared; its slice axis follows the displacement (NIfTI sform keeps it, "
                                + "qform cannot)",
                            isBlocking: false))
                    spacing = span.length / Double(slices.count - 1)
                } else {
                    direction = normal
                }
            }
        }
        if !(spacing.isFinite && spacing > 0) || !direction.x.isFinite || !direction.y.isFinite
            || !direction.z.isFinite
        {
            problems.append(
                SeriesProblem(
                    kind: .invalidGeometry,
                    message: "slice spacing \(spacing) mm computed from (0020,0032) positions is not usable",
                    isBlocking: true))
        }
        let voxels = rows.multipliedReportingOverflow(by: columns)
        let total = voxels.partialValue.multipliedReportingOverflow(by: slices.count)
        if voxels.overflow || total.overflow || total.partialValue > limits.maxVoxelsPerVolume {
            problems.append(
                SeriesProblem(
                    kind: .tooLarge,
                    message: "\(columns) × \(rows) × \(slices.count) voxels exceed the limit of "
                        + "\(limits.maxVoxelsPerVolume) (ReadingLimits.maxVoxelsPerVolume)",
                    isBlocking: true))
        }
        return SliceStack(
            rows: rows, columns: columns, rowCosine: frame.rowCosine, columnCosine: frame.columnCosine,
            pixelSpacing: frame.pixelSpacing, slices: slices, sliceSpacing: spacing,
            sliceDirection: direction, problems: problems)
    }

}

func format(_ v: Double) -> String {
    String(format: "%.3g", v)
}
