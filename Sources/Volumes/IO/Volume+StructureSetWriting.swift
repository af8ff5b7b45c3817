import DICOMIO

/// One label to write as an ROI: its voxels become the ROI `name` with ROI Number `label`.
public struct StructureSetROIChoice: Sendable, Equatable {
    public var label: Int
    public var name: String

    public init(label: Int, name: String) {
        self.label = label
        self.name = name
    }
}

extension Volume where Voxel == UInt8 {
    /// Writes these labels as an RT Structure Set drawn on `series`: every chosen label's voxels on every slice
    /// traced into closed planar contours (`ContourTracer`: marching squares at voxel centres, holes and separate
    /// components as contours of their own), placed on the series' own slice planes through its geometry and
    /// referenced to each slice's image.
    ///
    /// Reading the file back (`StructureSet`, `Volume.labels(structureSet:series:)`) gives these labels exactly
    /// (see `ContourTracer`), except where two chosen labels overlap (impossible in one label volume).
    ///
    /// - Parameters:
    ///   - rois: the labels to write, each an ROI numbered by its label (1…255). Labels not listed are left out.
    ///   - writer: the structure set's label, series, UIDs and date (nil UIDs: new ones).
    /// - Returns: the contours written per ROI, in `rois` order.
    /// - Throws: `.invalidArgument` when the volume is not on the grid of `series` (other dimensions), a label is
    ///   outside 1…255, repeated, or a series image is multi-frame or has no frame of reference; the writer's
    ///   errors.
    @discardableResult
    public func writeStructureSet(
        to path: String, series: DICOMSeries, stack: SliceStack? = nil, rois: [StructureSetROIChoice],
        writer: StructureSetWriter = StructureSetWriter()
    ) throws(DICOMError) -> [Int] {
        let stack = try series.volumeStack(stack)
        let grid = VolumeGeometry(stack: stack)
        func fail(_ why: String) -> DICOMError {
            DICOMError(.invalidArgument, "cannot write the RT Structure Set: " + why, path: path)
        }
        guard grid.dimensions == geometry.dimensions else {
            throw fail(
                "the labels have \(geometry.dimensions) voxels, the series \(series.seriesInstanceUID) "
                    + "\(grid.dimensions): write the labels on the series' own grid")
        }
        guard let frame = series.frameOfReferenceUID else {
            throw fail("series \(series.seriesInstanceUID) has no (0020,0052) Frame of Reference UID")
        }
        guard series.instances.allSatisfy({ $0.numberOfFrames == 1 }) else {
            throw fail("the series is multi-frame; contours can reference single-frame images only")
        }
        guard Set(rois.map(\.label)).count == rois.count, rois.allSatisfy({ (1...255).contains($0.label) }) else {
            throw fail("ROI labels must be distinct values in 1…255, got \(rois.map(\.label))")
        }
        let images = stack.slices.map { slice in
            (
                sopClassUID: series.instances[slice.instance].sopClassUID,
                sopInstanceUID: series.instances[slice.instance].sopInstanceUID
            )
        }
        let columns = geometry.dimensions.x
        let rows = geometry.dimensions.y
        let plane = columns * rows
        var written: [StructureSetWriter.ROI] = []
        for (n, choice) in rois.enumerated() {
            let value = UInt8(truncatingIfNeeded: choice.label)
            var contours: [StructureSetWriter.Contour] = []
            for k in 0..<geometry.dimensions.z {
                let base = k * plane
                let polygons = ContourTracer.contours(columns: columns, rows: rows) { i, j in
                    voxels[base + j * columns + i] == value
                }
                for polygon in polygons {
                    contours.append(
                        StructureSetWriter.Contour(
                            image: k, points: polygon.map { grid.position($0.x, $0.y, Double(k)) }))
                }
            }
            written.append(
                StructureSetWriter.ROI(
                    number: choice.label, name: choice.name, color: Self.palette[n % Self.palette.count],
                    contours: contours))
        }
        try writer.write(
            to: path,
            series: StructureSetWriter.SeriesReference(
                imagePath: series.instances[stack.slices[0].instance].path,
                studyInstanceUID: series.studyInstanceUID, seriesInstanceUID: series.seriesInstanceUID,
                frameOfReferenceUID: frame, images: images),
            rois: written)
        return written.map(\.contours.count)
    }

    /// ROI display colours, in `rois` order.
    static var palette: [(red: UInt8, green: UInt8, blue: UInt8)] {
        [(221, 130, 101), (157, 108, 162), (0, 151, 206), (216, 101, 79), (128, 174, 128), (241, 214, 145)]
    }
}
