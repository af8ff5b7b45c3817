import DICOMIO
import Foundation
import Randomness
import Tensors
import TestSupport
import Testing
import Training
import Volumes

/// A volume of `[z, y, x]` extents whose voxel value is its storage index, and a label with a foreground box.
func indexedSample(_ extents: [Int], foreground: (z: Range<Int>, y: Range<Int>, x: Range<Int>)?) -> Sample {
    let g = VolumeGeometry(
        dimensions: SIMD3(extents[2], extents[1], extents[0]), origin: .zero,
        spacing: Vector3(1, 1, 1))
    let n = extents.reduce(1, *)
    var labels = [UInt8](repeating: 0, count: n)
    if let f = foreground {
        for z in f.z { for y in f.y { for x in f.x { labels[(z * extents[1] + y) * extents[2] + x] = 1 } } }
    }
    return Sample(
        image: Volume(geometry: g, voxels: (0..<n).map { Float($0) }),
        label: Volume(geometry: g, voxels: labels))
}

@Suite("3-D patch dataset", .computeBound)
struct PatchDatasetTests {
    let cases = [
        indexedSample([10, 12, 14], foreground: (2..<4, 8..<11, 1..<3)),
        indexedSample([8, 9, 16], foreground: nil),
    ]

    @Test("Patches are the volume's voxels at the window (naive slicing), labels alongside, windows inside")
    func contents() throws {
        let data = try PatchDataset(cases: cases, patchSize: [4, 5, 6], foregroundFraction: 0.5)
        var g = SplitMix64(seed: 1)
        let locations = data.sampleLocations(count: 20, generator: &g)
        let (input, targets) = data.batch(locations)
        #expect(input.shape == [20, 1, 4, 5, 6] && targets.count == 20 * 120)
        for (b, l) in locations.enumerated() {
            let d = cases[l.caseIndex].image.geometry.dimensions
            #expect(l.corner[0] >= 0 && l.corner[0] + 4 <= d.z && l.corner[1] + 5 <= d.y && l.corner[2] + 6 <= d.x)
            for z in 0..<4 {
                for y in 0..<5 {
                    for x in 0..<6 {
                        let source = ((l.corner[0] + z) * d.y + l.corner[1] + y) * d.x + l.corner[2] + x
                        let i = b * 120 + (z * 5 + y) * 6 + x
                        #expect(input.storage[i] == Float(source))
                        #expect(targets[i] == Int(cases[l.caseIndex].label!.voxels[source]))
                    }
                }
            }
        }
    }

    @Test("Foreground fraction: 1 → every patch holds its foreground centre; 0 → background centres; 0.3 → about 30 %")
    func balance() throws {
        let one = [cases[0]]
        var g = SplitMix64(seed: 2)
        let all = try PatchDataset(cases: one, patchSize: [3, 3, 3], foregroundFraction: 1)
        let locations = all.sampleLocations(count: 200, generator: &g)
        #expect(locations.allSatisfy { $0.foreground })
        #expect(all.batch(locations).targets.count(where: { $0 == 1 }) >= 200)  // ≥ 1 foreground voxel per patch
        let none = try PatchDataset(cases: one, patchSize: [3, 3, 3], foregroundFraction: 0)
        #expect(none.sampleLocations(count: 200, generator: &g).allSatisfy { !$0.foreground })
        let some = try PatchDataset(cases: one, patchSize: [3, 3, 3], foregroundFraction: 0.3)
        let share = Double(some.sampleLocations(count: 4000, generator: &g).count(where: { $0.foreground })) / 4000
        #expect(abs(share - 0.3) < 0.03, "foreground share \(share)")
        // A case without foreground gives background patches whatever the fraction.
        let empty = try PatchDataset(cases: [cases[1]], patchSize: [3, 3, 3], foregroundFraction: 1)
        #expect(empty.sampleLocations(count: 50, generator: &g).allSatisfy { !$0.foreground })
    }

    @Test("Same seed, same patches; another seed, other patches")
    func seeded() throws {
        let data = try PatchDataset(cases: cases, patchSize: [4, 4, 4], foregroundFraction: 0.5)
        var a = SplitMix64(seed: 9)
        var b = SplitMix64(seed: 9)
        var c = SplitMix64(seed: 10)
        let first = data.sampleLocations(count: 30, generator: &a)
        #expect(first == data.sampleLocations(count: 30, generator: &b))
        #expect(first != data.sampleLocations(count: 30, generator: &c))
    }

    @Test("Bad sizes, fractions and volumes smaller than the patch are errors that say what to change")
    func errors() {
        for (size, fraction, words) in [
            ([4, 4], 0.5, "[depth, height, width]"), ([0, 4, 4], 0.5, "positive"),
            ([4, 4, 4], 1.5, "0...1"), ([4, 4, 20], 0.5, "smaller than the patch"),
        ] {
            #expect { try PatchDataset(cases: cases, patchSize: size, foregroundFraction: fraction) } throws: { e in
                "\(e)".contains(words)
            }
        }
    }
}

@Suite("Sliding-window inference", .computeBound)
struct SlidingWindowTests {
    @Test("Window starts: stride ⌊w(1 − overlap)⌋, last window flush with the edge, one window when it fits")
    func starts() throws {
        let w = try SlidingWindowInference(windowSize: [4, 4, 4], overlap: 0.5)
        #expect(w.starts(extent: 6, window: 4) == [0, 2])
        #expect(w.starts(extent: 11, window: 4) == [0, 2, 4, 6, 7])
        #expect(w.starts(extent: 4, window: 4) == [0])
        #expect(w.starts(extent: 3, window: 4) == [0])
        let none = try SlidingWindowInference(windowSize: [4, 4, 4], overlap: 0)
        #expect(none.starts(extent: 10, window: 4) == [0, 4, 6])
    }

    @Test(
        "A voxel-wise model gives exactly its whole-volume output, whatever the windows and blending",
        arguments: SlidingWindowInference.Blending.allCases)
    func voxelwise(blending: SlidingWindowInference.Blending) throws {
        // Logits (−x, x − 100): label 1 where the voxel value (its index) exceeds 50. Odd extents, padded axis.
        let sample = indexedSample([5, 7, 9], foreground: nil)
        let w = try SlidingWindowInference(windowSize: [3, 8, 4], overlap: 0.4, blending: blending, batchSize: 3)
        var calls = 0
        let logits = try w.logits(sample.image) { x in
            calls += 1
            let n = x.shape[0]
            let v = x.spatialCount
            var out = [Float](repeating: 0, count: n * 2 * v)
            for b in 0..<n {
                for i in 0..<v {
                    out[(b * 2) * v + i] = -x.storage[b * v + i]
                    out[(b * 2 + 1) * v + i] = x.storage[b * v + i] - 100
                }
            }
            return Tensor(shape: [n, 2] + x.spatialShape, storage: out)
        }
        #expect(logits.shape == [1, 2, 5, 7, 9])
        for i in 0..<(5 * 7 * 9) {
            #expect(abs(logits.storage[i] + Float(i)) <= 1e-4 * Float(i + 1))
            #expect(abs(logits.storage[315 + i] - Float(i) + 100) <= 1e-4 * Float(i + 100))
        }
        // Windows: z starts [0, 1, 2], y [0] (padded), x [0, 2, 4, 5] → 12 windows in batches of 3.
        #expect(calls == 4)
        let labels = try w.labels(sample.image) { x in
            let v = x.spatialCount
            let n = x.shape[0]
            var out = [Float](repeating: 0, count: n * 2 * v)
            for b in 0..<n { for i in 0..<v { out[(b * 2 + 1) * v + i] = x.storage[b * v + i] - 50 } }
            return Tensor(shape: [n, 2] + x.spatialShape, storage: out)
        }
        #expect(labels.geometry == sample.image.geometry)
        #expect(labels.voxels == (0..<315).map { $0 > 50 ? 1 : 0 })
    }

    @Test("Blending by hand: windows 0 and 1 over 6 voxels, constant averages, Gaussian weights by distance")
    func blendingByHand() throws {
        let sample = indexedSample([1, 1, 6], foreground: nil)
        for blending in SlidingWindowInference.Blending.allCases {
            let w = try SlidingWindowInference(windowSize: [1, 1, 4], overlap: 0.5, blending: blending)
            var window: Float = 0
            // Each window predicts its own index as the logit of class 0 everywhere.
            let z = try w.logits(sample.image) { x in
                defer { window += 1 }
                return Tensor(repeating: window, shape: [1, 1, 1, 1, 4])
            }
            // Window 0 covers voxels 0–3 (positions 0–3), window 1 covers 2–5 (positions 0–3).
            var expected: [Float] = [0, 0, 0.5, 0.5, 1, 1]
            if blending == .gaussian {
                // σ = 0.125·4 = 0.5, centre 1.5: voxel 2 is at 0.5 from window 0's centre and 1.5 from window 1's.
                let near = Foundation.exp(-0.25 / 0.5)
                let far = Foundation.exp(-2.25 / 0.5)
                expected[2] = Float(far / (near + far))
                expected[3] = Float(near / (near + far))
            }
            for i in 0..<6 {
                #expect(abs(z.storage[i] - expected[i]) < 1e-6, "\(blending) voxel \(i): \(z.storage[i])")
            }
        }
    }

    @Test("A model that changes the window's shape, and bad settings, are reported")
    func errors() throws {
        let sample = indexedSample([4, 4, 4], foreground: nil)
        let w = try SlidingWindowInference(windowSize: [2, 2, 2])
        #expect { try w.logits(sample.image) { _ in Tensor(zeros: [1, 2, 1, 1, 1]) } } throws: { e in
            (e as? TrainingError)?.code == .model && "\(e)".contains("keep the window's extents")
        }
        #expect(throws: TrainingError.self) { try SlidingWindowInference(windowSize: [2, 2], overlap: 0.5) }
        #expect(throws: TrainingError.self) { try SlidingWindowInference(windowSize: [2, 2, 2], overlap: 1) }
    }
}

@Suite("Batch prefetching and the progress bar", .computeBound)
struct PrefetchTests {
    final class Flag: @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
    }

    @Test("Batches arrive in index order, and batch i + 1 is made while the caller still holds batch i")
    func order() throws {
        let started = Flag()
        let prefetcher = BatchPrefetcher(count: 5) { i -> [Int] in
            if i == 1 { started.semaphore.signal() }
            return [i, i * i]
        }
        var seen: [[Int]] = []
        while let batch = try prefetcher.next() {
            if batch[0] == 0 {
                // Not a sleep: a bounded wait that only succeeds if batch 1 is being made concurrently.
                #expect(started.semaphore.wait(timeout: .now() + 30) == .success)
            }
            seen.append(batch)
        }
        #expect(seen == (0..<5).map { [$0, $0 * $0] })
        #expect(try prefetcher.next() == nil)
    }

    @Test("An error while making a batch surfaces at that batch")
    func errors() throws {
        struct Broken: Error {}
        let prefetcher = BatchPrefetcher(count: 3) { i -> Int in
            if i == 2 { throw Broken() }
            return i
        }
        #expect(try prefetcher.next() == 0)
        #expect(try prefetcher.next() == 1)
        #expect(throws: Broken.self) { try prefetcher.next() }
    }

    @Test("Progress bar rendering")
    func progressBar() {
        let bar = ProgressBar(width: 10)
        #expect(
            bar.render(StepProgress(epoch: 3, epochs: 12, step: 16, steps: 32, meanLoss: 0.42314, seconds: 4.06))
                == "epoch  3/12 [#####-----] 16/32 steps  loss 0.4231  4.1 s")
        #expect(
            bar.render(StepProgress(epoch: 1, epochs: 1, step: 7, steps: 7, meanLoss: 1.5, seconds: 0))
                == "epoch 1/1 [##########] 7/7 steps  loss 1.5000  0.0 s")
    }
}
