import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

@Suite("Intensity transforms", .computeBound)
struct IntensityTests {
    let geometry = VolumeGeometry(dimensions: SIMD3(17, 13, 11), origin: .zero, spacing: Vector3(1, 1, 1))

    var ct: Volume<Float> {
        makeVolume(geometry) { i, j, k in Float(-1000 + 37 * i + 91 * j + 13 * k * k) + Float((i * j) % 7) * 0.25 }
    }

    @Test("Window presets: soft tissue W400/L40, lung W1500/L-600, bone W1800/L400")
    func presets() {
        #expect(Window.softTissue == Window(minimum: -160, maximum: 240))
        #expect(Window.lung == Window(minimum: -1350, maximum: 150))
        #expect(Window.bone == Window(minimum: -500, maximum: 1300))
    }

    @Test("Window clip then scale to [0,1] and [-1,1]")
    func windowAndScale() throws {
        var pipeline = VolumePipeline([WindowClip(.softTissue), ScaleIntensity(to: .unit, from: .softTissue)])
        let out = try pipeline.apply(Sample(image: ct))
        for (a, b) in zip(ct.voxels, out.image.voxels) {
            #expect(abs(b - (min(max(a, -160), 240) + 160) / 400) < 1e-6)
        }
        let symmetric = try ScaleIntensity(to: .symmetric).apply(Sample(image: ct)).image.voxels
        #expect(symmetric.min() == -1 && symmetric.max() == 1)
    }

    @Test("A window with min ≥ max is an error naming the window; NaN is never produced")
    func badWindow() {
        do {
            _ = try WindowClip(Window(minimum: 100, maximum: 100)).apply(Sample(image: ct))
            Issue.record("no error")
        } catch { #expect(error.code == .invalidWindow && error.description.contains("WindowClip")) }
        let constant = Volume<Float>(geometry: geometry, repeating: 7)
        let outputs = [
            try? ScaleIntensity().apply(Sample(image: constant)),
            try? ZScore().apply(Sample(image: constant)),
            try? PercentileNormalize().apply(Sample(image: constant)),
        ]
        for out in outputs { #expect(out?.image.voxels.allSatisfy(\.isFinite) == true) }
        var nan = constant
        nan.voxels[3] = .nan
        #expect(throws: VolumesError.self) { try ZScore().apply(Sample(image: nan)) }
    }

    @Test("Z-score over the whole volume and over a mask")
    func zScore() throws {
        let out = try ZScore().apply(Sample(image: ct)).image
        let stats = out.statistics
        #expect(abs(stats.mean) < 1e-5 && abs(stats.standardDeviation - 1) < 1e-4)
        let label = Volume<UInt8>(geometry: geometry, voxels: ct.voxels.map { $0 > 0 ? 1 : 0 })
        let masked = try ZScore(mask: .label).apply(Sample(image: ct, label: label)).image
        let inside = zip(masked.voxels, label.voxels).filter { $1 != 0 }.map { Double($0.0) }
        let mean = inside.reduce(0, +) / Double(inside.count)
        #expect(abs(mean) < 1e-5)
        #expect(throws: VolumesError.self) {
            try ZScore(mask: .label).apply(Sample(image: ct, label: Volume(geometry: geometry, repeating: 0)))
        }
    }

    @Test("Percentiles match a full sort with numpy's linear interpolation")
    func percentiles() {
        let values = ct.voxels
        let sorted = values.sorted()
        for p in [0.0, 0.5, 12.3, 50, 99.5, 100] {
            let h = p / 100 * Double(sorted.count - 1)
            let lo = Int(h)
            let hi = min(lo + 1, sorted.count - 1)
            let expected = Double(sorted[lo]) + (h - Double(lo)) * Double(sorted[hi] - sorted[lo])
            #expect(abs(IntensityStatistics.percentiles(values, [p])[0] - expected) < 1e-6)
        }
    }

    @Test("Histogram matching to a volume's own histogram is the identity; to a shifted one, a shift")
    func histogramMatch() throws {
        let reference = ReferenceHistogram(volume: ct)
        let same = try HistogramMatch(reference: reference).apply(Sample(image: ct)).image
        for (a, b) in zip(ct.voxels, same.voxels) { #expect(abs(a - b) < 1e-2) }
        let shifted = ReferenceHistogram(
            probabilities: reference.probabilities,
            values: reference.values.map { $0 * 2 + 50 })
        let out = try HistogramMatch(reference: shifted).apply(Sample(image: ct)).image
        for (a, b) in zip(ct.voxels, out.voxels) { #expect(abs(b - (a * 2 + 50)) < 2e-2) }
        #expect(throws: VolumesError.self) {
            let single = ReferenceHistogram(probabilities: [0.5], values: [1])
            return try HistogramMatch(reference: single).apply(Sample(image: ct))
        }
    }
}
