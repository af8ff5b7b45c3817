import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

let rtstructFixtures = repositoryRoot + "/Tests/Fixtures/RTSTRUCT"

/// The fixture CT (48 × 48 × 12, 0.9 × 0.9 × 2.5 mm) the structure sets of Tests/Fixtures/RTSTRUCT are drawn on.
func rtstructSeries() throws -> DICOMSeries {
    let all = SeriesAssembler().assemble(try DirectoryScanner().scan(rtstructFixtures + "/ct").instances)
    return try #require(all.first)
}

/// Rasterising RT Structure Sets: the fixtures of scripts/reference/make_rtstruct_fixtures.py against the golden
/// masks of scripts/reference/rtstruct_golden.py (skimage.draw.polygon with the same even-odd rule at voxel
/// centres, and rt-utils 1.2.7 with OpenCV's fillPoly as an independent implementation).
@Suite("RT Structure Set rasterisation", .computeBound)
struct StructureSetRasterizationTests {
    struct Golden: Decodable {
        struct Mask: Decodable {
            var voxels: Int
            var runs: [[Int]]
        }
        struct ROI: Decodable {
            var number: Int
            var name: String
            var contours: Int
            var skimage: Mask
            var rt_utils: Mask
            var dice_skimage_rt_utils: Double
            var differing_voxels: Int
            var max_edge_distance_of_differences_voxels: Double
        }
        var rois: [ROI]
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: repositoryRoot + "/Tests/VolumesTests/Golden/rtstruct_golden.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    static func mask(_ runs: [[Int]], count: Int) -> [Bool] {
        var mask = [Bool](repeating: false, count: count)
        for run in runs { for v in run[0]..<(run[0] + run[1]) { mask[v] = true } }
        return mask
    }

    static func dice(_ a: [Bool], _ b: [Bool]) -> Double {
        let both = zip(a, b).filter { $0 && $1 }.count
        let total = a.filter { $0 }.count + b.filter { $0 }.count
        return total == 0 ? 1 : 2 * Double(both) / Double(total)
    }

    @Test("every ROI agrees voxel for voxel with skimage and at the golden Dice with rt-utils")
    func organsMatchTheReferences() throws {
        let golden = try Self.golden()
        let set = try StructureSet(path: rtstructFixtures + "/organs.dcm")
        let result = try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries())
        let voxels = result.volume.voxels
        #expect(result.volume.geometry.dimensions == SIMD3(48, 48, 12))
        #expect(result.overlaps == 0)
        #expect(result.filled.map(\.label) == [1, 2, 3])
        for roi in golden.rois {
            let ours = voxels.map { Int($0) == roi.number }
            let skimage = Self.mask(roi.skimage.runs, count: voxels.count)
            let rtUtils = Self.mask(roi.rt_utils.runs, count: voxels.count)
            let differences = zip(ours, skimage).filter { $0 != $1 }.count
            #expect(differences == 0, "ROI \(roi.name): \(differences) voxels differ from skimage")
            #expect(ours.filter { $0 }.count == roi.skimage.voxels)
            // rt-utils rounds vertices to whole pixels and fills boundary pixels: the same Dice as the reference
            // pair (Tessera equals skimage), at least 0.85, and every difference within a voxel of an edge.
            let d = Self.dice(ours, rtUtils)
            #expect(abs(d - roi.dice_skimage_rt_utils) < 1e-6, "ROI \(roi.name): Dice \(d)")
            #expect(d >= 0.85, "ROI \(roi.name): Dice with rt-utils \(d)")
            #expect(zip(ours, rtUtils).filter { $0 != $1 }.count == roi.differing_voxels)
            #expect(roi.max_edge_distance_of_differences_voxels < 1)
            #expect(result.filled.first { $0.roiNumber == roi.number }?.contours == roi.contours)
        }
        // The hole: the Liver's three inner contours take voxels out of its outer contours.
        let liver = result.filled.first { $0.roiName == "Liver" }
        #expect(liver?.contours == 9)
        // The Isocenter (POINT only) is left out; the Kidney's OPEN_PLANAR contour and the POINT are reported.
        #expect(
            result.warnings.contains { $0.contains("ROI 'Kidney' (number 3), contour 5") && $0.contains("OPEN_PLANAR") }
        )
        #expect(result.warnings.contains { $0.contains("ROI 'Isocenter'") && $0.contains("POINT") })
        #expect(result.warnings.contains { $0.contains("'Isocenter' (number 4) has no CLOSED_PLANAR contour") })
    }

    @Test("a label mapping with synonyms picks and renumbers ROIs")
    func mappingRenumbers() throws {
        let set = try StructureSet(path: rtstructFixtures + "/organs.dcm")
        let mapping = try ROILabelMapping(entries: [
            .init(label: 1, name: "LIVER"), .init(label: 2, name: "Spleen", synonyms: ["spleen_1", "SPL"]),
            .init(label: 3, name: "Pancreas"),
        ])
        let result = try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries(), mapping: mapping)
        #expect(result.filled.map(\.roiName) == ["Liver", "spleen_1"])
        #expect(result.filled.map(\.label) == [1, 2])
        #expect(result.warnings.contains("ROI 'Kidney' matches no label; left out"))
        #expect(result.warnings.contains("label 3 ('Pancreas'): no ROI matches it"))
        let counts = (0...3).map { v in result.volume.voxels.filter { Int($0) == v }.count }
        let golden = try Self.golden()
        #expect(counts[1] == golden.rois[0].skimage.voxels)
        #expect(counts[2] == golden.rois[1].skimage.voxels)
        #expect(counts[3] == 0)
    }

    @Test(
        "broken structure sets give errors naming the ROI and the contour",
        arguments: [
            ("oblique.dcm", "ROI 'Tilted' (number 1), contour 1: oblique contour plane, tilted 20°"),
            ("off-plane.dcm", "ROI 'Liver' (number 1), contour 3: contour off the slice planes"),
        ])
    func placementErrors(file: String, message: String) throws {
        let set = try StructureSet(path: rtstructFixtures + "/" + file)
        #expect {
            try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries())
        } throws: { error in
            let e = error as? DICOMError
            return e?.code == .structureSet && e?.message.contains(message) == true
        }
    }

    @Test("an empty ROI is an error when a label asks for it")
    func emptyROI() throws {
        let set = try StructureSet(path: rtstructFixtures + "/empty-roi.dcm")
        #expect(set.rois.map(\.contours.count) == [0, 1])
        let mapping = try ROILabelMapping(entries: [.init(label: 1, name: "liver"), .init(label: 2, name: "spleen")])
        #expect {
            try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries(), mapping: mapping)
        } throws: { error in
            (error as? DICOMError)?.message.contains("ROI 'Liver' (number 1) for label 1 is empty") == true
        }
        // Without a mapping it is left out with a warning.
        let result = try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries())
        #expect(result.filled.map(\.roiName) == ["Spleen"])
    }

    @Test("a structure set that references another series is refused, in selection and in rasterisation")
    func missingReference() throws {
        let set = try StructureSet(path: rtstructFixtures + "/missing-reference.dcm")
        let series = try rtstructSeries()
        #expect {
            try SeriesSelection.select(from: [series], referencedBy: set)
        } throws: { error in
            let e = error as? DICOMError
            return e?.code == .seriesSelection && e?.message.contains("is not in the folder") == true
        }
        #expect {
            try Volume<UInt8>.labels(structureSet: set, series: series)
        } throws: { error in
            (error as? DICOMError)?.message.contains("not series \(series.seriesInstanceUID)") == true
        }
        let organs = try StructureSet(path: rtstructFixtures + "/organs.dcm")
        #expect(
            try SeriesSelection.select(from: [series], referencedBy: organs).seriesInstanceUID
                == series.seriesInstanceUID)
    }

    @Test("an ambiguous label is refused, listing the ROIs")
    func ambiguousLabel() throws {
        let set = try StructureSet(path: rtstructFixtures + "/organs.dcm")
        let mapping = try ROILabelMapping(entries: [.init(label: 1, name: "Liver", synonyms: ["Kidney"])])
        #expect {
            try Volume<UInt8>.labels(structureSet: set, series: try rtstructSeries(), mapping: mapping)
        } throws: { error in
            (error as? DICOMError)?.message.contains("label 1 is matched by several ROIs ('Liver', 'Kidney')") == true
        }
    }
}

/// The fill rule on hand-made polygons (voxel coordinates), counted by hand.
@Suite("Contour fill rule", .computeBound)
struct ContourFillTests {
    @Test("a square from 0.5 to 3.5 holds the centres 1...3 in both axes")
    func square() {
        let square: [SIMD2<Double>] = [SIMD2(0.5, 0.5), SIMD2(3.5, 0.5), SIMD2(3.5, 3.5), SIMD2(0.5, 3.5)]
        let mask = ContourRasterizer.fill([square], columns: 5, rows: 5)
        let inside = (0..<25).filter { mask[$0] }
        #expect(inside == [6, 7, 8, 11, 12, 13, 16, 17, 18])
    }

    @Test("a contour inside another is a hole, a third inside the hole an island (even-odd)")
    func holesAndIslands() {
        func box(_ a: Double, _ b: Double) -> [SIMD2<Double>] {
            [SIMD2(a, a), SIMD2(b, a), SIMD2(b, b), SIMD2(a, b)]
        }
        let mask = ContourRasterizer.fill([box(-0.5, 8.5), box(1.5, 6.5), box(3.5, 4.5)], columns: 9, rows: 9)
        #expect(mask.filter { $0 }.count == 81 - 25 + 1)
        #expect(mask[4 * 9 + 4])  // the island
        #expect(!mask[2 * 9 + 2])  // the hole
        #expect(mask[0])
    }

    @Test("centres exactly on an edge: left and bottom edges in, right and top edges out (half-open)")
    func halfOpenEdges() {
        let square: [SIMD2<Double>] = [SIMD2(1, 1), SIMD2(3, 1), SIMD2(3, 3), SIMD2(1, 3)]
        let mask = ContourRasterizer.fill([square], columns: 5, rows: 5)
        #expect((0..<25).filter { mask[$0] } == [6, 7, 11, 12])
    }

    @Test("polygons far outside the plane or with huge coordinates fill nothing and never trap")
    func outside() {
        let far: [SIMD2<Double>] = [SIMD2(-1e300, -1e300), SIMD2(1e300, -1e300), SIMD2(1e300, -1e299)]
        #expect(ContourRasterizer.fill([far], columns: 4, rows: 4).allSatisfy { !$0 })
        let big: [SIMD2<Double>] = [SIMD2(-1e18, -1e18), SIMD2(1e18, -1e18), SIMD2(1e18, 1e18), SIMD2(-1e18, 1e18)]
        #expect(ContourRasterizer.fill([big], columns: 4, rows: 4).allSatisfy { $0 })
    }

    @Test("placement on an anisotropic, rotated grid: points 0.05 slice off are on the slice, 0.2 off are not")
    func placement() throws {
        let geometry = obliqueGeometry(SIMD3(10, 10, 6))
        let ring = (0..<6).map { m -> Vector3 in
            let a = Double(m) * Double.pi / 3
            return geometry.position(4 + 2 * cos(a), 5 + 2 * sin(a), 3 + (m.isMultiple(of: 2) ? 0.05 : -0.05))
        }
        let placed = try ContourRasterizer.place(ring, on: geometry, what: "test")
        #expect(placed.slice == 3)
        #expect(abs(placed.polygon[0].x - 6) < 1e-9 && abs(placed.polygon[0].y - 5) < 1e-9)
        let between = ring.map { $0 + 0.5 * geometry.spacing.z * geometry.direction.z }
        #expect(throws: DICOMError.self) { try ContourRasterizer.place(between, on: geometry, what: "test") }
    }
}
