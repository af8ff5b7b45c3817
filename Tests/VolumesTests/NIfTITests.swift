import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

@Suite("NIfTI-1 export", .computeBound)
struct NIfTITests {
    func temporary(_ name: String) -> String { NSTemporaryDirectory() + "tessera-nifti-\(UUID().uuidString)-" + name }

    /// An oblique, anisotropic grid: rotation of 0.3 rad about z, spacing 0.7 × 0.8 × 2.5 mm.
    let geometry = VolumeGeometry(
        dimensions: SIMD3(5, 4, 3), origin: Vector3(-10, 20, 30), spacing: Vector3(0.7, 0.8, 2.5),
        direction: (Vector3(cos(0.3), sin(0.3), 0), Vector3(-sin(0.3), cos(0.3), 0), Vector3(0, 0, 1)))

    @Test("sform is the voxel → RAS affine: LPS with x and y negated (hand-computed)")
    func sform() throws {
        let path = temporary("a.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let volume = Volume<Float>(geometry: geometry, voxels: (0..<60).map(Float.init))
        try NIfTI.write(volume, to: path)
        let file = try NIfTI.read(path)
        let c = cos(0.3)
        let s = sin(0.3)
        let expected: [[Double]] = [
            [-0.7 * c, 0.8 * s, 0, 10],
            [-0.7 * s, -0.8 * c, 0, -20],
            [0, 0, 2.5, 30],
        ]
        for r in 0..<3 { for k in 0..<4 { #expect(abs(file.sform[r][k] - expected[r][k]) < 1e-5) } }
        #expect(file.sformCode == 1 && file.qformCode == 1)
        #expect(file.dimensions == SIMD3(5, 4, 3))
        #expect(file.datatype == 16)
        #expect(try file.floats() == volume.voxels)
    }

    @Test("qform quaternion reproduces the sform rotation (nifti1_io's quatern_to_mat44)")
    func qform() throws {
        let path = temporary("q.nii.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NIfTI.write(Volume<UInt8>(geometry: geometry, repeating: 3), to: path)
        let f = try NIfTI.read(path)
        let (b, c, d) = f.quaternion
        let a = max(0, 1 - (b * b + c * c + d * d)).squareRoot()
        let r: [[Double]] = [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
        let scale = [f.spacing.x, f.spacing.y, f.spacing.z * f.qfac]
        for row in 0..<3 {
            for col in 0..<3 { #expect(abs(r[row][col] * scale[col] - f.sform[row][col]) < 1e-5) }
            #expect(abs([f.qoffset.x, f.qoffset.y, f.qoffset.z][row] - f.sform[row][3]) < 1e-5)
        }
        #expect(f.datatype == 2)
        #expect(f.data == [UInt8](repeating: 3, count: 60))
    }

    @Test("A left-handed grid gets qfac = -1; a sheared grid gets no qform but an exact sform")
    func handednessAndShear() throws {
        var flipped = geometry
        flipped.direction.z = Vector3(0, 0, -1)
        let path = temporary("f.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NIfTI.write(Volume<UInt8>(geometry: flipped, repeating: 0), to: path)
        #expect(try NIfTI.read(path).qfac == -1)
        var sheared = geometry
        sheared.direction.z = Vector3(0, sin(0.26), cos(0.26))
        try NIfTI.write(Volume<UInt8>(geometry: sheared, repeating: 0), to: path)
        let f = try NIfTI.read(path)
        #expect(f.qformCode == 0 && f.sformCode == 1)
        #expect(abs(f.sform[1][2] - -2.5 * sin(0.26)) < 1e-5)
    }

    @Test("Writing to a folder that does not exist is a clear error")
    func badPath() {
        #expect(throws: NIfTI.Error.self) {
            try NIfTI.write(Volume<UInt8>(geometry: geometry, repeating: 0), to: "/nonexistent/dir/x.nii.gz")
        }
    }
}
