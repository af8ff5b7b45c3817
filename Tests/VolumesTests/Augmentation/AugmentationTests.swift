import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Seeded augmentation", .computeBound)
struct AugmentationTests {
    let geometry = VolumeGeometry(
        dimensions: SIMD3(24, 20, 12), origin: Vector3(5, 6, 7),
        spacing: Vector3(0.8, 0.8, 1.5))

    var sample: Sample {
        let image = makeVolume(geometry) { i, j, k in Float(i * 3 - j * 2 + k * 7) + Float((i * j * k) % 5) }
        let label = Volume<UInt8>(
            geometry: geometry,
            voxels: (0..<geometry.voxelCount).map { index in
                let (i, j, k) = (index % 24, (index / 24) % 20, index / 480)
                return (8...14).contains(i) && (6...12).contains(j) && (3...8).contains(k) ? (i < 11 ? 1 : 2) : 0
            })
        return Sample(image: image, label: label)
    }

    func pipeline(seed: UInt64) -> VolumePipeline {
        VolumePipeline([
            RandomFlip(probability: 0.5, seed: seed), RandomRotate90(probability: 0.7, seed: seed &+ 1),
            RandomAffine(rotation: Vector3(0.1, 0.1, 0.3), probability: 1, seed: seed &+ 2),
            ElasticDeformation(controlPoints: SIMD3(4, 4, 3), magnitude: 2, probability: 1, seed: seed &+ 3),
            RandomIntensityShiftScale(shift: 5, scale: 0.1, probability: 1, seed: seed &+ 4),
            RandomGaussianNoise(standardDeviation: 2, probability: 1, seed: seed &+ 5),
            RandomGamma(gamma: 0.8...1.2, probability: 1, seed: seed &+ 6),
            RandomCrop(shape: SIMD3(10, 10, 6), positive: 2, negative: 1, seed: seed &+ 7),
        ])
    }

    @Test("The same seed reproduces every augmentation exactly, run after run; another seed differs")
    func reproducible() throws {
        var a = pipeline(seed: 42)
        var b = pipeline(seed: 42)
        var c = pipeline(seed: 43)
        for _ in 0..<3 {
            let x = try a.apply(sample)
            let y = try b.apply(sample)
            let z = try c.apply(sample)
            #expect(x.image.voxels == y.image.voxels && x.label?.voxels == y.label?.voxels)
            #expect(x.image.geometry == y.image.geometry)
            #expect(x.image.voxels != z.image.voxels)
            #expect(x.image.voxels.allSatisfy { $0.isFinite })
            #expect(x.label?.voxels.allSatisfy { $0 <= 2 } == true)
        }
    }

    @Test("Flips and 90° rotations permute voxels exactly; four quarter turns are the identity")
    func permutations() throws {
        var flip = RandomFlip(probability: 1, seed: 1)
        let flipped = try flip.apply(sample)
        #expect(flipped.image[0, 0, 0] == sample.image[23, 19, 11])
        #expect(flipped.image.voxels.sorted() == sample.image.voxels.sorted())
        var turned = sample
        for _ in 0..<4 {
            // One quarter turn in the x-y plane (as RandomRotate90 with k = 1).
            turned = Sample(
                image: Permutation.apply(
                    turned.image, permutation: SIMD3(1, 0, 2),
                    flipped: [true, false, false]))
        }
        #expect(turned.image.voxels == sample.image.voxels)
        var rotate = RandomRotate90(probability: 1, seed: 9)
        let r = try rotate.apply(sample)
        #expect(r.image.voxels.sorted() == sample.image.voxels.sorted())
        #expect(r.label.map { Set($0.voxels) } == Set([0, 1, 2]))
    }

    @Test("Affine and elastic with zero amplitude are the identity; labels only take existing values")
    func identityAndLabelSafety() throws {
        var still = RandomAffine(rotation: .zero, scale: 1...1, translation: .zero, probability: 1, seed: 3)
        let same = try still.apply(sample)
        for (a, b) in zip(same.image.voxels, sample.image.voxels) { #expect(abs(a - b) < 1e-4) }
        #expect(same.label?.voxels == sample.label?.voxels)
        var flat = ElasticDeformation(magnitude: 0, probability: 1, seed: 3)
        #expect(try flat.apply(sample).image.voxels == sample.image.voxels)
        var strong = RandomAffine(rotation: Vector3(0.3, 0.3, 0.3), scale: 0.8...1.2, probability: 1, seed: 5)
        let moved = try strong.apply(sample)
        let values = Set(moved.label?.voxels ?? [])
        #expect(values.isSubset(of: [0, 1, 2]))
        #expect(moved.image.voxels != sample.image.voxels)
    }

    @Test("Random crop with only positives centres on the label; a crop that does not fit is an error")
    func randomCrop() throws {
        var positive = RandomCrop(shape: SIMD3(4, 4, 2), positive: 1, negative: 0, seed: 11)
        for _ in 0..<10 {
            let out = try positive.apply(sample)
            #expect(out.image.geometry.dimensions == SIMD3(4, 4, 2))
            #expect(out.label?.voxels.contains { $0 != 0 } == true)
            #expect(expectSamePositions(out.image, sample.image) == 4 * 4 * 2)
            let back = try out.inverse(try #require(out.label))
            #expect(back.geometry == geometry)
        }
        var tooBig = RandomCrop(shape: SIMD3(30, 4, 4), seed: 1)
        do {
            _ = try tooBig.apply(sample)
            Issue.record("no error")
        } catch {
            #expect(error.code == .shapeMismatch && error.description.contains("RandomCrop"))
        }
    }

    @Test("Gaussian noise has the requested standard deviation; gamma 1 is the identity")
    func noiseAndGamma() throws {
        let zero = Sample(image: Volume(geometry: geometry, repeating: 0))
        var noise = RandomGaussianNoise(standardDeviation: 3, probability: 1, seed: 7)
        let stats = try noise.apply(zero).image.statistics
        #expect(abs(stats.mean) < 0.1 && abs(stats.standardDeviation - 3) < 0.1)
        var gamma = RandomGamma(gamma: 1...1, probability: 1, seed: 1)
        for (a, b) in zip(try gamma.apply(sample).image.voxels, sample.image.voxels) { #expect(abs(a - b) < 1e-3) }
        #expect(throws: VolumesError.self) {
            var bad = RandomFlip(probability: 1.5, seed: 1)
            _ = try bad.apply(sample)
        }
    }
}
