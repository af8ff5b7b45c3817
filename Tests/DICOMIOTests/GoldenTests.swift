import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// Every fixture against golden values computed independently with pydicom + numpy by
/// scripts/reference/dicom_golden.py (provenance in the JSON's "provenance" block: pydicom 3.0.2, numpy 2.4.6,
/// pylibjpeg plugins, run 2026-11-21). Lossless volumes must match the reference's SHA-256 of the float32 bytes
/// exactly; lossy ones (decoders legitimately differ) within stated tolerances.
@Suite("Golden values from pydicom", .computeBound)
struct GoldenTests {
    struct Golden: Decodable {
        struct Series: Decodable {
            var dimensions: [Int]
            var spacing: [Double]
            var origin: [Double]
            var direction: [Double]
            var min: Double
            var max: Double
            var mean: Double
            var sha256: String
            var lossy: Bool
            var warnings: [String]
        }
        struct SEG: Decodable {
            var referenced_series: String
            var segments: [String: String]
            var voxels_per_label: [String: Int]
            var sha256: String
        }
        struct Case: Decodable {
            var series: [String: Series]
            var segmentations: [String: SEG]
        }
        var cases: [String: Case]
    }

    static let golden: Golden? = {
        let path = repositoryRoot + "/Tests/DICOMIOTests/Golden/dicom_golden.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Golden.self, from: data)
    }()

    static var caseNames: [String] { (golden?.cases.keys).map { Array($0).sorted() } ?? [] }

    @Test("The golden file is present and covers every fixture case")
    func coverage() throws {
        let golden = try #require(Self.golden)
        let folders = try FileManager.default.contentsOfDirectory(atPath: fixturesRoot).filter { !$0.hasPrefix(".") }
        #expect(Set(golden.cases.keys) == Set(folders))
        #expect(golden.cases.count >= 20)
    }

    @Test("Series geometry and voxels match pydicom", arguments: caseNames)
    func series(name: String) throws {
        let golden = try #require(Self.golden?.cases[name])
        let assembled = try DICOMIOTests.series(in: fixture(name))
        #expect(Set(assembled.map(\.seriesInstanceUID)) == Set(golden.series.keys))
        for s in assembled {
            let want = try #require(golden.series[s.seriesInstanceUID])
            let stack = try s.primaryStack()
            if !stack.isUsable {
                // We refuse what pydicom would silently stack; the reference flags it too.
                #expect(!want.warnings.isEmpty, "\(name): we block \(stack.problems) but pydicom saw no problem")
                continue
            }
            let volume = try Volume<Float>(series: s)
            let g = volume.geometry
            #expect([g.dimensions.x, g.dimensions.y, g.dimensions.z] == want.dimensions)
            let ours = [
                g.spacing.x, g.spacing.y, g.spacing.z, g.origin.x, g.origin.y, g.origin.z,
                g.direction.x.x, g.direction.x.y, g.direction.x.z, g.direction.y.x, g.direction.y.y,
                g.direction.y.z, g.direction.z.x, g.direction.z.y, g.direction.z.z,
            ]
            let theirs = want.spacing + want.origin + want.direction
            for (a, b) in zip(ours, theirs) { #expect(abs(a - b) < 1e-5, "\(name): geometry \(ours) vs \(theirs)") }
            let stats = volume.statistics
            if want.lossy {
                // pylibjpeg and DCMTK's IJG decoders differ by up to 2 stored units on these files.
                let range = want.max - want.min
                #expect(abs(stats.mean - want.mean) < 0.002 * range, "\(name): mean \(stats.mean) vs \(want.mean)")
                #expect(abs(Double(stats.minimum) - want.min) < 0.01 * range)
                #expect(abs(Double(stats.maximum) - want.max) < 0.01 * range)
            } else {
                #expect(sha256Hex(floatBytes(volume.voxels)) == want.sha256, "\(name): voxels differ from pydicom")
                #expect(Double(stats.minimum) == want.min && Double(stats.maximum) == want.max)
                #expect(abs(stats.mean - want.mean) < 1e-6 * max(1, abs(want.mean)))
            }
        }
    }

    @Test("SEG label volumes match pydicom", arguments: caseNames)
    func segmentations(name: String) throws {
        let golden = try #require(Self.golden?.cases[name])
        guard !golden.segmentations.isEmpty else { return }
        let report = try FolderInspection(folder: fixture(name))
        let assembled = try DICOMIOTests.series(in: fixture(name))
        for seg in report.segmentations {
            let want = try #require(golden.segmentations[seg.sopInstanceUID])
            let series = try #require(assembled.first { $0.seriesInstanceUID == want.referenced_series })
            let labels = try Volume<UInt8>.labels(segmentation: seg.path, series: series)
            #expect(sha256Hex(labels.volume.voxels) == want.sha256)
            #expect(
                Dictionary(uniqueKeysWithValues: labels.segments.map { (String($0.number), $0.label) }) == want.segments
            )
            for (label, count) in want.voxels_per_label {
                #expect(labels.volume.voxels.filter { String($0) == label }.count == count)
            }
        }
    }
}
