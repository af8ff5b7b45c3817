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

    public var transferSyntaxes: [TransferSyntax] {
        var seen: [TransferSyntax] = []
        for i in instances where !seen.contains(i.transferSyntax) { seen.append(i.transferSyntax) }
        return seen
    }

    public var sliceCount: Int { stacks.first?.slices.count ?? 0 }

    /// The stack to load: the largest one.
    public func primaryStack() throws(DICOMError) -> SliceStack {
        guard let stack = stacks.first else {
            throw DICOMError(.geometry, "series \(seriesInstanceUID) has no image slices")
        }
        return stack
    }
}
