import Crypto
import Foundation

/// What every participant of one secure aggregation agrees to, signed into each key advertisement so the server
/// cannot give sites different thresholds, ranges or sessions. One value per round attempt.
public struct SecAggParameters: Sendable, Equatable, Codable {
    /// Unique per round attempt (job, round and a fresh random nonce of the server): a retried or resumed round is
    /// a new session with new keys, never a second unmasking of the old one.
    public var session: String
    /// What is aggregated, e.g. `training`.
    public var purpose: String
    /// t: shares needed to reconstruct a participant's secrets; 2 ≤ t, and t > (holders)/2 once the participants
    /// are known (holders: a site and its neighbours).
    public var threshold: Int
    /// k: each site masks with and shares its secrets among k neighbours on a ring ordered by the session (even,
    /// ≥ 2); 0 means every other participant (the complete graph of SecAgg; SecAgg+ uses k ≈ O(log n)).
    public var neighbours: Int
    /// Each value is clipped to [−clipRange, clipRange] before quantisation (`RingQuantizer`).
    public var clipRange: Double
    /// Words in the masked vector: the update's values, then one word for the site's weight.
    public var vectorLength: Int

    /// Limits: the session name ≤ 256 bytes, vectors of 1…2³¹ − 1 words, at most `Shamir.maxShares` participants.
    public static let maxSessionBytes = 256
    public static let maxVectorLength = Int(Int32.max)

    public init(
        session: String, purpose: String, threshold: Int, neighbours: Int = 0, clipRange: Double, vectorLength: Int
    ) throws(SecureAggregationError) {
        self.session = session
        self.purpose = purpose
        self.threshold = threshold
        self.neighbours = neighbours
        self.clipRange = clipRange
        self.vectorLength = vectorLength
        try validate()
    }

    /// - Throws: `.invalidParameters` naming the setting out of range.
    public func validate() throws(SecureAggregationError) {
        guard !session.isEmpty, session.utf8.count <= Self.maxSessionBytes, purpose.utf8.count <= 64 else {
            throw SecureAggregationError(.invalidParameters, "a session name of 1…\(Self.maxSessionBytes) bytes")
        }
        guard threshold >= 2, threshold <= Shamir.maxShares else {
            throw SecureAggregationError(.invalidParameters, "threshold \(threshold): need 2…\(Shamir.maxShares)")
        }
        guard neighbours == 0 || (neighbours >= 2 && neighbours % 2 == 0 && neighbours < Shamir.maxShares) else {
            throw SecureAggregationError(
                .invalidParameters, "neighbours \(neighbours): 0 (every participant) or an even number ≥ 2")
        }
        guard vectorLength >= 1, vectorLength <= Self.maxVectorLength else {
            throw SecureAggregationError(.invalidParameters, "vector length \(vectorLength): need 1…2^31 − 1")
        }
        _ = try RingQuantizer(clipRange: clipRange, participants: 1)
    }

    /// SHA-256 of the canonical encoding: what signatures and key derivations bind to.
    public var digest: [UInt8] {
        var t = Transcript("tessera-secagg-v1/parameters")
        t.append(session)
        t.append(purpose)
        t.append(threshold)
        t.append(neighbours)
        t.append(clipRange)
        t.append(vectorLength)
        return Array(SHA256.hash(data: t.bytes))
    }
}

/// The participants of a session and who masks with whom: a ring ordered by SHA-256(session digest ‖ name), each site
/// adjacent to the k/2 sites on either side (every other site when k = 0 or k ≥ n − 1). Symmetric, the same at every
/// site and at the server for the same advertised set.
public struct NeighbourGraph: Sendable, Equatable {
    /// Participants in ring order.
    public let ring: [String]
    private let position: [String: Int]
    private let half: Int?

    /// - Throws: `.participantSet` for repeated names or more than `Shamir.maxShares` participants;
    ///   `.invalidParameters` when the threshold does not fit the holders (a site and its neighbours).
    public init(participants: [String], parameters: SecAggParameters) throws(SecureAggregationError) {
        guard Set(participants).count == participants.count else {
            throw SecureAggregationError(.participantSet, "a participant is listed twice")
        }
        guard participants.count <= Shamir.maxShares else {
            throw SecureAggregationError(
                .participantSet, "\(participants.count) participants; at most \(Shamir.maxShares)")
        }
        let digest = parameters.digest
        func rank(_ name: String) -> [UInt8] { Array(SHA256.hash(data: digest + Array(name.utf8))) }
        let ranked = participants.map { (rank($0), $0) }.sorted { a, b in
            a.0.lexicographicallyPrecedes(b.0) || (a.0 == b.0 && a.1 < b.1)
        }
        ring = ranked.map(\.1)
        var position: [String: Int] = [:]
        for (i, name) in ring.enumerated() { position[name] = i }
        self.position = position
        let n = participants.count
        let k = parameters.neighbours
        half = (k == 0 || k >= n - 1) ? nil : k / 2
        let holders = holderCount
        guard parameters.threshold <= holders, 2 * parameters.threshold > holders else {
            throw SecureAggregationError(
                .invalidParameters,
                "threshold \(parameters.threshold) with \(holders) share holders per site (a site and its "
                    + "neighbours among \(n) participants): need holders/2 < threshold ≤ holders")
        }
    }

    /// A site and its neighbours: who holds shares of its secrets.
    public var holderCount: Int {
        guard let half else { return ring.count }
        return 2 * half + 1
    }

    public func contains(_ site: String) -> Bool { position[site] != nil }

    /// The share x-coordinate of `site`: its ring position + 1 (1…255).
    public func shareIndex(_ site: String) -> UInt8? {
        position[site].map { UInt8(truncatingIfNeeded: $0 + 1) }
    }

    /// The sites `site` masks with (and that hold its shares, besides itself).
    public func neighbours(of site: String) -> [String] {
        guard let p = position[site] else { return [] }
        let n = ring.count
        guard let half else { return ring.filter { $0 != site } }
        var out: [String] = []
        for d in 1...half {
            out.append(ring[(p + d) % n])
            out.append(ring[(p - d + n) % n])
        }
        return out
    }

    /// `site` and its neighbours.
    public func holders(of site: String) -> [String] { [site] + neighbours(of: site) }
}
