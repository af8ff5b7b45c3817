import Foundation

/// Something wrong or unusual in a series, found by the assembler.
public struct SeriesProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case missingSlices = "missing-slices"
        case nonUniformSpacing = "non-uniform-spacing"
        case duplicatePositions = "duplicate-positions"
        case gantryTilt = "gantry-tilt"
        case mixedOrientations = "mixed-orientations"
        case mixedSizes = "mixed-sizes"
        case colour = "colour"
        case inconsistentPixelFormat = "inconsistent-pixel-format"
        /// More slices or voxels than `ReadingLimits` allows.
        case tooLarge = "too-large"
        /// Slice spacing or direction from the positions is not finite or zero.
        case invalidGeometry = "invalid-geometry"
    }

    public var kind: Kind
    public var message: String
    /// True when the stack cannot be turned into a correct volume.
    public var isBlocking: Bool

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// One slice of a stack: a frame of an instance, placed along the slice normal.
public struct SliceReference: Sendable {
    /// Index into `DICOMSeries.instances`.
    public var instance: Int
    /// Frame index within that instance (0 for single-frame images).
    public var frame: Int
    /// (0020,0032) position of the frame, LPS mm.
    public var position: Vector3
    /// Position projected on the slice normal, mm.
    public var distance: Double
}

/// Frames of one series that share orientation and size, sorted by ascending position along the slice normal
/// (row cosine × column cosine). This is what becomes a `Volume`.
public struct SliceStack: Sendable {
    public var rows: Int
    public var columns: Int
    public var rowCosine: Vector3
    public var columnCosine: Vector3
    /// (0028,0030): spacing between rows (y) and between columns (x), mm.
    public var pixelSpacing: (row: Double, column: Double)
    public var slices: [SliceReference]
    /// Mean distance between consecutive slices along their displacement, mm (from positions, not
    /// (0018,0050) Slice Thickness). For one slice: the slice thickness, or 1.
    public var sliceSpacing: Double
    /// Unit vector from one slice origin to the next; equals the normal unless the stack is sheared (gantry tilt).
    public var sliceDirection: Vector3
    public var problems: [SeriesProblem]

    public var normal: Vector3 { rowCosine.cross(columnCosine).normalized }
    public var isUsable: Bool { !problems.contains { $0.isBlocking } }

    /// "40 slices 512×512, axial (normal 0, 0, 1)": how a refusal lists the stacks of a series.
    public var summary: String {
        let n = normal
        // Rounded to the printed precision, + 0 turning -0 into 0: no "-0.00".
        func tidy(_ v: Double) -> Double { (v * 100).rounded() / 100 + 0 }
        let largest = max(abs(n.x), abs(n.y), abs(n.z))
        let plane =
            largest < 0.9
            ? "oblique"
            : abs(n.z) == largest
                ? "axial"
                : abs(n.y) == largest
                    ? "coronal"
                    : "sagittal"
        return "\(slices.count) slice(s) \(columns)×\(rows), \(plane) (normal "
            + String(format: "%.2f, %.2f, %.2f", tidy(n.x), tidy(n.y), tidy(n.z)) + ")"
    }
}

/// All instances of one (0020,000E) Series Instance UID, split into stacks.
public struct DICOMSeries: Sendable {
    public var seriesInstanceUID: String
    public var studyInstanceUID: String
    public var frameOfReferenceUID: String?
    public var modality: String
    public var seriesDescription: String
    public var seriesNumber: Int?
    public var instances: [ImageInstance]
    /// Largest stack first.
    public var stacks: [SliceStack]
    /// Series-level problems (mixed orientations / sizes) plus those of every stack.
    public var problems: [SeriesProblem]
    /// Index into `stacks` of the stack `primaryStack()` returns; nil when the series was refused (mixed
    /// orientations without an explicit `SeriesAssembler.StackChoice`).
    public var selectedStack: Int?

    public init(
        seriesInstanceUID: String, studyInstanceUID: String, frameOfReferenceUID: String?, modality: String,
        seriesDescription: String, seriesNumber: Int?, instances: [ImageInstance], stacks: [SliceStack],
        problems: [SeriesProblem], selectedStack: Int? = 0
    ) {
        self.seriesInstanceUID = seriesInstanceUID
        self.studyInstanceUID = studyInstanceUID
        self.frameOfReferenceUID = frameOfReferenceUID
        self.modality = modality
        self.seriesDescription = seriesDescription
        self.seriesNumber = seriesNumber
        self.instances = instances
        self.stacks = stacks
        self.problems = problems
        self.selectedStack = stacks.isEmpty ? nil : selectedStack
    }

    public var transferSyntaxes: [TransferSyntax] {
        var seen: [TransferSyntax] = []
        for i in instances where !seen.contains(i.transferSyntax) { seen.append(i.transferSyntax) }
        return seen
    }

    public var sliceCount: Int { stacks.first?.slices.count ?? 0 }

    /// The stack to load: the one the assembler selected (the largest unless chosen otherwise).
    /// - Throws: `.geometry` for a series without slices, or one refused for mixed orientations (listing its stacks
    ///   and how to choose one).
    public func primaryStack() throws(DICOMError) -> SliceStack {
        guard !stacks.isEmpty else {
            throw DICOMError(.geometry, "series \(seriesInstanceUID) has no image slices")
        }
        guard let index = selectedStack, stacks.indices.contains(index) else {
            let reason =
                problems.first { $0.kind == .mixedOrientations && $0.isBlocking }?.message
                ?? "no stack was selected"
            throw DICOMError(.geometry, "series \(seriesInstanceUID) cannot be read as one volume: \(reason)")
        }
        return stacks[index]
    }

    /// The stack at `index` of `stacks` (largest first).
    /// - Throws: `.seriesSelection` when there is no such stack, listing those there are.
    public func stack(at index: Int) throws(DICOMError) -> SliceStack {
        guard stacks.indices.contains(index) else {
            let listing = stacks.enumerated().map { i, s in "stack \(i): \(s.summary)" }.joined(separator: "; ")
            throw DICOMError(.seriesSelection, "series \(seriesInstanceUID) has no stack \(index) (\(listing))")
        }
        return stacks[index]
    }
}
