import Foundation
import Randomness

/// Random numbers for noise. Production uses the system generator; tests inject a seeded one.
public protocol NoiseSource: Sendable {
    /// Uniform in (0, 1), never exactly 0 or 1.
    mutating func uniform() -> Double
}

/// The operating system's cryptographically secure generator.
public struct SystemNoiseSource: NoiseSource {
    public init() {}
    public mutating func uniform() -> Double {
        var g = SystemRandomNumberGenerator()
        return (Double(g.next() >> 11) + 0.5) * 0x1p-53
    }
}

/// SplitMix64 (Randomness), for reproducible tests and demos only: never for a release that leaves a site.
public struct SeededNoiseSource: NoiseSource {
    var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    /// One seed per site, derived from a run's seed and the site's name (FNV-1a), so sites draw independent noise
    /// and a run is reproducible whichever process each site runs in.
    public init(seed: UInt64, site: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in site.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        self.init(seed: h)
    }
    public mutating func uniform() -> Double { (Double(generator.next() >> 11) + 0.5) * 0x1p-53 }
}

/// Calibrated noise (Dwork & Roth, *The Algorithmic Foundations of Differential Privacy*, 2014).
public enum Calibration {
    /// Laplace mechanism (Definition 3.3, Theorem 3.6): noise Lap(b) with b = Δ₁ / ε gives ε-DP for a query of
    /// L1 sensitivity Δ₁. Variance 2b².
    public static func laplaceScale(sensitivity: Double, epsilon: Double) -> Double { sensitivity / epsilon }

    /// Gaussian mechanism (Theorem A.1): σ = Δ₂ · √(2 ln(1.25/δ)) / ε gives (ε, δ)-DP for ε in (0, 1) and a query
    /// of L2 sensitivity Δ₂.
    public static func gaussianSigma(sensitivity: Double, epsilon: Double, delta: Double) -> Double {
        sensitivity * (2 * log(1.25 / delta)).squareRoot() / epsilon
    }

    /// One Laplace sample of scale b, by inverse CDF.
    public static func laplace<S: NoiseSource>(scale b: Double, using source: inout S) -> Double {
        let u = source.uniform() - 0.5
        return -b * (u < 0 ? -1 : 1) * log(1 - 2 * abs(u))
    }

    /// One N(0, σ²) sample (Box–Muller).
    public static func gaussian<S: NoiseSource>(sigma: Double, using source: inout S) -> Double {
        sigma * (-2 * log(source.uniform())).squareRoot() * cos(2 * .pi * source.uniform())
    }
}
