import DICOMIO
import Foundation
import SampleData
import Testing
import Volumes

@Suite("Sample data")
struct SampleDataTests {
    let sampleRoot = repositoryRoot + "/sample-data"

    @Test("Regenerating with the default seed reproduces the committed sample-data/ byte for byte")
    func reproducible() throws {
        let dir = try temporaryFolder()
        defer { removeTemporary(dir) }
        let outputs = try SampleDataGenerator().generate(into: dir)
        #expect(outputs.count == 15)
        let fm = FileManager.default
        let committed = try DirectoryScanner().listFiles(sampleRoot).map { String($0.dropFirst(sampleRoot.count)) }
        let fresh = try DirectoryScanner().listFiles(dir).map { String($0.dropFirst(dir.count)) }
        #expect(committed == fresh)
        var differing: [String] = []
        for name in fresh where fm.contents(atPath: dir + name) != fm.contents(atPath: sampleRoot + name) {
            differing.append(name)
        }
        #expect(differing.isEmpty, "differ: \(differing.prefix(5))")
    }

    @Test(
        "Every site: series without problems, one SEG per series, labels on the organs",
        arguments: ["community-hospital", "research-center", "treatment-center"])
    func sites(site: String) throws {
        let report = try FolderInspection(folder: sampleRoot + "/" + site)
        #expect(report.skipped.isEmpty)
        #expect(report.series.count >= 4)
        for s in report.series {
            #expect(s.problems.isEmpty, "\(s.seriesInstanceUID): \(s.problems.map(\.message))")
            #expect(s.segmentations.count == 1)
        }
        #expect(
            report.segmentations.allSatisfy { $0.problems.isEmpty && $0.segments.map(\.label) == ["Liver", "Spleen"] })
        // First patient: the liver label covers liver-like HU (portal venous ~105 HU ± site calibration and noise).
        let all = SeriesAssembler().assemble(try DirectoryScanner().scan(sampleRoot + "/" + site).instances)
        let seg = try #require(report.series.first?.segmentations.first)
        let image = try Volume<Float>(series: all[0])
        let labels = try Volume<UInt8>.labels(segmentation: seg, series: all[0]).volume
        for (label, low, high) in [(UInt8(1), 80.0, 130.0), (UInt8(2), 90.0, 140.0)] {
            let values = zip(image.voxels, labels.voxels).filter { $0.1 == label }.map { Double($0.0) }
            #expect(values.count > 500)
            let mean = values.reduce(0, +) / Double(values.count)
            #expect(mean > low && mean < high, "label \(label) mean HU \(mean)")
        }
        let outside = zip(image.voxels, labels.voxels).filter { $0.1 == 0 }.map { Double($0.0) }
        #expect(outside.reduce(0, +) / Double(outside.count) < -200)
    }
}

@Suite("Sample data validates with dciodvfy (dicom3tools)")
struct SampleDataValidationTests {
    /// dciodvfy checks every IOD module and attribute against PS3.3; `make test` installs it (Debian dicom3tools).
    static let dciodvfy = ["/usr/bin/dciodvfy", "/usr/local/bin/dciodvfy"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    @Test(
        "Every SEG and the first and last CT slices of every study: no errors, no warnings",
        .enabled(if: dciodvfy != nil, "dicom3tools is not installed (make test installs it)"))
    func validate() throws {
        let tool = try #require(Self.dciodvfy)
        let root = repositoryRoot + "/sample-data"
        var files: [String] = []
        for site in ["community-hospital", "research-center", "treatment-center"] {
            let report = try FolderInspection(folder: root + "/" + site)
            files += report.segmentations.map(\.path)
            for s in SeriesAssembler().assemble(try DirectoryScanner().scan(root + "/" + site).instances) {
                files += [s.instances.first!.path, s.instances.last!.path]
            }
        }
        #expect(files.count == 15 * 3)
        // The screening cohorts (CT only): the first and last slices of each site's first and last study.
        for site in ["community-hospital", "research-center", "treatment-center"] {
            let folder = root + "/classification/" + site
            let series = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
            #expect(series.count >= 28, "\(site): \(series.count) screening studies")
            for s in [series.first, series.last].compactMap({ $0 }) {
                files += [s.instances.first!.path, s.instances.last!.path]
            }
        }
        for file in files {
            let findings = try dciodvfyFindings(tool: tool, file: file)
            #expect(findings.isEmpty, "\(file): \(findings.prefix(3))")
        }
    }
}
