import DICOMIO
import Foundation
import Testing
import Training
import Volumes

/// The segmentation dataset with an RT Structure Set in place of a DICOM SEG.
@Suite("Segmentation dataset from RTSTRUCT")
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
