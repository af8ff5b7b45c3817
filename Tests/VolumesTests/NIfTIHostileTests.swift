import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// NIfTI-1 limits and consistency on grids from hostile or unusual DICOM headers (issue #11).
@Suite("NIfTI-1 limits", .computeBound)
struct NIfTIHostileTests {
    func temporary(_ name: String) -> String { NSTemporaryDirectory() + "tessera-nifti-\(UUID().uuidString)-" + name }

    @Test("An axis above 32767 voxels (legal DICOM has 65535 columns) is a clear error, not an Int16 trap")
    func tooWide() throws {
        let path = temporary("wide.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let wide = VolumeGeometry(dimensions: SIMD3(40000, 1, 1), origin: Vector3(0, 0, 0), spacing: Vector3(1, 1, 1))
        do {
            try NIfTI.write(Volume<UInt8>(geometry: wide, repeating: 0), to: path)
            Issue.record("a 40000-voxel axis was written")
        } catch {
            #expect(
                error.message.contains("40000") && error.message.contains("32767")
                    && error.message.contains("x (columns)"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        let widest = VolumeGeometry(dimensions: SIMD3(32767, 1, 1), origin: Vector3(0, 0, 0), spacing: Vector3(1, 1, 1))
        try NIfTI.write(Volume<UInt8>(geometry: widest, repeating: 1), to: path)
        #expect(try NIfTI.read(path).dimensions == SIMD3(32767, 1, 1))
    }

    @Test("A non-finite grid is refused")
    func nonFinite() {
        let bad = VolumeGeometry(dimensions: SIMD3(2, 2, 2), origin: Vector3(0, 0, .nan), spacing: Vector3(1, 1, 1))
        #expect(throws: NIfTI.Error.self) {
            try NIfTI.write(Volume<UInt8>(geometry: bad, repeating: 0), to: temporary("nan.nii"))
        }
    }

    @Test("A tilted series: pixdim[1...3] equal the norms of the sform's columns")
    func tiltedPixdim() throws {
        let folder = repositoryRoot + "/Tests/Fixtures/DICOM/gantry-tilt"
        let all = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
        let volume = try Volume<Float>(series: all[0])
        #expect(!volume.geometry.isOrthonormal)
        let path = temporary("tilt.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NIfTI.write(volume, to: path)
        let f = try NIfTI.read(path)
        #expect(f.qformCode == 0 && f.sformCode == 1)
        for c in 0..<3 {
            let norm = (0..<3).map { f.sform[$0][c] * f.sform[$0][c] }.reduce(0, +).squareRoot()
            #expect(abs(norm - f.spacing[c]) < 1e-5 * max(1, norm), "axis \(c): \(norm) vs \(f.spacing[c])")
        }
    }

    @Test("A hostile NIfTI header (negative dim, NaN vox_offset) is an error, not a trap")
    func hostileRead() throws {
        let path = temporary("hostile.nii")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = VolumeGeometry(dimensions: SIMD3(2, 2, 2), origin: Vector3(0, 0, 0), spacing: Vector3(1, 1, 1))
        try NIfTI.write(Volume<UInt8>(geometry: g, repeating: 0), to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func patched(_ offset: Int, _ bytes: [UInt8]) throws {
            var data = good
            data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            try data.write(to: URL(fileURLWithPath: path))
        }
        try patched(42, [0xFF, 0xFF])  // dim[1] = -1
        #expect(throws: NIfTI.Error.self) { try NIfTI.read(path) }
        try patched(108, withUnsafeBytes(of: Float.nan) { Array($0) })  // vox_offset = NaN
        #expect(throws: NIfTI.Error.self) { try NIfTI.read(path) }
        try patched(108, withUnsafeBytes(of: Float(1e30)) { Array($0) })
        #expect(throws: NIfTI.Error.self) { try NIfTI.read(path) }
    }

    @Test("Resampling a grid with a hostile spacing is an error or a bounded grid, never a trap")
    func hostileResample() throws {
        let g = VolumeGeometry(dimensions: SIMD3(4, 4, 4), origin: Vector3(0, 0, 0), spacing: Vector3(1e-300, 1, 1))
        let volume = Volume<Float>(geometry: g, repeating: 1)
        let sample = Sample(image: volume)
        // 1e-300 mm columns make the index ↔ patient map singular: refused with an error (or resampled to one
        // column); either way no Int conversion traps.
        do {
            let out = try Resample(spacing: Vector3(1.5, 1.5, 1.5)).apply(sample)
            #expect(out.image.geometry.dimensions.x == 1)
        } catch {
            #expect(error.code == .singularDirection || error.code == .invalidSpacing, "\(error)")
        }
        let huge = Resample(spacing: Vector3(0.001, 0.001, 0.001))
        #expect(throws: VolumesError.self) {
            try huge.apply(
                Sample(
                    image: Volume<Float>(
                        geometry: VolumeGeometry(
                            dimensions: SIMD3(64, 64, 64), origin: Vector3(0, 0, 0), spacing: Vector3(1, 1, 1)),
                        repeating: 0)))
        }
    }
}
