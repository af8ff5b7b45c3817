import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

@testable import SampleData

@Suite("Sample data", .computeBound)
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

    /// community-hospital keeps DICOM SEGs, research-center RT Structure Sets (ROIs LIVER_GTV, spleen_1),
    /// treatment-center NIfTI label maps under labels/ (`SiteProfile.LabelStorage`).
    @Test(
        "Every site: series without problems, its labels in its own format, labels on the organs",
        arguments: ["community-hospital", "research-center", "treatment-center"])
    func sites(site: String) throws {
        let report = try FolderInspection(folder: sampleRoot + "/" + site)
        #expect(report.series.count >= 4)
        for s in report.series {
            #expect(s.problems.isEmpty, "\(s.seriesInstanceUID): \(s.problems.map(\.message))")
            #expect(s.segmentations.count == (site == "community-hospital" ? 1 : 0))
            #expect(s.structureSets.count == (site == "research-center" ? 1 : 0))
        }
        #expect(
            report.segmentations.allSatisfy { $0.problems.isEmpty && $0.segments.map(\.label) == ["Liver", "Spleen"] })
        #expect(
            report.structureSets.allSatisfy {
                $0.problems.isEmpty && $0.warnings.isEmpty && $0.rois.map(\.name) == ["LIVER_GTV", "spleen_1"]
                    && $0.rois.map(\.number) == [1, 2]
            })
        // The NIfTI label maps are the only files the scan leaves out (not DICOM).
        #expect(
            report.skipped.map { ($0.path as NSString).lastPathComponent }.sorted()
                == (site == "treatment-center"
                    ? (1...report.series.count).map { String(format: "TC-%04d.nii.gz", $0) } : []))
        // First patient: the liver label covers liver-like HU (portal venous ~105 HU ± site calibration and noise).
        let all = SeriesAssembler().assemble(try DirectoryScanner().scan(sampleRoot + "/" + site).instances)
        let image = try Volume<Float>(series: all[0])
        let labels: Volume<UInt8>
        switch site {
        case "community-hospital":
            let seg = try #require(report.series.first?.segmentations.first)
            labels = try Volume<UInt8>.labels(segmentation: seg, series: all[0]).volume
        case "research-center":
            let path = try #require(report.series.first?.structureSets.first)
            let mapping = try ROILabelMapping(entries: [
                .init(label: 1, name: "Liver", synonyms: ["LIVER_GTV"]),
                .init(label: 2, name: "Spleen", synonyms: ["spleen_1"]),
            ])
            let filled = try Volume<UInt8>.labels(
                structureSet: StructureSet(path: path), series: all[0], mapping: mapping)
            #expect(filled.warnings.isEmpty && filled.overlaps == 0)
            labels = filled.volume
        default:
            let patient = try #require(all[0].instances.first?.tags["PatientID"])
            labels = try Volume<UInt8>(
                niftiLabels: sampleRoot + "/" + site + "/labels/" + patient + ".nii.gz", matching: image.geometry)
        }
        for (label, low, high) in [(UInt8(1), 80.0, 130.0), (UInt8(2), 90.0, 140.0)] {
            let values = zip(image.voxels, labels.voxels).filter { $0.1 == label }.map { Double($0.0) }
            #expect(values.count > 500)
            let mean = values.reduce(0, +) / Double(values.count)
            #expect(mean > low && mean < high, "label \(label) mean HU \(mean)")
        }
        let outside = zip(image.voxels, labels.voxels).filter { $0.1 == 0 }.map { Double($0.0) }
        #expect(outside.reduce(0, +) / Double(outside.count) < -200)
    }

    @Test("research-center's RTSTRUCTs and treatment-center's NIfTI maps hold the generator's labels exactly")
    func labelFormatsAgree() throws {
        // Each study's label map as the generator builds it (from the phantom's masks) against what the readers
        // give back from the committed files: the SEG site is covered by the byte-for-byte test above.
        let generator = SampleDataGenerator()
        for (siteIndex, site) in generator.sites.enumerated() where site.labels != .segmentation {
            let dir = try temporaryFolder()
            defer { removeTemporary(dir) }
            let output = try generator.generatePatient(site: site, siteIndex: siteIndex, index: 0, root: dir)
            let all = SeriesAssembler().assemble(try output.imagePaths.map { try ImageInstance(path: $0) })
            let series = try #require(all.first)
            let image = try Volume<Float>(series: series)
            let back: Volume<UInt8>
            if case .nifti = site.labels {
                back = try Volume<UInt8>(niftiLabels: output.segmentationPath, matching: image.geometry)
            } else {
                back = try Volume<UInt8>.labels(
                    structureSet: StructureSet(path: output.segmentationPath), series: series
                ).volume
            }
            #expect(back.voxels.filter { $0 == 1 }.count == output.liverVoxels, "\(site.name)")
            #expect(back.voxels.filter { $0 == 2 }.count == output.spleenVoxels, "\(site.name)")
        }
    }
}

@Suite("Sample data validates with dciodvfy (dicom3tools)", .computeBound)
struct SampleDataValidationTests {
    /// dciodvfy checks every IOD module and attribute against PS3.3; `make test` installs it (Debian dicom3tools).
    static let dciodvfy = ["/usr/bin/dciodvfy", "/usr/local/bin/dciodvfy"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    @Test(
        "Every SEG and RTSTRUCT and the first and last CT slices of every study: no errors, no warnings",
        .enabled(if: dciodvfy != nil, "dicom3tools is not installed (make test installs it)"))
    func validate() throws {
        let tool = try #require(Self.dciodvfy)
        let root = repositoryRoot + "/sample-data"
        var files: [String] = []
        for site in ["community-hospital", "research-center", "treatment-center"] {
            let report = try FolderInspection(folder: root + "/" + site)
            files += report.segmentations.map(\.path) + report.structureSets.map(\.path)
            for s in SeriesAssembler().assemble(try DirectoryScanner().scan(root + "/" + site).instances) {
                files += [s.instances.first!.path, s.instances.last!.path]
            }
        }
        #expect(files.count == 6 * 3 + 4 * 3 + 5 * 2)
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
