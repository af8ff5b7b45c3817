import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Crop and pad", .computeBound)
struct CropPadTests {
    let geometry = obliqueGeometry(SIMD3(20, 16, 10))

    func sample() -> Sample {
        let image = makeVolume(geometry) { i, j, k in
            (5...9).contains(i) && (4...6).contains(j) && (2...3).contains(k) ? 100 : -1000
        }
        let label = Volume<UInt8>(
            geometry: geometry,
            voxels: image.voxels.enumerated().map { index, v in
                v > 0 && index % 2 == 0 ? 2 : 0
            })
        return Sample(image: image, label: label)
    }

    @Test("Centre crop/pad: shape, origin at the box's first voxel, every kept voxel at its position")
    func centre() throws {
        let s = sample()
        let out = try CropPad(shape: SIMD3(8, 24, 10)).apply(s)
        let g = out.image.geometry
        #expect(g.dimensions == SIMD3(8, 24, 10))
        // x cropped from 20 to 8 (offset 6), y padded from 16 to 24 (offset −4).
        #expect((g.origin - geometry.position(6, -4, 0)).length < 1e-9)
        #expect(out.image[0, 4, 0] == s.image[6, 0, 0])
        #expect(out.image[0, 0, 0] == -1000)  // padding = image minimum
        #expect(out.label?[0, 0, 0] == 0)
        #expect(expectSamePositions(out.image, s.image) == 8 * 16 * 10)
        #expect(expectSamePositions(try #require(out.label), try #require(s.label)) == 8 * 16 * 10)
        let back = try out.inverse(out.image, fill: -1024)
        #expect(back.geometry == geometry)
        for k in 0..<10 {
            for j in 0..<16 {
                for i in 0..<20 {
                    #expect(back[i, j, k] == ((6..<14).contains(i) ? s.image[i, j, k] : -1024))
                }
            }
        }
    }

    @Test("Foreground crop with margin: the bounding box of voxels above the threshold, grown and clipped")
    func foreground() throws {
        let out = try CropPad(region: .foreground(threshold: -500), margin: SIMD3(1, 1, 3)).apply(sample())
        #expect(out.image.geometry.dimensions == SIMD3(7, 5, 7))
        #expect((out.image.geometry.origin - geometry.position(4, 3, 0)).length < 1e-9)
        #expect(expectSamePositions(out.image, sample().image) == 7 * 5 * 7)
    }

    @Test("Label crop to a fixed shape centres the label; inverse restores the label exactly")
    func label() throws {
        let s = sample()
        let out = try CropPad(region: .label(2), shape: SIMD3(6, 6, 4)).apply(s)
        let labels = try #require(out.label)
        #expect(labels.voxels.filter { $0 == 2 }.count == s.label?.voxels.filter { $0 == 2 }.count)
        #expect(expectSamePositions(labels, try #require(s.label)) == 6 * 6 * 4)
        let back = try out.inverse(labels)
        #expect(back.voxels == s.label?.voxels)
    }

    @Test("Empty masks and bad shapes are clear errors")
    func errors() {
        var s = sample()
        s.label = Volume(geometry: geometry, repeating: 0)
        do {
            _ = try CropPad(region: .label(nil)).apply(s)
            Issue.record("no error")
        } catch {
            #expect(error.code == .emptyMask && error.description.contains("CropPad(label)"))
        }
        do {
            _ = try CropPad(region: .foreground(threshold: 5000)).apply(s)
            Issue.record("no error")
        } catch {
            #expect(error.code == .emptyMask && error.description.contains("5000"))
        }
        #expect(throws: VolumesError.self) { try CropPad(shape: SIMD3(0, 1, 1)).apply(s) }
    }
}
