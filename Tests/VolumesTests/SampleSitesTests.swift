import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

/// The shipped pipeline YAML on the committed sample sites (DICOM CT from three simulated hospitals whose scanners
/// differ in spacing, orientation and calibration, with labels as a DICOM SEG, an RTSTRUCT or a NIfTI label map):
/// the same canonical grid for all, and the labels mapped back onto each original DICOM grid.
@Suite("Pipeline on the sample sites", .computeBound)
struct SampleSitesTests {
    @Test(
        "Preprocessing gives every site the canonical grid; labels keep their volume and map back ≥ 99 %",
        arguments: ["community-hospital", "research-center", "treatment-center"])
    func site(name: String) throws {
        let folder = repositoryRoot + "/sample-data/" + name
        let report = try FolderInspection(folder: folder)
        let all = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
        let first = try #require(report.series.first)
        let chosen = try #require(all.first { $0.seriesInstanceUID == first.seriesInstanceUID })
        let image = try Volume<Float>(series: chosen)
        let labels: Volume<UInt8>
        if let seg = first.segmentations.first {
            labels = try Volume<UInt8>.labels(segmentation: seg, series: chosen).volume
        } else if let rtstruct = first.structureSets.first {
            labels = try Volume<UInt8>.labels(structureSet: StructureSet(path: rtstruct), series: chosen).volume
        } else {
            let patient = try #require(chosen.instances.first?.tags["PatientID"])
            labels = try Volume<UInt8>(niftiLabels: folder + "/labels/\(patient).nii.gz", matching: image.geometry)
        }

        let configuration = try PreprocessingConfiguration(
            contentsOf: repositoryRoot + "/pipelines/segmentation-unet2d.yaml")
        var pipeline = configuration.preprocessingPipeline()
        let out = try pipeline.apply(Sample(image: image, label: labels))
        let g = out.image.geometry
        #expect(g.dimensions == SIMD3(128, 128, 48))
        #expect(g.spacing == Vector3(2.8, 2.8, 4.0))
        // RAS: x → right (−L), y → anterior (−P), z → superior, within the acquisition's obliquity.
        #expect(g.direction.x.x < -0.9 && g.direction.y.y < -0.9 && g.direction.z.z > 0.9)
        #expect(out.image.voxels.allSatisfy { $0 >= 0 && $0 <= 1 })

        let label = try #require(out.label)
        for value in [UInt8(1), 2] {
            let before = Double(labels.voxels.filter { $0 == value }.count) * labels.geometry.voxelVolume
            let after = Double(label.voxels.filter { $0 == value }.count) * label.geometry.voxelVolume
            #expect(abs(after - before) / before < 0.02, "\(name) label \(value): \(before) → \(after) mm³")
        }
        let back = try out.inverse(label)
        #expect(back.geometry == labels.geometry)
        let equal = zip(back.voxels, labels.voxels).filter { $0 == $1 }.count
        #expect(Double(equal) / Double(labels.voxels.count) >= 0.99, "\(name): \(equal) of \(labels.voxels.count)")
    }
}
