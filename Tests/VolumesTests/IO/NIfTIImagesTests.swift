import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// NIfTI-1 images read as float volumes (`Volume(niftiImage:)`, for NIfTI-only sites). Fixtures:
/// `Tests/Fixtures/NIfTIImages`, written by nibabel 5.4.2 with nibabel's own reading of every image (scaled values,
/// affine) in `expected.json` (scripts/reference/make_nifti_images.py says how).
@Suite("NIfTI images", .computeBound)
struct NIfTIImagesTests {
    static let fixtures = repositoryRoot + "/Tests/Fixtures/NIfTIImages"

    func record(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/expected.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let files = try #require(json["files"] as? [String: Any])
        return try #require(files[name] as? [String: Any])
    }

    @Test(
        "values are nibabel's get_fdata (stored × scl_slope + scl_inter), the grid nibabel's affine read as LPS",
        arguments: [
            ("imagesTr/case_a.nii.gz", "int16", 0.5), ("imagesTr/case_b.nii", "float32", 1.0),
            ("imagesTr/case_c.nii.gz", "float64", 1.0),
        ])
    func matchesNibabel(name: String, dtype: String, slope: Double) throws {
        let golden = try record(name)
        #expect(golden["dtype"] as? String == dtype && golden["scl_slope"] as? Double == slope)
        let values = try #require(golden["values"] as? [Double])
        let ras = try #require(golden["affine_ras"] as? [[Double]])
        let image = try Volume<Float>(niftiImage: Self.fixtures + "/" + name)
        #expect(image.geometry.dimensions == SIMD3(12, 10, 6))
        #expect(image.voxels.count == values.count)
        var worst = 0.0
        for (v, g) in zip(image.voxels, values) { worst = max(worst, abs(Double(v) - g) / max(1, abs(g))) }
        #expect(worst < 1e-6, "largest relative difference from nibabel: \(worst)")
        // Voxel (i, j, k) at nibabel's RAS affine · (i, j, k, 1) with x and y negated.
        for (i, j, k) in [(0, 0, 0), (11, 0, 0), (0, 9, 5), (11, 9, 5), (4, 7, 2)] {
            let index = [Double(i), Double(j), Double(k), 1]
            let r = (0..<3).map { row in (0..<4).reduce(0.0) { $0 + ras[row][$1] * index[$1] } }
            let p = image.geometry.position(Double(i), Double(j), Double(k))
            #expect((p - Vector3(-r[0], -r[1], r[2])).length < 1e-4, "voxel (\(i), \(j), \(k)): \(p) vs \(r)")
        }
    }

    @Test("a NaN voxel and a non-image datatype are refused; the voxel count is bounded before conversion")
    func refused() throws {
        let nan = #expect(throws: NIfTI.Error.self) {
            try Volume<Float>(niftiImage: Self.fixtures + "/invalid/nan.nii.gz")
        }
        #expect(nan?.message.contains("1 voxel(s) are not finite") == true, "\(String(describing: nan))")
        #expect(throws: NIfTI.Error.self) { try Volume<Float>(niftiImage: Self.fixtures + "/invalid/rgb.nii.gz") }
        let big = #expect(throws: NIfTI.Error.self) {
            try Volume<Float>(niftiImage: Self.fixtures + "/imagesTr/case_a.nii.gz", maxVoxels: 719)
        }
        #expect(big?.message.contains("more than 719") == true)
    }
}
