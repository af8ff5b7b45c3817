import Foundation
import Randomness

/// Random intensity scale and shift (MONAI `RandScaleIntensity` + `RandShiftIntensity`):
/// `v′ = v · (1 + a) + b`, a uniform in ±`scale`, b uniform in ±`shift` (image units), with probability
/// `probability`.
public struct RandomIntensityShiftScale: VolumeTransform {
    public var shift: Double
    public var scale: Double
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "RandomIntensityShiftScale" }

    public init(shift: Double = 0.1, scale: Double = 0.1, probability: Double = 0.5, seed: UInt64) {
        self.shift = shift
        self.scale = scale
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        let apply = generator.chance(probability)
        let a = Float(1 + generator.uniform(-scale, scale))
        let b = Float(generator.uniform(-shift, shift))
        guard apply else { return sample }
        var result = sample
        result.image.voxels.withUnsafeMutableBufferPointer { v in for i in v.indices { v[i] = v[i] * a + b } }
        return result
    }
}

/// Additive Gaussian noise `v′ = v + σ·N(0, 1)` per voxel (σ in image units), with probability `probability`.
/// The noise comes from the transform's own generator, voxel by voxel in storage order: reproducible exactly.
public struct RandomGaussianNoise: VolumeTransform {
    public var standardDeviation: Double
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "RandomGaussianNoise" }

    public init(standardDeviation: Double = 0.05, probability: Double = 0.3, seed: UInt64) {
        self.standardDeviation = standardDeviation
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        guard standardDeviation >= 0, standardDeviation.isFinite else {
            throw VolumesError(.invalidParameter, transform: name, "σ = \(standardDeviation) must be ≥ 0")
        }
        guard generator.chance(probability) else { return sample }
        var result = sample
        let sigma = standardDeviation
        var noise = generator.split()
        result.image.voxels.withUnsafeMutableBufferPointer { v in
            var i = 0
            while i < v.count {
                // Box–Muller gives two normals per pair of uniforms.
                let u1 = max(noise.uniform(), 1e-300)
                let u2 = noise.uniform()
                let r = (-2 * log(u1)).squareRoot() * sigma
                v[i] += Float(r * cos(2 * .pi * u2))
                if i + 1 < v.count { v[i + 1] += Float(r * sin(2 * .pi * u2)) }
                i += 2
            }
        }
        return result
    }
}

/// Random gamma contrast (MONAI `RandAdjustContrast`): with r = max − min of the volume,
/// `v′ = min + r · ((v − min)/r)^γ`, γ uniform in `gamma`, with probability `probability`. A constant volume is
/// unchanged.
public struct RandomGamma: VolumeTransform {
    public var gamma: ClosedRange<Double>
    public var probability: Double
    public var generator: SplitMix64
    public var name: String { "RandomGamma" }

    public init(gamma: ClosedRange<Double> = 0.7...1.5, probability: Double = 0.3, seed: UInt64) {
        self.gamma = gamma
        self.probability = probability
        generator = SplitMix64(seed: seed)
    }

    public mutating func apply(_ sample: Sample) throws(VolumesError) -> Sample {
        try checkProbability(probability, name)
        guard gamma.lowerBound > 0, gamma.upperBound.isFinite else {
            throw VolumesError(.invalidParameter, transform: name, "γ range \(gamma) must be positive")
        }
        let apply = generator.chance(probability)
        let g = generator.uniform(gamma.lowerBound, gamma.upperBound)
        guard apply else { return sample }
        let (lo, hi) = try IntensityStatistics.extrema(sample.image.voxels, transform: name)
        guard hi > lo else { return sample }
        var result = sample
        let range = Double(hi) - Double(lo)
        result.image.voxels.withUnsafeMutableBufferPointer { v in
            for i in v.indices {
                v[i] = Float(Double(lo) + range * pow((Double(v[i]) - Double(lo)) / range, g))
            }
        }
        return result
    }
}
