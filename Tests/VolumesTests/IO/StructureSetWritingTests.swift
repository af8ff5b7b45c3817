import DICOMIO
import Foundation
import Randomness
import TestSupport
import Testing

@testable import Volumes

/// Label maps → closed planar contours (`ContourTracer`) → the even-odd fill (`ContourRasterizer.fill`) gives the
/// mask back exactly; and through DICOM: `Volume.writeStructureSet` → `StructureSet` (dcmrt) → `Volume.labels`.
@Suite("RT Structure Set writing", .computeBound)
struct StructureSetWritingTests {
    /// A mask from rows of text, `#` inside.
    static func mask(_ rows: [String]) -> (mask: [Bool], columns: Int, rows: Int) {
        let columns = rows.map(\.count).max() ?? 0
        var out = [Bool](repeating: false, count: columns * rows.count)
        for (j, row) in rows.enumerated() {
            for (i, c) in row.enumerated() where c == "#" { out[j * columns + i] = true }
        }
        return (out, columns, rows.count)
    }

    static func roundTrip(_ mask: [Bool], columns: Int, rows: Int) -> (filled: [Bool], contours: [[SIMD2<Double>]]) {
        let contours = ContourTracer.contours(columns: columns, rows: rows) { mask[$1 * columns + $0] }
        return (ContourRasterizer.fill(contours, columns: columns, rows: rows), contours)
    }

    @Test("one voxel: a diamond through the midpoints to its four neighbours")
    func oneVoxel() {
        let contours = ContourTracer.contours(columns: 3, rows: 3) { $0 == 1 && $1 == 1 }
        #expect(contours.count == 1)
        #expect(Set(contours[0].map { [$0.x, $0.y] }) == [[1.5, 1], [1, 1.5], [0.5, 1], [1, 0.5]])
    }

    @Test(
        "holes, islands in holes, several components, diagonal neighbours and the border fill back exactly",
        arguments: [
            (
                [
                    "##########", "#........#", "#.######.#", "#.#....#.#", "#.#.##.#.#", "#.#....#.#",
                    "#.######.#", "#........#", "##########",
                ], 5
            ),  // rings within rings: outer, hole, ring, hole, island
            (["#.#.#", ".#.#.", "#.#.#"], 8),  // a checkerboard: diagonal neighbours are separate contours
            (["##..##", "##..##", "......", "..##..", "..##.."], 3),  // three blocks on one slice
            (["#####", "#...#", "#.#.#", "#...#", "#####"], 3),  // a frame touching the border, a hole, an island
            ([".....", ".....", "....."], 0),
        ])
    func shapes(_ rows: [String], contours expected: Int) {
        let (m, columns, height) = Self.mask(rows)
        let (filled, contours) = Self.roundTrip(m, columns: columns, rows: height)
        #expect(filled == m)
        #expect(contours.count == expected)
    }

    @Test("500 seeded random masks fill back exactly, also with every vertex moved by up to 0.3 voxel")
    func randomMasks() {
        var g = SplitMix64(seed: 20_261_207)
        for trial in 0..<500 {
            let columns = Int.random(in: 1...17, using: &g)
            let rows = Int.random(in: 1...13, using: &g)
            let density = Double.random(in: 0.2...0.8, using: &g)
            let m = (0..<(columns * rows)).map { _ in Double.random(in: 0..<1, using: &g) < density }
            let (filled, contours) = Self.roundTrip(m, columns: columns, rows: rows)
            #expect(filled == m, "trial \(trial)")
            // The documented bound: every centre is ≥ √2/4 voxel from every edge, so a displacement below that keeps
            // the fill (written coordinates are rounded to 0.1 µm; this moves them far more).
            let moved = contours.map { polygon in
                polygon.map {
                    $0 + SIMD2(Double.random(in: -0.3...0.3, using: &g), Double.random(in: -0.3...0.3, using: &g))
                        / 2.0.squareRoot()
                }
            }
            #expect(ContourRasterizer.fill(moved, columns: columns, rows: rows) == m, "trial \(trial), moved")
        }
    }

    /// The labels of the committed written-by-tessera.dcm on the fixture CT (48 × 48 × 12): label 1 a disc with a
    /// hole and an island in the hole, label 2 two separate blobs per slice, label 3 a checkerboard patch (diagonal
    /// neighbours).
    static func fixtureLabels(_ geometry: VolumeGeometry) -> Volume<UInt8> {
        let n = geometry.dimensions
        var voxels = [UInt8](repeating: 0, count: geometry.voxelCount)
        for k in 0..<n.z {
            for j in 0..<n.y {
                for i in 0..<n.x {
                    let d1 = Double((i - 24) * (i - 24) + (j - 22) * (j - 22)).squareRoot()
                    let d2 = Double((i - 21) * (i - 21) + (j - 20) * (j - 20)).squareRoot()
                    var v: UInt8 = 0
                    if (2...9).contains(k), d1 <= 13, d2 > 5 || (d2 <= 2 && (4...6).contains(k)) { v = 1 }
                    if (1...10).contains(k), (3..<7).contains(i) && (3..<10).contains(j) { v = 2 }
                    if (1...10).contains(k), (i - 41) * (i - 41) + (j - 41) * (j - 41) <= 9 + k { v = 2 }
                    if k == 5, (40..<46).contains(i), (2..<8).contains(j), (i + j) % 2 == 0 { v = 3 }
                    voxels[(k * n.y + j) * n.x + i] = v
                }
            }
        }
        return Volume(geometry: geometry, voxels: voxels)
    }

    static let fixtureROIs = [
        StructureSetROIChoice(label: 1, name: "LIVER_GTV"), StructureSetROIChoice(label: 2, name: "spleen_1"),
        StructureSetROIChoice(label: 3, name: "Kidney"),
    ]

    /// Writes the fixture's structure set with fixed UIDs and date (so the file is reproducible byte for byte).
    static func writeFixture(to path: String, series: DICOMSeries) throws -> [Int] {
        var writer = StructureSetWriter()
        writer.label = "WRITTEN"
        writer.seriesInstanceUID = "2.25.292170146125843307339364823126893541301"
        writer.sopInstanceUID = "2.25.292170146125843307339364823126893541302"
        writer.date = "20261207"
        writer.time = "120000"
        let labels = fixtureLabels(VolumeGeometry(stack: try series.primaryStack()))
        return try labels.writeStructureSet(to: path, series: series, rois: fixtureROIs, writer: writer)
    }

    @Test("labels → RTSTRUCT → dcmrt → the same labels, voxel for voxel, with ROI names, numbers and references")
    func throughDICOM() throws {
        let series = try rtstructSeries()
        let stack = try series.primaryStack()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("written-\(UUID().uuidString).dcm")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let counts = try Self.writeFixture(to: path, series: series)
        let set = try StructureSet(path: path)
        #expect(set.rois.map(\.name) == ["LIVER_GTV", "spleen_1", "Kidney"])
        #expect(set.rois.map(\.number) == [1, 2, 3])
        #expect(set.rois.map(\.contours.count) == counts)
        // Liver: 8 slices, 2 contours each (disc, hole) plus the island on 3 of them; spleen 2 a slice on 10
        // slices; the checkerboard patch 18 single voxels.
        #expect(counts == [19, 20, 18])
        #expect(set.warnings.isEmpty)
        #expect(set.references.map(\.seriesInstanceUID) == [series.seriesInstanceUID])
        #expect(set.references.first?.frameOfReferenceUID == series.frameOfReferenceUID)
        let uids = stack.slices.map { series.instances[$0.instance].sopInstanceUID }
        #expect(set.references.first?.sopInstanceUIDs == uids)
        // Every contour names the image of the slice it lies on.
        let geometry = VolumeGeometry(stack: stack)
        for roi in set.rois {
            for contour in roi.contours {
                let placed = try ContourRasterizer.place(contour.points, on: geometry, what: roi.name)
                #expect(contour.referencedSOPInstanceUID == uids[placed.slice])
            }
        }
        let original = Self.fixtureLabels(geometry)
        let back = try Volume<UInt8>.labels(structureSet: set, series: series)
        #expect(back.volume.voxels == original.voxels)
        #expect(back.volume.geometry == original.geometry)
        #expect(back.overlaps == 0)
        // By the names a pipeline gives (segment_names), in another order.
        let mapping = try ROILabelMapping(entries: [
            .init(label: 1, name: "Spleen", synonyms: ["spleen_1"]),
            .init(label: 2, name: "Liver", synonyms: ["LIVER_GTV"]),
        ])
        let mapped = try Volume<UInt8>.labels(structureSet: set, series: series, mapping: mapping)
        let swapped: [UInt8] = original.voxels.map { $0 == 1 ? 2 : $0 == 2 ? 1 : 0 }
        #expect(mapped.volume.voxels == swapped)
    }

    @Test("the committed Tests/Fixtures/RTSTRUCT/written-by-tessera.dcm is what the writer writes, byte for byte")
    func committedFixture() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("written-\(UUID().uuidString).dcm")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Self.writeFixture(to: path, series: try rtstructSeries())
        let committed = rtstructFixtures + "/written-by-tessera.dcm"
        if ProcessInfo.processInfo.environment["TESSERA_WRITE_FIXTURES"] == "1" {
            try? FileManager.default.removeItem(atPath: committed)
            try FileManager.default.copyItem(atPath: path, toPath: committed)
        }
        #expect(FileManager.default.contents(atPath: path) == FileManager.default.contents(atPath: committed))
    }

    @Test("matches the independent rasterisations of scripts/reference/rtstruct_written_golden.py (skimage, rt-utils)")
    func independentReaders() throws {
        struct Golden: Decodable {
            struct ROI: Decodable {
                var number: Int
                var name: String
                var skimage: StructureSetRasterizationTests.Golden.Mask
                var dice_skimage_rt_utils: Double
                var max_edge_distance_of_differences_voxels: Double
            }
            struct File: Decodable {
                var rtstruct: String
                var ct: String
                var checks: [String: Bool]
                var rois: [ROI]
            }
            var files: [File]
        }
        let url = URL(fileURLWithPath: repositoryRoot + "/Tests/VolumesTests/Golden/rtstruct_written_golden.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        #expect(golden.files.count >= 2)
        for file in golden.files {
            #expect(file.checks.values.allSatisfy { $0 }, "\(file.rtstruct): \(file.checks)")
            let all = SeriesAssembler().assemble(try DirectoryScanner().scan(repositoryRoot + "/" + file.ct).instances)
            let series = try #require(all.first)
            let set = try StructureSet(path: repositoryRoot + "/" + file.rtstruct)
            let labels = try Volume<UInt8>.labels(structureSet: set, series: series).volume
            for roi in file.rois {
                let expected = StructureSetRasterizationTests.mask(roi.skimage.runs, count: labels.voxels.count)
                #expect(labels.voxels.map { $0 == UInt8(roi.number) } == expected, "\(file.rtstruct) \(roi.name)")
                // rt-utils rounds vertices to pixels and fills boundary pixels: it differs only at edges (its Dice is
                // 0.94–0.96 on the organs, 0.57 on the checkerboard of single voxels).
                #expect(roi.max_edge_distance_of_differences_voxels <= 0.5 + 1e-6, "\(file.rtstruct) \(roi.name)")
            }
        }
    }

    @Test("dciodvfy (dicom3tools) finds no error in a written structure set", .enabled(if: hasDciodvfy))
    func dciodvfy() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("written-\(UUID().uuidString).dcm")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Self.writeFixture(to: path, series: try rtstructSeries())
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dciodvfy")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let errors = text.split(separator: "\n").filter { $0.hasPrefix("Error") }
        #expect(errors.isEmpty, "\(text)")
        #expect(text.contains("RTStructureSet"))
    }

    @Test("labels not on the series' grid, and labels outside 1…255, are refused before writing")
    func refusals() throws {
        let series = try rtstructSeries()
        var geometry = VolumeGeometry(stack: try series.primaryStack())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("refused-\(UUID().uuidString).dcm")
            .path
        geometry.dimensions.z -= 1
        let small = Volume<UInt8>(geometry: geometry, voxels: [UInt8](repeating: 1, count: geometry.voxelCount))
        #expect(throws: DICOMError.self) {
            try small.writeStructureSet(to: path, series: series, rois: [StructureSetROIChoice(label: 1, name: "A")])
        }
        geometry.dimensions.z += 1
        let labels = Volume<UInt8>(geometry: geometry, voxels: [UInt8](repeating: 1, count: geometry.voxelCount))
        #expect(throws: DICOMError.self) {
            try labels.writeStructureSet(to: path, series: series, rois: [StructureSetROIChoice(label: 0, name: "A")])
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}

let hasDciodvfy = FileManager.default.isExecutableFile(atPath: "/usr/bin/dciodvfy")
