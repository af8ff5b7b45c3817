import DICOMIO
import Foundation
import TestSupport
import Testing

@testable import Volumes

/// Resampling and normalisation against golden values from scipy/numpy, computed by
/// scripts/reference/preprocess_golden.py (provenance and sampling conventions in the JSON's "provenance" block and
/// the script's docstring). Tolerance: |swift − reference| ≤ 1e-5 · max(1, |reference|).
@Suite("Golden values from scipy/numpy", .computeBound)
struct GoldenTests {
    struct Grid: Decodable {
        var dimensions: [Int]
        var spacing: [Double]
        var origin: [Double]
        var direction: [[Double]]
        var voxels: [Double]

        var geometry: VolumeGeometry {
            VolumeGeometry(
                dimensions: SIMD3(dimensions[0], dimensions[1], dimensions[2]),
                origin: Vector3(origin[0], origin[1], origin[2]),
                spacing: Vector3(spacing[0], spacing[1], spacing[2]),
                direction: (
                    Vector3(direction[0][0], direction[0][1], direction[0][2]),
                    Vector3(direction[1][0], direction[1][1], direction[1][2]),
                    Vector3(direction[2][0], direction[2][1], direction[2][2])
                ))
        }
        var volume: Volume<Float> { Volume(geometry: geometry, voxels: voxels.map { Float($0) }) }
    }
    struct Case: Decodable {
        var input: Grid
        var output: Grid
        var anti_alias: Bool
    }
    struct Normalisation: Decodable {
        var dimensions: [Int]
        var input: [Double]
        var reference: [Double]
        var zscore: [Double]
        var percentile_bounds: [Double]
        var percentile: [Double]
        var soft_tissue_unit: [Double]
        var reference_quantiles: [Double]
        var histogram_matched: [Double]
    }
    struct Golden: Decodable {
        var provenance: [String: String]
        var resampling: [String: Case]
        var normalisation: Normalisation
    }

    static let golden: Golden? = {
        let path = repositoryRoot + "/Tests/VolumesTests/Golden/preprocess_golden.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Golden.self, from: data)
    }()

    static var caseNames: [String] { (golden?.resampling.keys).map { Array($0).sorted() } ?? [] }

    func expectClose(_ ours: [Float], _ theirs: [Double], _ what: String) {
        #expect(ours.count == theirs.count, "\(what): \(ours.count) values vs \(theirs.count)")
        var worst = 0.0
        for (a, b) in zip(ours, theirs) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
        #expect(worst <= 1e-5, "\(what): worst relative difference \(worst)")
    }

    @Test("The golden file is present, with provenance")
    func present() throws {
        let golden = try #require(Self.golden)
        #expect(golden.provenance["scipy"] != nil && golden.provenance["numpy"] != nil)
        #expect(Self.caseNames.count == 4)
    }

    @Test("Trilinear resampling (and anti-aliasing) matches scipy", arguments: caseNames)
    func resampling(name: String) throws {
        let c = try #require(Self.golden?.resampling[name])
        let input = c.input.volume
        let target = c.output.geometry
        if target.direction == input.geometry.direction && target.origin == input.geometry.origin {
            // Through the public transform: the output grid must be the one the reference computed.
            let spacing = target.spacing
            let out = try Resample(spacing: spacing, antiAlias: c.anti_alias).apply(Sample(image: input)).image
            #expect(out.geometry == target)
            expectClose(out.voxels, c.output.voxels, name)
        } else {
            let out = try input.resampled(onto: target, antiAlias: c.anti_alias)
            expectClose(out.voxels, c.output.voxels, name)
        }
    }

    @Test("Normalisation matches numpy: z-score, percentile, window + scale, histogram matching")
    func normalisation() throws {
        let n = try #require(Self.golden?.normalisation)
        let g = VolumeGeometry(
            dimensions: SIMD3(n.dimensions[0], n.dimensions[1], n.dimensions[2]), origin: .zero,
            spacing: Vector3(1, 1, 1))
        let sample = Sample(image: Volume(geometry: g, voxels: n.input.map { Float($0) }))
        expectClose(try ZScore().apply(sample).image.voxels, n.zscore, "zscore")
        let bounds = IntensityStatistics.percentiles(sample.image.voxels, [0.5, 99.5])
        #expect(abs(bounds[0] - n.percentile_bounds[0]) < 1e-9 && abs(bounds[1] - n.percentile_bounds[1]) < 1e-9)
        expectClose(try PercentileNormalize().apply(sample).image.voxels, n.percentile, "percentile")
        var window = VolumePipeline([WindowClip(.softTissue), ScaleIntensity(to: .unit, from: .softTissue)])
        expectClose(try window.apply(sample).image.voxels, n.soft_tissue_unit, "soft tissue window")
        let reference = ReferenceHistogram(volume: Volume(geometry: g, voxels: n.reference.map { Float($0) }))
        for (a, b) in zip(reference.values, n.reference_quantiles) { #expect(abs(a - b) < 1e-9 * max(1, abs(b))) }
        expectClose(
            try HistogramMatch(reference: reference).apply(sample).image.voxels, n.histogram_matched,
            "histogram matching")
    }
}
