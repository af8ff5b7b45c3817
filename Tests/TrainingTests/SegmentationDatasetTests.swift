import DICOMIO
import Foundation
import TestSupport
import Testing
import Training
import Volumes

/// The segmentation dataset with an RT Structure Set in place of a DICOM SEG.
@Suite("Segmentation dataset from RTSTRUCT", .computeBound)
struct SegmentationDatasetTests {
    @Test("a series whose labels are an RTSTRUCT loads, its ROIs named by model.segment_names")
    func structureSetInPlaceOfSEG() throws {
        let fixtures = repositoryRoot + "/Tests/Fixtures/RTSTRUCT"
        let folder = NSTemporaryDirectory() + "tessera-rtstruct-dataset-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixtures + "/ct", toPath: folder + "/ct")
        try FileManager.default.copyItem(atPath: fixtures + "/organs.dcm", toPath: folder + "/organs.dcm")
        let pipeline = String(
            decoding: FileManager.default.contents(atPath: repositoryRoot + "/pipelines/segmentation-unet2d.yaml")
                ?? Data(), as: UTF8.self)
        let preprocessing = try PreprocessingConfiguration(yaml: pipeline)
        let training = try TrainingConfiguration(yaml: pipeline)
        let names = try #require(training.model.segmentNames)
        // segment 1 = Liver, 2 = Spleen (synonym spleen_1); the Kidney matches nothing.
        let cases = try SegmentationDataset.load(
            folder: folder, preprocessing: preprocessing, segments: [2, 1], segmentNames: names)
        #expect(cases.count == 1)
        let label = try #require(cases.first?.sample.label)
        // The same labels as rasterising directly, renumbered to classes (segment 2 → class 1, 1 → class 2) and
        // preprocessed by the same pipeline.
        let series = SeriesAssembler().assemble(try DirectoryScanner().scan(folder).instances)
        let set = try StructureSet(path: folder + "/organs.dcm")
        var direct = try Volume<UInt8>.labels(structureSet: set, series: series[0], mapping: names).volume
        for i in direct.voxels.indices { direct.voxels[i] = [0, 2, 1][Int(direct.voxels[i])] }
        var steps = preprocessing.preprocessingPipeline()
        let expected = try steps.apply(Sample(image: try Volume<Float>(series: series[0]), label: direct))
        #expect(label.voxels == expected.label?.voxels)
        #expect(label.voxels.contains(1) && label.voxels.contains(2))
        #expect(label.voxels.allSatisfy { $0 <= 2 })
    }

    @Test("model.segment_names parses; bad keys, lists and shared names are named")
    func segmentNames() throws {
        let c = try TrainingConfiguration(yaml: "model:\n  segment_names:\n    1: [Liver, liver_1]\n    2: [Spleen]")
        let names = try #require(c.model.segmentNames)
        #expect(names.label(for: "LIVER_1") == 1 && names.label(for: "spleen") == 2 && names.label(for: "x") == nil)
        for (yaml, words) in [
            ("model:\n  segment_names: [Liver]", "must be a mapping"),
            ("model:\n  segment_names:\n    0: [Liver]", "key `0` must be a segment number"),
            ("model:\n  segment_names:\n    1: Liver", "`model.segment_names.1` must be a list of 1...32 names"),
            ("model:\n  segment_names:\n    1: []", "must be a list"),
            ("model:\n  segment_names:\n    1: [Liver]\n    2: [LIVER]", "is given for labels"),
            ("model:\n  segment_names:\n    1: [\"\"]", "`model.segment_names.1[0]` must be a name of 1...64"),
        ] {
            do {
                _ = try TrainingConfiguration(yaml: yaml)
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.description.contains(words), "\(error)")
            }
        }
    }
}

/// The segmentation dataset with NIfTI label maps in place of a DICOM SEG (`model.nifti_labels`).
@Suite("Segmentation dataset from NIfTI labels", .computeBound)
struct NIfTILabelDatasetTests {
    /// A sample study's CT without its RTSTRUCT, and its RTSTRUCT as a NIfTI label map written the way `tessera
    /// convert --rtstruct` writes it, under `labels/<name>.nii.gz` of a new site folder.
    func siteWithNIfTILabels(name: (DICOMSeries) -> String) throws -> (folder: String, study: String) {
        let study = repositoryRoot + "/sample-data/research-center/sub-002"
        let folder = NSTemporaryDirectory() + "tessera-nifti-dataset-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/labels", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: study + "/ct", toPath: folder + "/sub-002-ct")
        let series = SeriesAssembler().assemble(try DirectoryScanner().scan(study).instances)
        let set = try StructureSet(path: study + "/rtstruct/structures.dcm")
        let labels = try Volume<UInt8>.labels(structureSet: set, series: series[0]).volume
        try NIfTI.write(labels, to: folder + "/labels/" + name(series[0]) + ".nii.gz")
        return (folder, study)
    }

    func pipeline() throws -> (PreprocessingConfiguration, TrainingConfiguration) {
        let text = String(
            decoding: FileManager.default.contents(atPath: repositoryRoot + "/pipelines/segmentation-unet2d.yaml")
                ?? Data(), as: UTF8.self)
        return (try PreprocessingConfiguration(yaml: text), try TrainingConfiguration(yaml: text))
    }

    @Test(
        "a sample study's RTSTRUCT converted to NIfTI loads back as the same labels (by series UID and patient ID)",
        arguments: ["labels/{SeriesInstanceUID}.nii.gz", "labels/{PatientID}.nii.gz"])
    func sameAsRTSTRUCT(template: String) throws {
        let (preprocessing, _) = try pipeline()
        let (folder, study) = try siteWithNIfTILabels {
            template.contains("PatientID") ? ($0.instances[0].tags["PatientID"] ?? "") : $0.seriesInstanceUID
        }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let files = try NIfTILabelFiles(template: template)
        let fromNIfTI = try SegmentationDataset.load(
            folder: folder, preprocessing: preprocessing, segments: [1, 2], niftiLabels: files)
        let fromRTSTRUCT = try SegmentationDataset.load(folder: study, preprocessing: preprocessing, segments: [1, 2])
        #expect(fromNIfTI.count == 1 && fromRTSTRUCT.count == 1)
        let a = try #require(fromNIfTI.first)
        let b = try #require(fromRTSTRUCT.first)
        #expect(a.seriesInstanceUID == b.seriesInstanceUID && a.patientID == b.patientID)
        #expect(a.sample.label?.voxels == b.sample.label?.voxels)
        #expect(a.sample.image.voxels == b.sample.image.voxels)
        let label = try #require(a.sample.label)
        #expect(label.voxels.contains(1) && label.voxels.contains(2))
        // Without the key the NIfTI is not looked for: nothing to learn from.
        #expect(throws: TrainingError.self) {
            try SegmentationDataset.load(folder: folder, preprocessing: preprocessing, segments: [1])
        }
    }

    @Test("a label map on another grid is refused naming the series and what differs")
    func wrongGrid() throws {
        let (preprocessing, _) = try pipeline()
        let (folder, _) = try siteWithNIfTILabels { $0.seriesInstanceUID }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let labelPath = try #require(
            try FileManager.default.contentsOfDirectory(atPath: folder + "/labels").first.map {
                folder + "/labels/" + $0
            })
        let file = try NIfTI.read(labelPath)
        var g = try file.geometry()
        g.origin.z += 2 * g.spacing.z
        try NIfTI.write(Volume<UInt8>(geometry: g, voxels: try file.labelValues()), to: labelPath)
        do {
            _ = try SegmentationDataset.load(
                folder: folder, preprocessing: preprocessing, segments: [1],
                niftiLabels: try NIfTILabelFiles(template: "labels/{SeriesInstanceUID}.nii.gz"))
            Issue.record("a shifted label map was accepted")
        } catch {
            #expect(
                error.message.contains("NIfTI labels") && error.message.contains("first voxel's centre"), "\(error)")
        }
    }

    @Test("model.nifti_labels parses; absolute paths, `..`, no placeholder, unknown placeholders are refused")
    func configuration() throws {
        let c = try TrainingConfiguration(yaml: "model:\n  nifti_labels: \"labels/{SeriesInstanceUID}.nii.gz\"")
        #expect(c.model.niftiLabels?.template == "labels/{SeriesInstanceUID}.nii.gz")
        #expect(
            c.model.niftiLabels?.path(folder: "/d", seriesInstanceUID: "1.2", studyInstanceUID: nil, patientID: nil)
                == "/d/labels/1.2.nii.gz")
        let byPatient = try NIfTILabelFiles(template: "{PatientID}/seg.nii")
        #expect(byPatient.path(folder: "/d", seriesInstanceUID: "1", studyInstanceUID: nil, patientID: "../x") == nil)
        #expect(
            byPatient.path(folder: "/d", seriesInstanceUID: "1", studyInstanceUID: nil, patientID: "P 7")
                == "/d/P 7/seg.nii")
        for (yaml, words) in [
            ("model:\n  nifti_labels: \"/abs/{PatientID}.nii.gz\"", "relative"),
            ("model:\n  nifti_labels: \"../{PatientID}.nii.gz\"", "no `..`"),
            ("model:\n  nifti_labels: labels.nii.gz", "must name each series' file"),
            ("model:\n  nifti_labels: \"{PatientID}.nrrd\"", ".nii or .nii.gz"),
            ("model:\n  nifti_labels: \"{Modality}/{PatientID}.nii\"", "unknown placeholder"),
            ("model:\n  nifti_labels: [a]", "must be a path"),
        ] {
            do {
                _ = try TrainingConfiguration(yaml: yaml)
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.description.contains(words), "\(error)")
            }
        }
    }
}
