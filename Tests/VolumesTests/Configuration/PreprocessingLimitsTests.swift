import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Preprocessing limits", .computeBound)
struct PreprocessingLimitsTests {
    static let poison: [(String, String)] = [
        ("preprocessing:\n  resize: [100000, 100000, 100000]", "preprocessing.resize[0]"),
        ("preprocessing:\n  resize: [2048, 2048, 2048]", "preprocessing.resize"),
        ("preprocessing:\n  resize: [0, 10, 10]", "preprocessing.resize[0]"),
        ("preprocessing:\n  resize: [8, 8, 8]\n  resize: [100000, 1, 1]", "preprocessing.resize"),
        ("preprocessing:\n  resize: [-5, 10, 10]", "preprocessing.resize[0]"),
        ("preprocessing:\n  resize: [10, 10]", "preprocessing.resize"),
        ("preprocessing:\n  resize: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", "preprocessing.resize"),
        ("preprocessing:\n  resize: [a, 2, 3]", "preprocessing.resize[0]"),
        ("preprocessing:\n  resize: 12", "preprocessing.resize"),
        ("preprocessing:\n  resize: [99999999999999999999999, 1, 1]", "preprocessing.resize[0]"),
        ("preprocessing:\n  spacing: [0, 1, 1]", "preprocessing.spacing[0]"),
        ("preprocessing:\n  spacing: [1, .nan, 1]", "preprocessing.spacing[1]"),
        ("preprocessing:\n  spacing: [1, 1, .inf]", "preprocessing.spacing[2]"),
        ("preprocessing:\n  spacing: [1e-9, 1, 1]", "preprocessing.spacing[0]"),
        ("preprocessing:\n  spacing: [1e300, 1, 1]", "preprocessing.spacing[0]"),
        ("preprocessing:\n  crop_pad: {mode: centre, shape: [100000, 10, 10]}", "preprocessing.crop_pad.shape[0]"),
        ("preprocessing:\n  crop_pad: {mode: centre, margin: [1000000000, 0, 0]}", "preprocessing.crop_pad.margin[0]"),
        ("preprocessing:\n  crop_pad: {mode: centre, margin: [-1, 0, 0]}", "preprocessing.crop_pad.margin[0]"),
        ("preprocessing:\n  crop_pad: {mode: foreground, threshold: .nan}", "preprocessing.crop_pad.threshold"),
        ("preprocessing:\n  crop_pad: {mode: centre, fill: .inf}", "preprocessing.crop_pad.fill"),
        ("preprocessing:\n  crop_pad: {mode: centre, marign: [1, 1, 1]}", "preprocessing.crop_pad.marign"),
        ("preprocessing:\n  window: {min: -1e300, max: 1e300}", "preprocessing.window.min"),
        ("preprocessing:\n  window: {min: 10, max: 10}", "preprocessing.window"),
        ("preprocessing:\n  normalize: {method: zscore, mask: .nan}", "preprocessing.normalize.mask"),
        (
            "preprocessing:\n  normalize: {method: percentile, percentiles: [.nan, 99]}",
            "preprocessing.normalize.percentiles"
        ),
        ("preprocessing:\n  resise: [1, 1, 1]", "preprocessing.resise"),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  elastic: {probability: 1, control_points: [100000, 4, 4]}",
            "augmentation.elastic.control_points[0]"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  elastic: {probability: 1, magnitude_mm: 1e300}",
            "augmentation.elastic.magnitude_mm"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  random_crop: {shape: [100000, 100000, 100000]}",
            "augmentation.random_crop.shape[0]"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  random_crop: {shape: [8, 8, 8], positive: .nan}",
            "augmentation.random_crop.positive"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  intensity: {probability: 1, shift: .inf}",
            "augmentation.intensity.shift"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  noise: {probability: .nan, std: 0.1}",
            "augmentation.noise.probability"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  affine: {probability: 1, scale: [0, 1e300]}",
            "augmentation.affine.scale"
        ),
        (
            "preprocessing: {}\naugmentation:\n  seed: 1\n  affine: {probability: 1, translation_mm: [1e300, 0, 0]}",
            "augmentation.affine.translation_mm[0]"
        ),
        ("preprocessing: {}\naugmentation:\n  seed: -1", "augmentation.seed"),
    ]

    @Test(
        "A crafted preprocessing section is refused before anything is allocated, naming the key",
        arguments: poison)
    func refused(yaml: String, key: String) {
        do {
            _ = try PreprocessingConfiguration(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.description.contains(key), "\(error)")
        }
    }

    @Test("A huge string value is echoed cut, not whole")
    func hugeString() {
        let mode = String(repeating: "x", count: 100_000)
        do {
            _ = try PreprocessingConfiguration(yaml: "preprocessing:\n  crop_pad: {mode: \(mode)}")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("preprocessing.crop_pad.mode"))
            #expect(error.description.utf8.count < 500, "\(error.description.utf8.count) bytes")
        }
    }

    @Test("Limits can be raised: the same resize passes with a larger max_voxels_per_volume")
    func raised() throws {
        let yaml = "preprocessing:\n  resize: [1024, 1024, 1024]"
        #expect(throws: VolumesError.self) { try PreprocessingConfiguration(yaml: yaml) }
        var limits = PreprocessingLimits()
        limits.maxVoxelsPerVolume = 1 << 31
        #expect(try PreprocessingConfiguration(yaml: yaml, limits: limits).preprocessing.resize == [1024, 1024, 1024])
    }

    @Test("A resample whose output grid would pass the limit throws before allocating")
    func resampleAtRunTime() throws {
        let geometry = VolumeGeometry(
            dimensions: SIMD3(64, 64, 64), origin: Vector3(0, 0, 0),
            spacing: Vector3(1, 1, 1))
        var resample = Resample(spacing: Vector3(0.1, 0.1, 0.1))
        resample.maxVoxels = 1_000_000
        #expect(throws: VolumesError.self) { try resample.outputGeometry(for: geometry) }
        resample.maxVoxels = PreprocessingLimits.default.maxVoxelsPerVolume
        resample.spacing = Vector3(0.25, 0.25, 0.25)
        #expect(try resample.outputGeometry(for: geometry).dimensions == SIMD3(256, 256, 256))
        resample.spacing = Vector3(1e-12, 1, 1)
        #expect(throws: VolumesError.self) { try resample.outputGeometry(for: geometry) }
    }

    @Test("Checked conversions never trap")
    func checked() {
        #expect(CheckedConversion.int(.nan) == nil)
        #expect(CheckedConversion.int(.infinity) == nil)
        #expect(CheckedConversion.int(1e300) == nil)
        #expect(CheckedConversion.int(9_223_372_036_854_775_808.0) == nil)
        #expect(CheckedConversion.int(-9_223_372_036_854_775_808.0) == Int.min)
        #expect(CheckedConversion.int(2.5) == 2 && CheckedConversion.int(2.7, rounding: .down) == 2)
        #expect(CheckedConversion.product([1 << 32, 1 << 32]) == nil)
        #expect(CheckedConversion.product([2, 3, 4]) == 24)
        #expect(CheckedConversion.product([2, -3]) == nil)
    }

    @Test("The shipped pipelines pass the default limits")
    func shipped() throws {
        let folder = repositoryRoot + "/pipelines"
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() where name.hasSuffix(".yaml") {
            let text = try String(contentsOfFile: folder + "/" + name, encoding: .utf8)
            guard text.contains("\npreprocessing:") || text.hasPrefix("preprocessing:") else { continue }
            _ = try PreprocessingConfiguration(yaml: text)
        }
    }
}
