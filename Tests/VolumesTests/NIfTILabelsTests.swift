import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// NIfTI-1 label maps matched to a DICOM series by geometry (issue #15). Fixtures: `Tests/Fixtures/NIfTI`, written by
/// nibabel from pydicom's grid of two DICOM fixtures (scripts/reference/make_nifti_fixtures.py, which says how).
@Suite("NIfTI label maps", .computeBound)
struct NIfTILabelsTests {
    static let fixtures = repositoryRoot + "/Tests/Fixtures/NIfTI"

    func grid(_ dicomCase: String) throws -> VolumeGeometry {
        let folder = repositoryRoot + "/Tests/Fixtures/DICOM/" + dicomCase
        let all = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
        return try Volume<Float>(series: all[0]).geometry
    }

    /// (i + 2j + 3k) mod 5, x fastest: the labels the fixture script writes.
    func pattern(_ d: SIMD3<Int>) -> [UInt8] {
        var out: [UInt8] = []
        for k in 0..<d.z { for j in 0..<d.y { for i in 0..<d.x { out.append(UInt8((i + 2 * j + 3 * k) % 5)) } } }
        return out
    }

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func temporary(_ name: String) -> String {
        NSTemporaryDirectory() + "tessera-niftilabels-\(UUID().uuidString)-" + name
    }

    @Test(
        "nibabel's label maps read as LPS = nibabel's RAS affine with x and y negated, on the series' grid",
        arguments: [
            ("labels_uint8.nii.gz", "explicit-le"), ("labels_int16.nii.gz", "explicit-le"),
            ("labels_uint16.nii.gz", "explicit-le"), ("labels_int32.nii.gz", "explicit-le"),
            ("labels_float32.nii.gz", "explicit-le"), ("qform_only.nii.gz", "explicit-le"),
            ("reversed.nii.gz", "reversed"),
        ])
    func nibabelFiles(name: String, dicomCase: String) throws {
        let files = try #require(try expected()["files"] as? [String: Any])
        let record = try #require(files[name] as? [String: Any])
        let ras = try #require(record["affine_ras"] as? [[Double]])
        let path = Self.fixtures + "/" + name
        let file = try NIfTI.read(path)
        let g = try file.geometry(path: path)
        // nibabel's affine (RAS) with rows x and y negated is our LPS affine.
        let lps = g.affineLPS
        for row in 0..<3 {
            for col in 0..<4 {
                let want = (row < 2 ? -1 : 1) * ras[row][col]
                #expect(abs(lps[row][col] - want) < 1e-5, "\(name) [\(row)][\(col)]: \(lps[row][col]) vs \(want)")
            }
        }
        let series = try grid(dicomCase)
        #expect(NIfTI.differences(g, series) == nil)
        let labels = try Volume<UInt8>(niftiLabels: path, matching: series)
        #expect(labels.geometry == series)
        #expect(labels.voxels == pattern(series.dimensions))
    }

    @Test("A reoriented copy (rows flipped, same voxel centres) is refused, naming the flipped axis")
    func flippedAxis() throws {
        let series = try grid("explicit-le")
        do {
            _ = try Volume<UInt8>(niftiLabels: Self.fixtures + "/flipped_y.nii.gz", matching: series)
            Issue.record("a flipped file was accepted")
        } catch {
            #expect(error.message.contains("the y (rows) axis points"), "\(error)")
            #expect(error.message.contains("(flipped)") && error.message.contains("first voxel's centre"), "\(error)")
            #expect(!error.message.contains("x (columns)"), "\(error)")
        }
    }

    @Test(
        "Values that are not integer labels in 0...255 are refused, naming the first voxel",
        arguments: [
            ("nonint.nii.gz", "(3, 2, 1) with value 1.5"), ("negative.nii.gz", "(4, 5, 6) with value -1.0"),
            ("too_big.nii.gz", "(0, 0, 7) with value 300.0"),
            ("no_xform.nii.gz", "neither sform_code nor qform_code"),
        ])
    func badValues(name: String, words: String) throws {
        let series = try grid("explicit-le")
        do {
            _ = try Volume<UInt8>(niftiLabels: Self.fixtures + "/" + name, matching: series)
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.message.contains(words), "\(error)")
            #expect(error.path.hasSuffix(name))
        }
    }

    @Test("Grids that differ: shifted origin, spacing, dimensions, a tilted axis; within 0.1 voxel is a match")
    func mismatches() throws {
        let series = try grid("explicit-le")
        var shifted = series
        shifted.origin += series.direction.x * 0.5 * series.spacing.x
        var nudged = series
        nudged.origin += series.direction.z * 0.05 * series.spacing.x
        var spacing = series
        spacing.spacing.x += 0.02
        var dims = series
        dims.dimensions.z += 1
        var tilted = series
        tilted.direction.x = (series.direction.x + series.direction.y * 0.01).normalized
        #expect(NIfTI.differences(nudged, series) == nil)
        for (g, words) in [
            (shifted, "the first voxel's centre"), (spacing, "spacing (0.7200"),
            (dims, "dimensions 40×32×9 in the file"),
            (tilted, "the x (columns) axis points"),
        ] {
            let found = try #require(NIfTI.differences(g, series))
            #expect(found.contains(words), "\(found)")
        }
        // Through a file: our writer's output read back against a shifted series.
        let path = temporary("labels.nii.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NIfTI.write(Volume<UInt8>(geometry: series, voxels: pattern(series.dimensions)), to: path)
        #expect(try Volume<UInt8>(niftiLabels: path, matching: series).voxels == pattern(series.dimensions))
        do {
            _ = try Volume<UInt8>(niftiLabels: path, matching: shifted)
            Issue.record("a shifted grid was accepted")
        } catch {
            #expect(error.message.contains("not the series' grid") && error.message.contains("0.1 voxel"), "\(error)")
        }
    }

    @Test("Hostile label headers: unknown datatype, bitpix disagreeing with it, a file past maxBytes")
    func hostileHeaders() throws {
        let series = try grid("explicit-le")
        let path = temporary("hostile.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NIfTI.write(Volume<UInt8>(geometry: series, voxels: pattern(series.dimensions)), to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func patched(_ offset: Int, _ value: Int16) throws {
            var data = good
            data.replaceSubrange(offset..<(offset + 2), with: withUnsafeBytes(of: value) { Array($0) })
            try data.write(to: URL(fileURLWithPath: path))
        }
        try patched(70, 64)  // datatype float64
        #expect(throws: NIfTI.Error.self) { try Volume<UInt8>(niftiLabels: path, matching: series) }
        try patched(70, 4)  // int16 with bitpix 8
        do {
            _ = try Volume<UInt8>(niftiLabels: path, matching: series)
            Issue.record("bitpix 8 with int16 was accepted")
        } catch {
            #expect(error.message.contains("bitpix 8 disagrees with datatype int16"), "\(error)")
        }
        try good.write(to: URL(fileURLWithPath: path))
        do {
            _ = try Volume<UInt8>(niftiLabels: path, matching: series, maxBytes: 1000)
            Issue.record("a file past maxBytes was read")
        } catch {
            #expect(error.message.contains("larger than 1000 bytes"), "\(error)")
        }
    }
}
