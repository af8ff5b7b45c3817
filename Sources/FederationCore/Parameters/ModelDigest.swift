/// A 64-bit fingerprint of a model: its tensors in order, each with its name, shape and the bit patterns of its
/// float32 values. The server announces the digest of every model it sends, and a site names the digest of the model
/// it holds when it asks for the next one, so that the server can send only the change (`ModelBroadcast` and
/// `ModelReceiver`): two models with the same digest are taken to be the same, bit for bit.
///
/// Not a cryptographic hash (nothing is gained by forging one: a site that names a model it does not hold only
/// breaks its own download, which the digest of the result then catches); it catches any accidental difference —
/// a value's bit, a tensor's order, name or shape. Integer arithmetic only, so the same on every CPU.
///
/// Per tensor of n values with bit patterns xᵢ: Fletcher sums in 16 lanes of 32 bits (`sums`), folded with the
/// name (FNV-1a), the shape and n through the SplitMix64 finaliser. Two vector additions per 16 values.
public struct ModelDigest: Sendable, Hashable, CustomStringConvertible {
    public let value: UInt64

    public init(value: UInt64) { self.value = value }

    /// The digest written as `description` writes it: exactly 16 hexadecimal digits (nil for anything else).
    public init?(hex: String) {
        guard hex.utf8.count == 16,
            hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }),
            let v = UInt64(hex, radix: 16)
        else { return nil }
        value = v
    }

    /// 16 lower-case hexadecimal digits.
    public var description: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public init(of model: ParameterSet) {
        self = Self.checked(model).digest
    }

    /// The digest, and the name of the first tensor holding NaN or ±Inf (nil when every value is finite), in one
    /// pass over the values.
    public static func checked(_ model: ParameterSet) -> (digest: ModelDigest, nonFinite: String?) {
        var nonFinite: String?
        var h: UInt64 = 0x7465_7373_6572_6131  // "tessera1"
        for t in model.tensors {
            var name: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in t.name.utf8 { name = (name ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            h = Self.mix(h ^ name)
            h = Self.mix(h ^ UInt64(t.shape.count))
            for d in t.shape { h = Self.mix(h ^ UInt64(bitPattern: Int64(d))) }
            let (a, b, largest) = t.values.withUnsafeBufferPointer { Self.sums($0) }
            if nonFinite == nil, largest >= 0x7f80_0000 { nonFinite = t.name }
            h = Self.mix(h ^ UInt64(t.count))
            h = Self.mix(h ^ a)
            h = Self.mix(h ^ b)
        }
        return (ModelDigest(value: h), nonFinite)
    }

    /// SplitMix64's finaliser (Steele, Lea and Flood 2014): every input bit moves every output bit.
    @inline(__always)
    private static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Fletcher sums of the scrambled bit patterns in 16 lanes of 32 bits: value i goes to lane i mod 16, where
    /// S ← S + h(xᵢ) and T ← T + S (mod 2³²), so T weighs each value by its position; the tail is zero-padded (h(0)
    /// = 0). h (a multiply-xorshift, bijective) spreads each bit over the word first: plain sums would miss an even
    /// number of sign flips (2 · 2³¹ ≡ 0), a negated tensor among them. Folded into (A, B): the lanes' S and T packed
    /// two by two into 64-bit words, mixed.
    @inline(__always)
    private static func scrambled(_ x: SIMD16<UInt32>) -> SIMD16<UInt32> {
        var v = x ^ (x &>> 16)
        v &*= 0x045d_9f3b
        return v ^ (v &>> 16)
    }

    /// Also the largest magnitude bit pattern (sign cleared: ≥ 0x7f800000 for ±Inf and NaN).
    private static func sums(_ values: UnsafeBufferPointer<Float>) -> (UInt64, UInt64, UInt32) {
        guard let base = values.baseAddress else { return (0, 0, 0) }
        var s = SIMD16<UInt32>()
        var t = SIMD16<UInt32>()
        var m = SIMD16<UInt32>()
        let raw = UnsafeRawPointer(base)
        let whole = values.count / 16
        for g in 0..<whole {
            let x = raw.loadUnaligned(fromByteOffset: 64 * g, as: SIMD16<UInt32>.self)
            m = pointwiseMax(m, x & 0x7fff_ffff)
            s &+= scrambled(x)
            t &+= s
        }
        if whole * 16 < values.count {
            var tail = SIMD16<UInt32>()
            for i in (whole * 16)..<values.count { tail[i - whole * 16] = values[i].bitPattern }
            m = pointwiseMax(m, tail & 0x7fff_ffff)
            s &+= scrambled(tail)
            t &+= s
        }
        var a: UInt64 = 0
        var b: UInt64 = 0
        for lane in stride(from: 0, to: 16, by: 2) {
            a = mix(a ^ (UInt64(s[lane]) << 32 | UInt64(s[lane + 1])))
            b = mix(b ^ (UInt64(t[lane]) << 32 | UInt64(t[lane + 1])))
        }
        return (a, b, m.max())
    }
}
