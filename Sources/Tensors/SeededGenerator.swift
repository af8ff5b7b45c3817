import Randomness

/// Tessera's generator (SplitMix64, from `Randomness`). Every random draw in Tessera (initialisation, dropout masks,
/// test data) goes through an explicit generator so that a run is reproducible from its seed.
public typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1), 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
