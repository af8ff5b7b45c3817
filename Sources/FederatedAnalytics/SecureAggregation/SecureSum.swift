import Crypto
import Foundation

/// Fixed-point encoding of real values into the ring Z/2⁶⁴ where masks cancel: v ↦ round(v · 2²⁰) mod 2⁶⁴.
/// Resolution 2⁻²⁰ ≈ 1e-6; sums stay exact for |Σ| < 2⁴³ ≈ 8.8e12.
public enum FixedPoint {
    public static let scale = 1_048_576.0

    /// - Throws: `.secureAggregation` when `v · 2²⁰` is not finite or does not fit a signed 64-bit word (queries
    ///   are checked against this range before any ledger charge; this is the last guard, never a trap).
    public static func encode(_ v: Double) throws(AnalyticsError) -> UInt64 {
        let x = (v * scale).rounded()
        guard x.isFinite, x >= -0x1p63, x < 0x1p63 else {
            throw AnalyticsError(
                .secureAggregation,
                "value \(v) is outside the fixed-point range of secure sums "
                    + "(|v| < 2^43); narrow the query's bounds")
        }
        return UInt64(bitPattern: Int64(x))
    }

    public static func decode(_ w: UInt64) -> Double {
        Double(Int64(bitPattern: w)) / scale
    }
}

/// Pairwise additive masking for secure sums (after Bonawitz et al., *Practical Secure Aggregation for
/// Privacy-Preserving Machine Learning*, CCS 2017, without its secret sharing):
///
/// - every site publishes an X25519 public key for the session;
/// - sites i and j agree on a shared secret (X25519), turned by HKDF-SHA256 (salt: the session id) into a 32-byte
///   key, which ChaCha20 expands into a mask vector m_ij over Z/2⁶⁴;
/// - site i uploads x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji (fixed point): on its own it looks uniformly random;
/// - the server adds the uploads: every mask appears once with + and once with −, so only Σ x_i remains.
///
/// Dropout: if site d never uploads, the masks it shares with the survivors do not cancel. Each survivor s then
/// reveals m_sd (its pairwise mask with d, which says nothing about s's own value), and the server removes them.
/// If a survivor also fails to answer, the query is aborted with a clear status: nothing partial is released.
public struct SecureSumParticipant: Sendable {
    public let siteID: String
    private let privateKey: Curve25519.KeyAgreement.PrivateKey

    public init(siteID: String) {
        self.siteID = siteID
        self.privateKey = Curve25519.KeyAgreement.PrivateKey()
    }

    /// Raw 32-byte X25519 public key for this session.
    public var publicKey: Data { privateKey.publicKey.rawRepresentation }

    /// The mask this site shares with `peer` for a vector of `length` words (the same on both sides).
    func pairwiseMask(peer: String, peerKey: Data, session: String, length: Int) throws(AnalyticsError) -> [UInt64] {
        do {
            let peerPublic = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerKey)
            let secret = try privateKey.sharedSecretFromKeyAgreement(with: peerPublic)
            // Both sides derive the same key: the info names the pair in a fixed order.
            let pair = [siteID, peer].sorted().joined(separator: "|")
            let key = secret.hkdfDerivedSymmetricKey(
                using: SHA256.self, salt: Data(session.utf8),
                sharedInfo: Data(("tessera-secure-sum|" + pair).utf8),
                outputByteCount: 32)
            let keyBytes = key.withUnsafeBytes { Array($0) }
            var stream = ChaCha20(key: keyBytes, nonce: [UInt8](repeating: 0, count: 12))
            return stream.words64(length)
        } catch {
            throw AnalyticsError(
                .secureAggregation, "key agreement with site \(peer) failed: its public key is not a valid X25519 key",
                cause: "\(error)")
        }
    }

    /// The masked upload of `values` given every participant's public key (including this site's).
    public func mask(_ values: [Double], publicKeys: [String: Data], session: String) throws(AnalyticsError) -> [UInt64]
    {
        var out: [UInt64] = []
        out.reserveCapacity(values.count)
        for v in values { out.append(try FixedPoint.encode(v)) }
        for (peer, key) in publicKeys where peer != siteID {
            let m = try pairwiseMask(peer: peer, peerKey: key, session: session, length: values.count)
            let add = siteID < peer
            for i in out.indices { out[i] = add ? out[i] &+ m[i] : out[i] &- m[i] }
        }
        return out
    }

    /// For dropout recovery: the correction the server adds to the sum to cancel this site's mask with `dropped`
    /// (the negation of what this site's upload contained for that pair).
    public func recoveryMask(dropped: String, droppedKey: Data, session: String, length: Int) throws(AnalyticsError)
        -> [UInt64]
    {
        let m = try pairwiseMask(peer: dropped, peerKey: droppedKey, session: session, length: length)
        return siteID < dropped ? m.map { 0 &- $0 } : m
    }
}

/// The server side: sums masked uploads; removes dropped sites' masks from the survivors' recovery answers.
public enum SecureSumServer {
    /// - Parameters:
    ///   - uploads: masked vectors by site (sites that dropped are absent).
    ///   - expected: every site that published a key.
    ///   - recovery: for each dropped site, every survivor's recovery mask (absent: the survivor did not answer).
    /// - Returns: the exact sum of the survivors' values.
    /// - Throws: `.secureAggregation` when the vectors differ in length or a recovery answer is missing.
    public static func sum(
        uploads: [String: [UInt64]], expected: Set<String>,
        recovery: [String: [String: [UInt64]]]
    ) throws(AnalyticsError) -> [Double] {
        guard let length = uploads.values.first?.count else {
            throw AnalyticsError(.secureAggregation, "no site uploaded its masked values: the query is aborted")
        }
        guard uploads.values.allSatisfy({ $0.count == length }) else {
            throw AnalyticsError(.secureAggregation, "masked uploads differ in length: the sites ran different queries")
        }
        var total = [UInt64](repeating: 0, count: length)
        for vector in uploads.values { for i in 0..<length { total[i] &+= vector[i] } }
        let dropped = expected.subtracting(uploads.keys)
        for d in dropped {
            for survivor in uploads.keys {
                guard let m = recovery[d]?[survivor], m.count == length else {
                    throw AnalyticsError(
                        .secureAggregation,
                        "site \(d) dropped out after masking and site \(survivor) did not "
                            + "return its recovery mask: the secure sum cannot be unmasked and the query is "
                            + "aborted (nothing is released)")
                }
                for i in 0..<length { total[i] &+= m[i] }
            }
        }
        return total.map(FixedPoint.decode)
    }
}
