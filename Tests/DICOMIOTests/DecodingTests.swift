import DICOMIO
import Foundation
import TestSupport
import Testing
import Volumes

@testable import SampleData

/// Values are checked against the fixture generator's own formula (a naive reference independent of DCMTK's
/// decoders), then every transfer syntax against the uncompressed original.
@Suite("Pixel decoding", .computeBound)
struct DecodingTests {
    let factory = FixtureFactory()

    /// Expected real-world value of voxel (i, j, k) for a fixture spec: stored × slope + intercept, in Float.
    func expected(_ spec: FixtureFactory.SeriesSpec) -> [Float] {
        var out: [Float] = []
        for k in 0..<spec.slices where !spec.omit.contains(k) {
            for j in 0..<spec.rows {
                for i in 0..<spec.columns {
                    let stored = factory.storedValue(spec, i, j, k)
                    if spec.modalityLUT {
                        out.append(Float(2 * stored))
                    } else {
                        out.append(Float(stored) * Float(spec.slope) + Float(spec.intercept))
                    }
                }
            }
        }
        return out
    }

    @Test("SHA-256 helper matches FIPS 180-4 test vectors")
    func sha256Vectors() {
        #expect(
            sha256Hex(Array("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c b410ff61f20015ad".replacingOccurrences(
                    of: " ", with: ""))
        #expect(sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test(
        "Uncompressed fixtures equal the generator's values",
        arguments: [
            ("explicit-le", "base"), ("bits12-unsigned", "bits12"), ("bits12-signed-dirty", "dirty"),
            ("modality-lut", "lut"), ("reversed", "reversed"), ("mr-8bit", "mr8"),
        ])
    func uncompressedValues(folder: String, name: String) throws {
        var spec = FixtureFactory.SeriesSpec(name: name)
        switch name {
        case "bits12":
            spec.bitsStored = 12
            spec.signed = false
            spec.intercept = -1024
        case "dirty":
            spec.bitsStored = 12
            spec.signed = true
            spec.slope = 0.5
            spec.intercept = -10
        case "lut":
            spec.modalityLUT = true
            spec.signed = false
            spec.bitsStored = 12
        case "mr8":
            spec.bitsAllocated = 8
            spec.bitsStored = 8
            spec.signed = false
        case "reversed":
            spec.rowCosine = Vector3(-1, 0, 0)
            spec.columnCosine = Vector3(0, 1, 0)
        default: break
        }
        let volume = try loadVolume(fixture(folder))
        #expect(volume.geometry.dimensions == SIMD3(40, 32, 8))
        let want = expected(spec)
        let mismatches = zip(volume.voxels, want).filter { $0 != $1 }.count
        #expect(mismatches == 0, "\(folder): \(mismatches) voxels differ from the generator")
    }

    @Test(
        "Lossless transfer syntaxes decode to the same voxels as Explicit VR Little Endian",
        arguments: [
            ("implicit-le", "explicit-le"), ("big-endian", "explicit-le"), ("deflated", "explicit-le"),
            ("rle", "explicit-le"), ("jpeg-lossless", "explicit-le"), ("jpegls-lossless", "explicit-le"),
            // dcmcjpls encodes signed 12-bit data with precision 16: the decoder must still mask and sign-extend.
            ("jpegls-bits12-signed-dirty", "bits12-signed-dirty"),
        ])
    func losslessSyntaxes(folder: String, referenceFolder: String) throws {
        let reference = try loadVolume(fixture(referenceFolder))
        let volume = try loadVolume(fixture(folder))
        #expect(volume.geometry == reference.geometry)
        #expect(volume.voxels == reference.voxels)
    }

    @Test("JPEG 2000 lossless decodes through OpenJPEG to the same voxels")
    func jpeg2000() throws {
        let folder = fixture("jpeg2000-lossless")
        try #require(FileManager.default.fileExists(atPath: folder), "run scripts/make_fixtures.sh")
        let reference = try loadVolume(fixture("explicit-le"))
        let volume = try loadVolume(folder)
        #expect(volume.voxels == reference.voxels)
    }

    @Test(
        "Lossy syntaxes stay within their error bounds",
        arguments: [
            // (case, reference case, maximum and mean absolute error in output units)
            ("jpegls-near-lossless", "bits12-unsigned", Float(2), Float(1.5)),  // NEAR = 2: |error| ≤ 2 by definition
            ("jpeg-extended", "bits12-unsigned", Float(400), Float(100)),  // dcmcjpeg quality 90, 12-bit
            ("jpeg-baseline", "mr-8bit", Float(60), Float(15)),  // dcmcjpeg quality 90, 8-bit
        ])
    func lossySyntaxes(folder: String, referenceFolder: String, bound: Float, meanBound: Float) throws {
        let reference = try loadVolume(fixture(referenceFolder))
        let volume = try loadVolume(fixture(folder))
        #expect(volume.geometry == reference.geometry)
        let errors = zip(volume.voxels, reference.voxels).map { abs($0 - $1) }
        let maxError = errors.max() ?? 0
        let meanError = errors.reduce(0, +) / Float(errors.count)
        #expect(maxError <= bound, "max error \(maxError)")
        #expect(meanError <= meanBound, "mean error \(meanError)")
    }

    @Test("Enhanced CT multi-frame: frames placed by functional groups, per-frame rescale applied")
    func enhancedMultiframe() throws {
        for folder in ["multiframe-enhanced-ct", "multiframe-jpegls"] {
            let volume = try loadVolume(fixture(folder))
            let spec = FixtureFactory.SeriesSpec(name: "enhanced")
            #expect(volume.geometry.dimensions == SIMD3(40, 32, 8))
            let plane = 40 * 32
            var mismatches = 0
            for k in 0..<8 {
                let slope = Float(1 + 0.25 * Double(k % 3))
                let intercept = Float(-1000 + Double(k))
                for j in 0..<32 {
                    for i in 0..<40 {
                        let want = Float(factory.storedValue(spec, i, j, k)) * slope + intercept
                        if volume.voxels[k * plane + j * 40 + i] != want { mismatches += 1 }
                    }
                }
            }
            #expect(mismatches == 0, "\(folder): \(mismatches) voxels differ")
        }
    }
}
