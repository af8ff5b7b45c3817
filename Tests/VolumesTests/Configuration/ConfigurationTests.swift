import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Pipeline YAML", .computeBound)
struct ConfigurationTests {
    @Test("pipelines/segmentation-unet2d.yaml parses and builds both pipelines")
    func shippedFile() throws {
        let path = repositoryRoot + "/pipelines/segmentation-unet2d.yaml"
        let configuration = try PreprocessingConfiguration(contentsOf: path)
        #expect(configuration.preprocessing.orientation == .ras)
        #expect(configuration.preprocessing.window?.window == .softTissue)
        #expect(configuration.augmentation?.seed == 20_261_121)
        let pre = configuration.preprocessingPipeline()
        #expect(
            pre.transforms.map(\.name) == [
                "Reorient(RAS)", "Resample", "CropPad(foreground)", "WindowClip",
                "ScaleIntensity",
            ])
        // flip, rotate90 (both at probability 0 in the shipped file), affine, elastic, intensity, noise, gamma.
        #expect(configuration.augmentationPipeline().transforms.count == 7)
    }

    @Test("The YAML drives preprocessing end to end, and the same seed reproduces augmentation")
    func runs() throws {
        let yaml = """
            training: {epochs: 3}   # another module's section: ignored here
            preprocessing:
              orientation: LPS
              spacing: [1.5, 1.5, 1.5]
              window: {width: 400, level: 40}
              normalize: {method: percentile, percentiles: [1, 99], range: symmetric}
            augmentation:
              seed: 7
              flip: {probability: 0.5}
              noise: {probability: 1, std: 0.1}
              random_crop: {shape: [8, 8, 4], positive: 1, negative: 0}
            """
        let configuration = try PreprocessingConfiguration(yaml: yaml)
        let g = obliqueGeometry(SIMD3(40, 40, 16))
        let image = spherePhantom(g, centre: g.position(20, 20, 8), radius: 8)
        let sample = Sample(
            image: Volume(geometry: g, voxels: image.voxels.map { $0 * 1000 - 500 }),
            label: Volume(geometry: g, voxels: image.voxels.map { $0 > 0.5 ? 1 : 0 }))
        var pre = configuration.preprocessingPipeline()
        let out = try pre.apply(sample)
        #expect(out.image.geometry.spacing == Vector3(1.5, 1.5, 1.5))
        #expect(out.image.voxels.min() == -1 && out.image.voxels.max() == 1)
        var a = configuration.augmentationPipeline()
        var b = configuration.augmentationPipeline()
        let x = try a.apply(out)
        let y = try b.apply(out)
        #expect(x.image.voxels == y.image.voxels && x.image.geometry.dimensions == SIMD3(8, 8, 4))
    }

    @Test(
        "Unknown keys and bad values are errors naming the key",
        arguments: [
            ("preprocessing: {spacing: [1, 1]}", "preprocessing.spacing"),
            ("preprocessing: {spacng: [1, 1, 1]}", "preprocessing"),
            ("preprocessing: {crop_pad: {mode: centre, marign: [1, 1, 1]}}", "preprocessing.crop_pad.marign"),
            ("preprocessing: {window: {min: 100, max: 100}}", "preprocessing.window"),
            ("preprocessing: {window: brain}", "preprocessing.window"),
            ("preprocessing: {orientation: XYZ}", "preprocessing.orientation"),
            ("preprocessing: {interpolation: bspline}", "preprocessing.interpolation"),
            ("preprocessing: {spacing: [1, fast, 1]}", "preprocessing.spacing"),
            ("preprocessing: {}\naugmentation: {seed: 1, flip: {probability: 2}}", "augmentation.flip.probability"),
            ("preprocessing: {}\naugmentation: {seed: 1, noise: {probability: 0.5}}", "augmentation.noise.std"),
            (
                "preprocessing: {}\naugmentation: {seed: 1, elastic: {probability: 0.5, control_points: [2, 5, 5]}}",
                "augmentation.elastic.control_points"
            ),
            ("augmentation: {seed: 1}", "preprocessing"),
        ])
    func errors(yaml: String, key: String) {
        do {
            _ = try PreprocessingConfiguration(yaml: yaml)
            Issue.record("no error for \(yaml)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.transform.hasPrefix(key) || error.transform.contains(key), "\(error)")
        }
    }
}
