import Foundation
import TestSupport
import Testing
import Training
import Volumes

/// A NIfTI-only site (`model.nifti_images`): `Tests/Fixtures/NIfTIImages` (nibabel, scripts/reference/
/// make_nifti_images.py), images in imagesTr/, label maps of the same name in labelsTr/.
@Suite("Segmentation dataset from NIfTI images", .computeBound)
struct NIfTIImageDatasetTests {
    static let pipeline = """
        preprocessing:
          window: {min: -1000, max: 1000}
          scale: unit
        model:
          architecture: unet2d
          encoder_channels: [4]
          bottleneck_channels: 8
          nifti_images: {images: imagesTr, labels: labelsTr}
        """

    @Test("images with a label map load through the preprocessing; one without is skipped and reported")
    func loads() throws {
        let folder = repositoryRoot + "/Tests/Fixtures/NIfTIImages"
        let training = try TrainingConfiguration(yaml: Self.pipeline)
        #expect(training.model.niftiImages == (try NIfTIImageFolders(images: "imagesTr", labels: "labelsTr")))
        let preprocessing = try PreprocessingConfiguration(yaml: Self.pipeline)
        let loaded = try SegmentationDataset.load(folder: folder, model: training.model, preprocessing: preprocessing)
        #expect(loaded.cases.map(\.patientID) == ["case_a", "case_b"])
        #expect(loaded.report.skipped == [.init(study: "case_c", reason: "no label map labelsTr/case_c.nii.gz")])
        // Values: nibabel's, windowed to ±1000 HU and scaled to 0...1.
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/expected.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let files = try #require(json["files"] as? [String: Any])
        for (c, name) in zip(loaded.cases, ["imagesTr/case_a.nii.gz", "imagesTr/case_b.nii"]) {
            let golden = try #require((files[name] as? [String: Any])?["values"] as? [Double])
            let expected = golden.map { (min(max($0, -1000), 1000) + 1000) / 2000 }
            var worst = 0.0
            for (v, e) in zip(c.sample.image.voxels, expected) { worst = max(worst, abs(Double(v) - e)) }
            #expect(worst < 1e-6, "\(c.patientID): \(worst)")
            // The sphere of the script: r² < 3.5² mm² around voxel (6, 4, 3) with spacing 0.8 × 0.9 × 2.5.
            let label = try #require(c.sample.label)
            var sphere = 0
            for k in 0..<6 {
                for j in 0..<10 {
                    for i in 0..<12 {
                        let (x, y, z) = (Double(i - 6) * 0.8, Double(j - 4) * 0.9, Double(k - 3) * 2.5)
                        let inside = x * x + y * y + z * z < 3.5 * 3.5
                        if inside { sphere += 1 }
                        #expect(label[i, j, k] == (inside ? 1 : 0))
                    }
                }
            }
            #expect(sphere > 20)
        }
    }

    @Test(
        "bad folder keys are refused",
        arguments: [
            ("nifti_images: imagesTr", "must be a mapping"),
            ("nifti_images: {images: imagesTr}", "needs both"),
            ("nifti_images: {images: /data/imagesTr, labels: labelsTr}", "relative"),
            ("nifti_images: {images: ../imagesTr, labels: labelsTr}", "without `..`"),
            ("nifti_images: {images: a, labels: b, masks: c}", "unknown key `model.nifti_images.masks`"),
            (
                "nifti_images: {images: a, labels: b}\n  input_channels: [{name: ct, modality: CT}]",
                "a NIfTI site"
            ),
        ])
    func refuses(_ model: String, _ words: String) {
        do {
            _ = try TrainingConfiguration(yaml: "model:\n  " + model)
            Issue.record("accepted \(model)")
        } catch {
            #expect(error.description.contains(words), "\(error)")
        }
    }

    @Test("a case whose label map is on another grid names the case and the difference")
    func labelsOnAnotherGrid() throws {
        let fixtures = repositoryRoot + "/Tests/Fixtures/NIfTIImages"
        let folder = NSTemporaryDirectory() + "tessera-nifti-site-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: folder + "/labels", withIntermediateDirectories: true)
        try fm.copyItem(atPath: fixtures + "/imagesTr/case_a.nii.gz", toPath: folder + "/images/p1.nii.gz")
        try fm.copyItem(atPath: fixtures + "/labelsTr/case_a.nii.gz", toPath: folder + "/labels/p1.nii.gz")
        try fm.copyItem(atPath: fixtures + "/imagesTr/case_b.nii", toPath: folder + "/images/p2.nii")
        // p2's labels: case_a's (rotated grid) written by Tessera's NIfTI writer beside case_b's axis-aligned image.
        let rotated = try Volume<Float>(niftiImage: fixtures + "/imagesTr/case_a.nii.gz").geometry
        let labels = try Volume<UInt8>(niftiLabels: fixtures + "/labelsTr/case_a.nii.gz", matching: rotated)
        try NIfTI.write(labels, to: folder + "/labels/p2.nii")
        let text = Self.pipeline.replacingOccurrences(of: "imagesTr", with: "images")
            .replacingOccurrences(of: "labelsTr", with: "labels")
        let error = #expect(throws: TrainingError.self) {
            try SegmentationDataset.load(
                folder: folder, model: try TrainingConfiguration(yaml: text).model,
                preprocessing: try PreprocessingConfiguration(yaml: text))
        }
        #expect(error?.message.hasPrefix("case p2: NIfTI labels") == true, "\(String(describing: error))")
        #expect(error?.message.contains("the label map's grid is not the series' grid") == true)
    }
}
