import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Resample and resize", .computeBound)
struct ResampleTests {
    static let centre = Vector3(-18.2, 6.3, 48.9)
    static let radius = 20.0
    static let geometry = obliqueGeometry(SIMD3(96, 96, 56))
    static let phantom = spherePhantom(geometry, centre: centre, radius: radius)

    @Test(
        "A sphere resampled to 1.5 mm keeps its volume (±2 %) and centroid (± half a voxel)",
        arguments: [Interpolation.linear, .cubic])
    func sphereInvariants(interpolation: Interpolation) throws {
        let truth = 4.0 / 3 * Double.pi * pow(Self.radius, 3) / 1000
        let before = volumeAndCentroid(Self.phantom)
        #expect(abs(before.millilitres - truth) / truth < 0.01)
        let out = try Resample(spacing: Vector3(1.5, 1.5, 1.5), interpolation: interpolation)
            .apply(Sample(image: Self.phantom))
        #expect(out.image.geometry.spacing == Vector3(1.5, 1.5, 1.5))
        #expect(out.image.geometry.dimensions == SIMD3(45, 45, 47))
        let after = volumeAndCentroid(out.image)
        #expect(abs(after.millilitres - truth) / truth < 0.02, "\(after.millilitres) mL vs \(truth) mL")
        #expect((after.centroid - Self.centre).length < 0.75, "centroid \(after.centroid) vs \(Self.centre)")
        #expect(!out.image.voxels.contains { !$0.isFinite })
    }

    @Test("A label sphere resampled with nearest keeps its volume (±2 %) and centroid; mapped back ≥ 99 % equal")
    func labelRoundTrip() throws {
        let label = Volume<UInt8>(geometry: Self.geometry, voxels: Self.phantom.voxels.map { $0 >= 0.5 ? 1 : 0 })
        let truth = 4.0 / 3 * Double.pi * pow(Self.radius, 3) / 1000
        let out = try Resample(spacing: Vector3(1.5, 1.5, 1.5)).apply(Sample(image: Self.phantom, label: label))
        let resampled = try #require(out.label)
        let (ml, centroid) = labelVolume(resampled)
        #expect(abs(ml - truth) / truth < 0.02, "\(ml) mL vs \(truth) mL")
        #expect((centroid - Self.centre).length < 0.75)
        let back = try out.inverse(resampled)
        #expect(back.geometry == Self.geometry)
        let equal = zip(back.voxels, label.voxels).filter { $0 == $1 }.count
        #expect(Double(equal) / Double(label.voxels.count) >= 0.99, "\(equal) of \(label.voxels.count)")
    }

    @Test("Resample keeps origin and direction; output voxel i sits at source index i·s′/s")
    func geometryUpdated() throws {
        let g = Self.geometry
        let out = try Resample(spacing: Vector3(1.0, 2.0, 0.5)).outputGeometry(for: g)
        #expect(out.origin == g.origin && out.direction == g.direction)
        #expect(out.dimensions == SIMD3(67, 34, 140))
        for (i, j, k) in [(0, 0, 0), (10, 5, 3), (66, 33, 139)] {
            let p = out.position(Double(i), Double(j), Double(k))
            let q = g.position(Double(i) * 1.0 / 0.7, Double(j) * 2.0 / 0.7, Double(k) * 0.5 / 1.25)
            #expect((p - q).length < 1e-9)
        }
    }

    @Test("Resize keeps the field of view: the outer faces of the grid do not move")
    func resizeFieldOfView() throws {
        let g = Self.geometry
        let out = try Resize(shape: SIMD3(64, 32, 20)).outputGeometry(for: g)
        #expect(out.dimensions == SIMD3(64, 32, 20))
        #expect((out.position(-0.5, -0.5, -0.5) - g.position(-0.5, -0.5, -0.5)).length < 1e-9)
        #expect((out.position(63.5, 31.5, 19.5) - g.position(95.5, 95.5, 55.5)).length < 1e-9)
        let resized = try Resize(shape: SIMD3(64, 32, 20)).apply(Sample(image: Self.phantom))
        let truth = 4.0 / 3 * Double.pi * pow(Self.radius, 3) / 1000
        #expect(abs(volumeAndCentroid(resized.image).millilitres - truth) / truth < 0.02)
    }

    @Test(
        "Linear and cubic reproduce a linear ramp exactly inside the grid (upsampling, no filter)",
        arguments: [Interpolation.linear, .cubic])
    func ramp(interpolation: Interpolation) throws {
        let g = VolumeGeometry(dimensions: SIMD3(12, 10, 8), origin: Vector3(1, 2, 3), spacing: Vector3(1, 1.5, 2))
        let image = makeVolume(g) { i, j, k in Float(2 * i - 3 * j + 5 * k) }
        let out = try Resample(spacing: Vector3(0.4, 0.6, 0.7), interpolation: interpolation, antiAlias: false)
            .apply(Sample(image: image))
        let o = out.image.geometry
        for k in 0..<o.dimensions.z {
            for j in 0..<o.dimensions.y {
                for i in 0..<o.dimensions.x {
                    let u = Vector3(Double(i) * 0.4, Double(j) * 0.6 / 1.5, Double(k) * 0.7 / 2)
                    // Cubic needs two source voxels on each side: edge replication bends the ramp in the outer voxel.
                    let inner = interpolation == .cubic ? 1.0 : 0.0
                    guard u.x <= 11 - inner, u.y <= 9 - inner, u.z <= 7 - inner, u.min() >= inner else { continue }
                    let expected = 2 * u.x - 3 * u.y + 5 * u.z
                    #expect(abs(Double(out.image[i, j, k]) - expected) < 1e-3)
                }
            }
        }
    }

    @Test("The axis-aligned fast path and the general affine path agree")
    func fastMatchesGeneral() throws {
        let g = VolumeGeometry(dimensions: SIMD3(20, 18, 9), origin: Vector3(0, 0, 0), spacing: Vector3(0.7, 0.7, 1.25))
        let image = makeVolume(g) { i, j, k in Float(sin(Double(i) * 0.5) * cos(Double(j) * 0.3) + Double(k)) }
        // Fused per-slice passes (many output slices), the three-pass path (few), identity axes in both.
        let spacings = [
            Vector3(1.5, 1.1, 0.9), Vector3(0.7, 1.1, 5.0), Vector3(1.5, 0.7, 0.9), Vector3(1.3, 0.7, 1.25),
        ]
        for spacing in spacings {
            let target = try Resample(spacing: spacing).outputGeometry(for: g)
            for antiAlias in [false, true] {
                let fast = try Resampler.resample(image, onto: target, interpolation: .linear, antiAlias: antiAlias)
                let map = try #require(IndexMap(from: target, to: g))
                let general = Resampler.resample(
                    image, onto: target, map: map, interpolation: .linear,
                    antiAlias: antiAlias, outside: .clamp,
                    displacement: DisplacementField(
                        control: SIMD3(2, 2, 2),
                        output: target.dimensions,
                        values: Array(repeating: .zero, count: 8)))
                let worst = zip(fast.voxels, general.voxels).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-4, "\(spacing) anti-alias \(antiAlias): \(worst)")
            }
        }
    }

    @Test("Resampling onto a rotated grid and back is close (general path, both directions)")
    func obliqueRoundTrip() throws {
        let g = Self.geometry
        var rotated = g
        rotated.direction = (Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, 1))
        rotated.origin = g.position(0, 0, 0) - Vector3(10, 10, 0)
        rotated.dimensions = SIMD3(110, 110, 56)
        let there = try Self.phantom.resampled(onto: rotated, antiAlias: false)
        let truth = 4.0 / 3 * Double.pi * pow(Self.radius, 3) / 1000
        let (ml, centroid) = volumeAndCentroid(there)
        #expect(abs(ml - truth) / truth < 0.02 && (centroid - Self.centre).length < 0.35)
    }

    @Test("Zero or negative spacing is an error naming the transform and value")
    func badSpacing() {
        let g = Self.geometry
        do {
            _ = try Resample(spacing: Vector3(1.5, 0, 1.5)).apply(Sample(image: Volume(geometry: g, repeating: 0)))
            Issue.record("no error")
        } catch {
            #expect(error.code == .invalidSpacing)
            #expect(error.description.contains("Resample") && error.description.contains("0.0"))
        }
        var bad = g
        bad.spacing.z = -1
        #expect(throws: VolumesError.self) {
            try Resample(spacing: Vector3(1, 1, 1)).apply(Sample(image: Volume(geometry: bad, repeating: 0)))
        }
        var singular = g
        singular.direction.z = singular.direction.x
        do {
            _ = try Resample(spacing: Vector3(1, 1, 1)).apply(Sample(image: Volume(geometry: singular, repeating: 0)))
            Issue.record("no error")
        } catch { #expect(error.code == .singularDirection) }
        #expect(throws: VolumesError.self) {
            try Resize(shape: SIMD3(0, 4, 4)).apply(Sample(image: Volume(geometry: g, repeating: 0)))
        }
        var nan = Volume<Float>(geometry: g, repeating: 0)
        nan.voxels[1234] = .nan
        do {
            _ = try Resample(spacing: Vector3(1.5, 1.5, 1.5)).apply(Sample(image: nan))
            Issue.record("no error")
        } catch { #expect(error.code == .nonFinite) }
    }

    @Test("Slices along each axis have the right pixels and positions", arguments: Axis.allCases)
    func slices(axis: Axis) throws {
        let g = obliqueGeometry(SIMD3(5, 4, 3))
        let image = makeVolume(g) { i, j, k in Float(i * 100 + j * 10 + k) }
        let s = try image.slice(along: axis, at: 1)
        for row in 0..<s.height {
            for column in 0..<s.width {
                let (i, j, k): (Int, Int, Int) =
                    axis == .z
                    ? (column, row, 1)
                    : axis == .y ? (column, 1, row) : (1, column, row)
                #expect(s[column, row] == image[i, j, k])
                let p =
                    s.origin + Double(column) * s.spacing.x * s.rowDirection
                    + Double(row) * s.spacing.y * s.columnDirection
                #expect((p - g.position(Double(i), Double(j), Double(k))).length < 1e-9)
            }
        }
        #expect(throws: VolumesError.self) { try image.slice(along: axis, at: 7) }
    }
}
