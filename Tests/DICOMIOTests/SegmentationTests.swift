import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

@testable import SampleData

@Suite("DICOM SEG", .computeBound)
struct SegmentationTests {
    /// Labels the fixture generator drew: 1 inside the sphere, 2 inside the box (higher number wins).
    func expectedLabels() -> [UInt8] {
        let spec = FixtureFactory.SeriesSpec(name: "seg")
        var out: [UInt8] = []
        for k in 0..<7 {
            for j in 0..<32 {
                for i in 0..<40 {
                    let dx = Double(i - 20) * spec.pixelSpacing.column
                    let dy = Double(j - 15) * spec.pixelSpacing.row
                    let dz = Double(k - 3) * spec.sliceSpacing
                    let sphere = (dx * dx + dy * dy + dz * dz).squareRoot() < 7
                    let box = i >= 2 && i < 9 && j >= 3 && j < 8 && k >= 1 && k < 5
                    out.append(box ? 2 : (sphere ? 1 : 0))
                }
            }
        }
        return out
    }

    @Test("BINARY and FRACTIONAL SEGs map onto the referenced series", arguments: ["seg-binary", "seg-fractional"])
    func labels(folder: String) throws {
        let all = try series(in: fixture(folder))
        #expect(all.count == 1)
        let result = try Volume<UInt8>.labels(segmentation: fixture(folder) + "/seg.dcm", series: all[0])
        #expect(result.segments.map(\.label) == ["Sphere", "Box"])
        #expect(result.volume.geometry == VolumeGeometry(stack: all[0].stacks[0]))
        let want = expectedLabels()
        let mismatches = zip(result.volume.voxels, want).filter { $0 != $1 }.count
        #expect(mismatches == 0)
        #expect(result.overlaps == 0)
    }

    @Test("SEG header: type, segments, one frame per non-empty slice and segment")
    func header() throws {
        let binary = try Segmentation(path: fixture("seg-binary") + "/seg.dcm")
        #expect(binary.kind == .binary)
        #expect(binary.instance.bitsAllocated == 1)
        #expect(binary.segments.map(\.number) == [1, 2])
        #expect(binary.segments.map(\.propertyType) == ["Liver", "Spleen"])
        // Sphere r < 7 mm spans slices 1...5 (dz = 0, ±2.5, ±5); box spans slices 1...4.
        #expect(binary.instance.numberOfFrames == 5 + 4)
        let fractional = try Segmentation(path: fixture("seg-fractional") + "/seg.dcm")
        #expect(fractional.kind == .fractional)
        #expect(fractional.maximumFractionalValue == 255)
    }

    @Test("A SEG placed by position only (no referenced SOP instance) lands on the same slices")
    func byPosition() throws {
        let all = try series(in: fixture("seg-binary"))
        let file = try DICOMFile(path: fixture("seg-binary") + "/seg.dcm", maxReadLength: 0)
        var seg = try Segmentation(file: file)
        for i in seg.instance.frames.indices { seg.instance.frames[i].referencedSOPInstanceUIDs = [] }
        let (labels, _) = try seg.labelMap(onto: all[0].stacks[0], of: all[0], file: file)
        #expect(labels == expectedLabels())
    }

    @Test("A SEG that references another series is refused with the series to pick")
    func wrongSeries() throws {
        let other = try series(in: fixture("explicit-le"))
        do {
            _ = try Volume<UInt8>.labels(segmentation: fixture("seg-binary") + "/seg.dcm", series: other[0])
            Issue.record("should fail")
        } catch {
            #expect(error.code == .segmentation)
            #expect(error.message.contains("--series"))
        }
    }
}
