/// Shamir secret sharing over GF(2⁸), byte by byte (the field of AES: x⁸ + x⁴ + x³ + x + 1): each secret byte is the
/// constant term of its own random polynomial of degree `threshold − 1`; share j is the polynomials evaluated at
/// x = j (1…255). Any `threshold` shares give the secret back by Lagrange interpolation at 0; fewer reveal nothing
/// about it (every secret is equally likely).
///
/// Limits: at most 255 shares (x ranges over the non-zero field elements); 1 ≤ threshold ≤ share count.
public enum Shamir {
    /// The largest number of shares (distinct non-zero x-coordinates in GF(2⁸)).
    public static let maxShares = 255

    /// One share: its x-coordinate (1…255) and one field element per secret byte.
    public struct Share: Sendable, Equatable, Codable {
        public var x: UInt8
        public var y: [UInt8]
        public init(x: UInt8, y: [UInt8]) {
            self.x = x
            self.y = y
        }
    }

    /// Shares of `secret` at the x-coordinates `xs`, any `threshold` of which reconstruct it.
    /// - Parameter random: fills a buffer with secret random bytes (the system CSPRNG in production).
    /// - Throws: `.invalidParameters` for a threshold outside 1…`xs.count`, a zero or repeated x.
    public static func split(
        _ secret: [UInt8], threshold: Int, xs: [UInt8], random: (inout [UInt8]) -> Void
    ) throws(SecureAggregationError) -> [Share] {
        guard threshold >= 1, threshold <= xs.count, xs.count <= maxShares else {
            throw SecureAggregationError(
                .invalidParameters,
                "a threshold of \(threshold) with \(xs.count) shares: need 1 ≤ threshold ≤ shares ≤ \(maxShares)")
        }
        guard !xs.contains(0), Set(xs).count == xs.count else {
            throw SecureAggregationError(.invalidParameters, "share x-coordinates must be distinct and non-zero")
        }
        // Coefficients 1…threshold−1 of every byte's polynomial, secret random.
        var coefficients = [UInt8](repeating: 0, count: secret.count * (threshold - 1))
        random(&coefficients)
        return xs.map { x in
            var y = [UInt8](repeating: 0, count: secret.count)
            for b in secret.indices {
                // Horner: ((a_{t−1}·x + a_{t−2})·x + …)·x + secret.
                var acc: UInt8 = 0
                var k = threshold - 1
                while k >= 1 {
                    acc = GF256.multiply(acc, x) ^ coefficients[b * (threshold - 1) + (k - 1)]
                    k -= 1
                }
                y[b] = GF256.multiply(acc, x) ^ secret[b]
            }
            return Share(x: x, y: y)
        }
    }

    /// The secret from `shares` (all of them are used: pass exactly `threshold` or more consistent shares).
    /// - Throws: `.reconstruction` for no shares, repeated or zero x-coordinates, or shares of different lengths.
    public static func combine(_ shares: [Share]) throws(SecureAggregationError) -> [UInt8] {
        guard let length = shares.first?.y.count else {
            throw SecureAggregationError(.reconstruction, "no shares to reconstruct from")
        }
        let xs = shares.map(\.x)
        guard !xs.contains(0), Set(xs).count == xs.count, shares.allSatisfy({ $0.y.count == length }) else {
            throw SecureAggregationError(
                .reconstruction, "shares must have distinct non-zero x-coordinates and equal lengths")
        }
        // Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_j − x_i); in GF(2⁸) subtraction is xor.
        let basis = xs.indices.map { i -> UInt8 in
            var numerator: UInt8 = 1
            var denominator: UInt8 = 1
            for j in xs.indices where j != i {
                numerator = GF256.multiply(numerator, xs[j])
                denominator = GF256.multiply(denominator, xs[j] ^ xs[i])
            }
            return GF256.multiply(numerator, GF256.inverse(denominator))
        }
        var secret = [UInt8](repeating: 0, count: length)
        for (i, share) in shares.enumerated() {
            for b in 0..<length { secret[b] ^= GF256.multiply(share.y[b], basis[i]) }
        }
        return secret
    }
}

/// Arithmetic in GF(2⁸) modulo x⁸ + x⁴ + x³ + x + 1 (0x11B), by log/antilog tables on the generator 3.
enum GF256 {
    private static let tables: (log: [UInt8], exp: [UInt8]) = {
        var log = [UInt8](repeating: 0, count: 256)
        var exp = [UInt8](repeating: 0, count: 510)
        var x: UInt8 = 1
        for i in 0..<255 {
            exp[i] = x
            log[Int(x)] = UInt8(i)
            // x ← x · 3 = x · 2 ⊕ x.
            let doubled = (x << 1) ^ ((x & 0x80) != 0 ? 0x1B : 0)
            x = doubled ^ x
        }
        for i in 255..<510 { exp[i] = exp[i - 255] }
        return (log, exp)
    }()

    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        if a == 0 || b == 0 { return 0 }
        return tables.exp[Int(tables.log[Int(a)]) + Int(tables.log[Int(b)])]
    }

    /// The multiplicative inverse of a non-zero element (0 maps to 0; callers never pass it).
    static func inverse(_ a: UInt8) -> UInt8 {
        if a == 0 { return 0 }
        return tables.exp[255 - Int(tables.log[Int(a)])]
    }
}
