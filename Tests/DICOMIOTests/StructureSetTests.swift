import DICOMIO
import Foundation
import TestSupport
import Testing

/// Reading RT Structure Sets through dcmrt: the fixtures of scripts/reference/make_rtstruct_fixtures.py.
@Suite("RT Structure Set reading", .computeBound)
struct StructureSetTests {
    static let root = repositoryRoot + "/Tests/Fixtures/RTSTRUCT"

    @Test("organs.dcm: ROIs, contour counts, skipped contour types and references")
    func organs() throws {
        let set = try StructureSet(path: Self.root + "/organs.dcm")
        #expect(set.label == "organs")
        #expect(set.rois.map(\.number) == [1, 2, 3, 4])
        #expect(set.rois.map(\.name) == ["Liver", "spleen_1", "Kidney", "Isocenter"])
        // Liver: 6 slices + 3 holes; spleen: 2 per slice on 4 slices; kidney: 4 closed (+1 open skipped).
        #expect(set.rois.map(\.contours.count) == [9, 8, 4, 0])
        #expect(set.rois.map(\.skippedContours) == [0, 0, 1, 1])
        #expect(set.warnings.count == 2)
        #expect(
            set.warnings[0].contains(
                "ROI 'Kidney' (number 3), contour 5: (3006,0042) Contour Geometric Type OPEN_PLANAR"))
        #expect(set.warnings[1].contains("ROI 'Isocenter' (number 4), contour 1") && set.warnings[1].contains("POINT"))
        // The first Liver contour: 14 points on slice 4 (z = 107.5 mm, within ±0.05 mm), as written.
        let first = try #require(set.rois[0].contours.first)
        #expect(first.points.count == 14)
        #expect(first.points.allSatisfy { abs($0.z - 107.5) <= 0.05 })
        #expect(first.referencedSOPInstanceUID != nil)
        #expect(set.references.count == 1)
        #expect(set.references[0].sopInstanceUIDs.count == 12)
        let ct = try series(in: Self.root + "/ct")
        #expect(set.references[0].seriesInstanceUID == ct.first?.seriesInstanceUID)
        #expect(set.frameOfReferenceUIDs == Set(ct.compactMap(\.frameOfReferenceUID)))
    }

    @Test("(3006,0046) Number of Contour Points that disagrees with (3006,0050) is an error naming both")
    func countMismatch() {
        #expect {
            try StructureSet(path: Self.root + "/count-mismatch.dcm")
        } throws: { error in
            let e = error as? DICOMError
            return e?.code == .structureSet
                && e?.message.contains(
                    "ROI 'Liver' (number 1), contour 1: (3006,0046) Number of Contour Points is 7 but (3006,0050) "
                        + "Contour Data holds 18 values (6 points)") == true
        }
    }

    @Test(
        "counts above the limits are refused before dcmrt copies them, naming the limit",
        arguments: ["maxROIs", "maxContours", "maxContourPoints", "maxStructureSetBytes"])
    func limits(name: String) {
        // organs.dcm: 4 ROIs, 23 contours, 232 points, 12 788 bytes.
        var limits = ReadingLimits()
        switch name {
        case "maxROIs": limits.maxROIs = 3
        case "maxContours": limits.maxContours = 20
        case "maxContourPoints": limits.maxContourPoints = 100
        default: limits.maxStructureSetBytes = 4096
        }
        #expect {
            try StructureSet(path: Self.root + "/organs.dcm", limits: limits)
        } throws: { error in
            (error as? DICOMError)?.message.contains("ReadingLimits.\(name)") == true
        }
    }

    @Test("an image is not an RT Structure Set")
    func notAStructureSet() throws {
        let image = try #require(try FileManager.default.contentsOfDirectory(atPath: Self.root + "/ct").sorted().first)
        #expect {
            try StructureSet(path: Self.root + "/ct/" + image)
        } throws: { error in
            (error as? DICOMError)?.message.contains("not an RT Structure Set") == true
        }
    }

    @Test(
        "the fixtures pass dciodvfy without errors (missing-reference.dcm lacks its Contour Image Sequence on purpose)",
        .enabled(if: SampleDataValidationTests.dciodvfy != nil, "dicom3tools is not installed (make test installs it)"))
    func dciodvfy() throws {
        let tool = try #require(SampleDataValidationTests.dciodvfy)
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root).filter { $0.hasSuffix(".dcm") }
        #expect(files.count == 7)  // six hand-made fixtures and written-by-tessera.dcm
        for file in files.sorted() {
            let errors = try dciodvfyFindings(tool: tool, file: Self.root + "/" + file).filter { $0.hasPrefix("Error") }
            if file == "missing-reference.dcm" {
                #expect(errors.count == 1 && errors[0].contains("ContourImageSequence"), "\(errors)")
            } else {
                #expect(errors.isEmpty, "\(file): \(errors.prefix(3))")
            }
        }
        let ct = try dciodvfyFindings(tool: tool, file: Self.root + "/ct/ct-01.dcm").filter { $0.hasPrefix("Error") }
        #expect(ct.isEmpty, "\(ct)")
    }

    @Test("inspect lists the structure sets with their ROIs and contour counts, and the broken ones with a reason")
    func inspection() throws {
        let report = try FolderInspection(folder: Self.root)
        #expect(report.series.count == 1)
        #expect(report.structureSets.count == 6)
        let organs = try #require(report.structureSets.first { $0.path.hasSuffix("/organs.dcm") })
        #expect(organs.rois.map(\.name) == ["Liver", "spleen_1", "Kidney", "Isocenter"])
        #expect(organs.rois.map(\.contours) == [9, 8, 4, 0])
        #expect(organs.rois.map(\.skippedContours) == [0, 0, 1, 1])
        #expect(organs.referencedSeriesInstanceUID == report.series[0].seriesInstanceUID)
        #expect(report.series[0].structureSets.count == 5)
        let missing = try #require(report.structureSets.first { $0.path.hasSuffix("/missing-reference.dcm") })
        #expect(missing.referencedSeriesInstanceUID == nil)
        #expect(missing.problems.map(\.kind) == ["referenced-series-missing"])
        // The count mismatch cannot be read: skipped with the reason; no other file is skipped.
        #expect(report.skipped.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["count-mismatch.dcm"])
        #expect(report.skipped.first?.code == "rtstruct")
        #expect(report.text.contains("ROI 3 \"Kidney\": 4 contour(s), 1 skipped"))
        #expect(try report.json().contains("\"structureSets\""))
    }

    @Test("a folder scan finds the structure sets among the skipped non-image objects")
    func scanFindsStructureSets() throws {
        let scan = try DirectoryScanner().scan(Self.root)
        #expect(scan.instances.count == 12)
        #expect(
            scan.structureSetPaths.map { URL(fileURLWithPath: $0).lastPathComponent } == [
                "count-mismatch.dcm", "empty-roi.dcm", "missing-reference.dcm", "oblique.dcm", "off-plane.dcm",
                "organs.dcm", "written-by-tessera.dcm",
            ])
    }
}

/// ROI name matching: case-insensitive exact names plus explicit synonyms.
@Suite("ROI label mapping", .computeBound)
struct ROILabelMappingTests {
    static func mapping() throws -> ROILabelMapping {
        try ROILabelMapping(entries: [
            .init(label: 1, name: "Liver", synonyms: ["liver_1", "Leber"]), .init(label: 2, name: "Spleen"),
        ])
    }

    @Test(
        "names match ignoring case and outer spaces, synonyms only when listed",
        arguments: [
            ("Liver", 1), ("LIVER", 1), (" liver ", 1), ("liver_1", 1), ("LIVER_1", 1), ("leber", 1), ("spleen", 2),
            ("liver_2", nil), ("Liver GTV", nil), ("Spleen1", nil),
        ] as [(String, Int?)])
    func matching(name: String, label: Int?) throws {
        #expect(try Self.mapping().label(for: name) == label)
    }

    @Test("unmatched ROIs, ambiguous labels and missing labels are reported")
    func report() throws {
        let mapping = try Self.mapping()
        let match = mapping.match([(1, "LIVER"), (2, "liver_1"), (3, "Heart")])
        #expect(match.assignments.isEmpty)
        #expect(match.unmatched == ["Heart"])
        #expect(match.ambiguous == [.init(label: 1, roiNames: ["LIVER", "liver_1"])])
        #expect(match.missing.map(\.label) == [2])
        #expect(match.report.count == 3)
        let clean = mapping.match([(7, "Spleen"), (9, "Liver")])
        #expect(
            clean.assignments == [
                .init(roiNumber: 7, roiName: "Spleen", label: 2), .init(roiNumber: 9, roiName: "Liver", label: 1),
            ])
        #expect(clean.report.isEmpty)
    }

    @Test("a name shared by two labels, a label twice or outside 1...255 are refused")
    func invalid() {
        #expect(throws: DICOMError.self) {
            try ROILabelMapping(entries: [
                .init(label: 1, name: "Liver"), .init(label: 2, name: "x", synonyms: ["LIVER"]),
            ])
        }
        #expect(throws: DICOMError.self) {
            try ROILabelMapping(entries: [.init(label: 1, name: "a"), .init(label: 1, name: "b")])
        }
        #expect(throws: DICOMError.self) { try ROILabelMapping(entries: [.init(label: 256, name: "a")]) }
        #expect(throws: DICOMError.self) { try ROILabelMapping(entries: [.init(label: 1, name: " ")]) }
    }
}
