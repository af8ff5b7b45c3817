/// SplitMix64: a small, fast, seedable generator (Steele, Lea & Flood 2014). Same seed, same sequence, on every
/// platform — the sample data must be reproducible byte for byte.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits (not `Double.random(in:)`, whose algorithm may change).
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }

    /// Integer in lo...hi.
    public mutating func integer(_ lo: Int, _ hi: Int) -> Int { lo + Int(next() % UInt64(hi - lo + 1)) }

    /// Standard normal by Box–Muller.
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }
}

/// Deterministic DICOM UIDs under the UUID-derived root 2.25 (PS3.5 B.2): "2.25." + a 128-bit decimal number
/// hashed from a seed and a name.
public struct UIDFactory: Sendable {
    public var seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    public func uid(_ name: String) -> String {
        var h1: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in name.utf8 { h1 = (h1 ^ UInt64(b)) &* 0x100_0000_01B3 }
        var g = SeededGenerator(seed: h1)
        let value = (UInt128(g.next()) << 64 | UInt128(g.next())) >> 1  // below 2^127: at most 39 digits
        return "2.25." + String(value)
    }
}

import Foundation

@inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
