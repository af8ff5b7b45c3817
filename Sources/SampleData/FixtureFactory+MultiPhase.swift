import DICOMIO
import Foundation

/// Two-phase CT studies for multi-series (`model.input_channels`) tests: in each study a venous series with a DICOM
/// SEG and an arterial series on another grid (shifted origin, coarser spacing, smaller field of view), both
/// sampling one analytic phantom in patient coordinates, so a resampled value can be checked against the phantom
/// and against a naive trilinear reference.
extension FixtureFactory {
    /// What to write.
    public struct MultiPhaseLayout: Sendable {
        /// Studies (patients) `mp0`, `mp1`, …
        public var patients = 4
        /// Studies written without their arterial series (a missing channel).
        public var withoutArterial: Set<Int> = []
        /// Studies with a second arterial series (an ambiguous channel).
        public var duplicateArterial: Set<Int> = []

        public init(patients: Int = 4, withoutArterial: Set<Int> = [], duplicateArterial: Set<Int> = []) {
            self.patients = patients
            self.withoutArterial = withoutArterial
            self.duplicateArterial = duplicateArterial
        }
    }

    /// Venous grid: 32×32×8 voxels, 1.0 × 1.0 × 2.0 mm, axis-aligned, first voxel at (−16, −16, 0) LPS mm.
    public static let venousOrigin = Vector3(-16, -16, 0)
    /// Arterial grid: 24×24×6 voxels, 1.3 × 1.3 × 3.0 mm, axis-aligned, first voxel at (−14.3, −18.1, −1.1).
    public static let arterialOrigin = Vector3(-14.3, -18.1, -1.1)
    /// Radius of the lesion sphere, mm.
    public static let sphereRadius = 6.0

    /// The sphere's centre in study `patient`, LPS mm.
    public static func sphereCentre(_ patient: Int) -> Vector3 {
        Vector3(Double(patient % 3) - 2, 1 - Double(patient % 4), 7)
    }

    /// Venous HU at `p`: 40, or 200 inside the sphere.
    public static func venousHU(_ p: Vector3, patient: Int) -> Double {
        (p - sphereCentre(patient)).length < sphereRadius ? 200 : 40
    }

    /// Arterial HU at `p`: the linear ramp 100 + 2x − 3y + 4z, plus 150 inside the sphere.
    public static func arterialHU(_ p: Vector3, patient: Int) -> Double {
        100 + 2 * p.x - 3 * p.y + 4 * p.z + ((p - sphereCentre(patient)).length < sphereRadius ? 150 : 0)
    }

    /// Writes the studies into `folder/mp<i>/` (venous series, its SEG `seg.dcm` with segment 1 the sphere, and the
    /// arterial series). Stored as int16 with Rescale Intercept −1024, Slope 1 (so values are whole HU).
    public func writeMultiPhase(into folder: String, layout: MultiPhaseLayout = .init()) throws(DICOMError) {
        for p in 0..<layout.patients {
            let study = "mp\(p)"
            var venous = SeriesSpec(name: study + "-venous")
            venous.study = study
            (venous.rows, venous.columns, venous.slices) = (32, 32, 8)
            venous.pixelSpacing = (1.0, 1.0)
            venous.sliceSpacing = 2.0
            venous.rowCosine = Vector3(1, 0, 0)
            venous.columnCosine = Vector3(0, 1, 0)
            venous.origin = Self.venousOrigin
            venous.intercept = -1024
            venous.seriesNumber = 2
            venous.description = "Abdomen venous 2mm"
            venous.content = { Self.venousHU($0, patient: p) }
            let paths = try writeSeries(venous, folder: folder + "/" + study)
            var masks = [UInt8](repeating: 0, count: venous.slices * venous.rows * venous.columns)
            for k in 0..<venous.slices {
                for j in 0..<venous.rows {
                    for i in 0..<venous.columns {
                        let position = venous.position(i, j, k, slice: self.position(venous, k))
                        let inside = (position - Self.sphereCentre(p)).length < Self.sphereRadius
                        masks[(k * venous.rows + j) * venous.columns + i] = inside ? 1 : 0
                    }
                }
            }
            try writeSEG(
                masks: masks, venous, sources: paths, fractional: false, path: folder + "/" + study + "/seg.dcm",
                segments: [SegmentSpecification(label: "Lesion", typeCode: ("52988006", "SCT", "Lesion"))])
            guard !layout.withoutArterial.contains(p) else { continue }
            var arterial = venous
            arterial.name = study + "-arterial"
            (arterial.rows, arterial.columns, arterial.slices) = (24, 24, 6)
            arterial.pixelSpacing = (1.3, 1.3)
            arterial.sliceSpacing = 3.0
            arterial.origin = Self.arterialOrigin
            arterial.seriesNumber = 3
            arterial.description = "Abdomen arterial 3mm"
            arterial.content = { Self.arterialHU($0, patient: p) }
            try writeSeries(arterial, folder: folder + "/" + study)
            if layout.duplicateArterial.contains(p) {
                arterial.name = study + "-arterial-recon"
                arterial.seriesNumber = 4
                arterial.description = "Abdomen arterial 3mm recon"
                try writeSeries(arterial, folder: folder + "/" + study)
            }
        }
    }
}
