import Randomness
import Volumes

/// The sample data's generator: Volumes' SplitMix64 (same seed, same bytes on every platform).
public typealias SeededGenerator = SplitMix64

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
