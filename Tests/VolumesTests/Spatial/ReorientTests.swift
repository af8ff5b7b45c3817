import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Reorient", .computeBound)
struct ReorientTests {
    /// A sagittal acquisition: rows along −P... i → anterior (−y), j → inferior (−z), k → left (+x), anisotropic.
    let sagittal = VolumeGeometry(
        dimensions: SIMD3(5, 4, 3), origin: Vector3(10, -20, 30), spacing: Vector3(0.8, 0.9, 2.5),
        direction: (Vector3(0, -1, 0), Vector3(0, 0, -1), Vector3(1, 0, 0)))

    @Test(
        "Reorienting a sagittal grid to LPS and RAS: directions canonical, every voxel keeps its position",
        arguments: [Orientation.lps, .ras])
    func positionsKept(orientation: Orientation) throws {
        let image = makeVolume(sagittal) { i, j, k in Float((k * 4 + j) * 5 + i) }  // unique values
        let out = try Reorient(to: orientation).apply(
            Sample(
                image: image,
                label: Volume(
                    geometry: sagittal, voxels: image.voxels.map { UInt8($0) })))
        let g = out.image.geometry
        let signs = orientation == .lps ? [1.0, 1, 1] : [-1.0, -1, 1]
        #expect(g.direction.x == Vector3(signs[0], 0, 0) || g.direction.x == Vector3(signs[0], -0.0, -0.0))
        #expect(
            abs(g.direction.x.x - signs[0]) < 1e-12 && abs(g.direction.y.y - signs[1]) < 1e-12
                && abs(g.direction.z.z - signs[2]) < 1e-12)
        #expect(g.dimensions == SIMD3(3, 5, 4))
        #expect(g.spacing == Vector3(2.5, 0.8, 0.9))
        #expect(expectSamePositions(out.image, image) == 60)
        for k in 0..<g.dimensions.z {
            for j in 0..<g.dimensions.y {
                for i in 0..<g.dimensions.x {
                    let value = Int(out.image[i, j, k])
                    let (si, sj, sk) = (value % 5, (value / 5) % 4, value / 20)
                    let moved = g.position(Double(i), Double(j), Double(k))
                    let original = sagittal.position(Double(si), Double(sj), Double(sk))
                    #expect((moved - original).length < 1e-9)
                    #expect(out.label?[i, j, k] == UInt8(value))
                }
            }
        }
    }

    @Test("Reorient then inverse returns the original grid and voxels exactly")
    func inverseExact() throws {
        let image = makeVolume(sagittal) { i, j, k in Float(i * 100 + j * 10 + k) }
        let label = Volume(geometry: sagittal, voxels: image.voxels.map { UInt8(Int($0) % 251) })
        var pipeline = VolumePipeline([Reorient(to: .ras), Reorient(to: .lps), Reorient(to: .ras)])
        let out = try pipeline.apply(Sample(image: image, label: label))
        let back = try out.inverse(out.image)
        #expect(back.geometry == sagittal)
        #expect(back.voxels == image.voxels)
        let labelsBack = try out.inverse(try #require(out.label))
        #expect(labelsBack.geometry == sagittal && labelsBack.voxels == label.voxels)
    }

    @Test("A 45° oblique grid cannot be reoriented exactly: a clear error")
    func ambiguous() {
        let s = 0.5.squareRoot()
        let g = VolumeGeometry(
            dimensions: SIMD3(2, 2, 2), origin: .zero, spacing: Vector3(1, 1, 1),
            direction: (Vector3(s, s, 0), Vector3(s, s + 1e-9, 1e-3).normalized, Vector3(0, 0, 1)))
        #expect(throws: VolumesError.self) {
            try Reorient(to: .lps).apply(Sample(image: Volume(geometry: g, repeating: 0)))
        }
    }
}
