import Crypto
import Foundation

/// The server's last step of a secure aggregation: from the holders' revealed shares it reconstructs each
/// survivor's self-mask seed (checked against the seed commitment in its signed advert) and each dropout's mask
/// key (checked against its advertised public key), then removes those masks from the sum of the survivors' masked
/// vectors. The server only ever holds that sum, never a single site's words.
///
/// Reconstruction uses exactly `threshold` shares at a time and tries other subsets when a result fails its check,
/// so a few wrong shares (up to holders − threshold) are tolerated; it fails with `.reconstruction` otherwise.
public struct SecAggUnmasking: Sendable {
    public let parameters: SecAggParameters
    public let graph: NeighbourGraph
    public let senders: Set<String>
    public let survivors: Set<String>
    private let adverts: [String: KeyAdvert]
    private let digest: [UInt8]
    private var shares: [String: [RevealedShare.Secret: [UInt8: Shamir.Share]]] = [:]

    /// - Throws: `.participantSet` unless survivors ⊆ senders ⊆ advertised sites and every set reaches the threshold.
    public init(
        parameters: SecAggParameters, adverts: [KeyAdvert], senders: Set<String>, survivors: Set<String>
    ) throws(SecureAggregationError) {
        self.parameters = parameters
        self.graph = try NeighbourGraph(participants: adverts.map(\.site), parameters: parameters)
        var byName: [String: KeyAdvert] = [:]
        for advert in adverts { byName[advert.site] = advert }
        guard senders.isSubset(of: byName.keys), survivors.isSubset(of: senders),
            survivors.count >= parameters.threshold
        else {
            throw SecureAggregationError(
                .participantSet,
                "survivors \(survivors.sorted()) must be among the senders \(senders.sorted()), themselves among the "
                    + "advertised sites, and number at least the threshold \(parameters.threshold)")
        }
        self.adverts = byName
        self.senders = senders
        self.survivors = survivors
        self.digest = parameters.digest
    }

    /// Takes one holder's answer. Shares of sites the holder does not hold, of the wrong kind for a site (a seed share
    /// of a dropout, a key share of a survivor) or with a wrong x-coordinate are refused.
    /// - Throws: `.malformedMessage` naming the bad share.
    public mutating func add(_ response: SecAggMessage.UnmaskResponse, from holder: String)
        throws(SecureAggregationError)
    {
        guard survivors.contains(holder), let x = graph.shareIndex(holder) else {
            throw SecureAggregationError(.malformedMessage, "unmask shares from \(holder), which is not a survivor")
        }
        for revealed in response.shares {
            let expected: RevealedShare.Secret = survivors.contains(revealed.owner) ? .selfMaskSeed : .maskKey
            guard senders.contains(revealed.owner), graph.holders(of: revealed.owner).contains(holder),
                revealed.secret == expected, revealed.share.x == x, revealed.share.y.count == 32
            else {
                throw SecureAggregationError(
                    .malformedMessage, "\(holder) revealed a share of \(revealed.owner) it may not reveal")
            }
            shares[revealed.owner, default: [:]][revealed.secret, default: [:]][x] = revealed.share
        }
    }

    /// The masks to take out of the sum: for every survivor −PRG(b), for every (dropout d, survivor j) neighbour pair
    /// the opposite of what j added for d.
    /// - Throws: `.reconstruction` when a secret cannot be rebuilt from the shares received.
    public func masks() throws(SecureAggregationError) -> MaskRemoval {
        var streams: [(MaskStream, Bool)] = []
        for site in survivors.sorted() {
            guard let advert = adverts[site] else { continue }
            let seed = try reconstruct(site, .selfMaskSeed) { candidate in
                SecAggSiteSession.commitment(seed: candidate, digest: digest) == Array(advert.seedCommitment)
            }
            streams.append((try MaskStream(seed: seed), true))
        }
        for dropout in senders.subtracting(survivors).sorted() {
            guard let advert = adverts[dropout] else { continue }
            let raw = try reconstruct(dropout, .maskKey) { candidate in
                (try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: candidate))?.publicKey.rawRepresentation
                    == advert.maskKey
            }
            let key: Curve25519.KeyAgreement.PrivateKey
            do {
                key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
            } catch {
                throw SecureAggregationError(
                    .reconstruction, "the mask key of \(dropout) is not an X25519 key", cause: error)
            }
            for peer in graph.neighbours(of: dropout) where survivors.contains(peer) {
                guard let peerAdvert = adverts[peer] else { continue }
                let seed = try SecAggSiteSession.pairwiseSeed(
                    own: key, peer: peer, peerKey: peerAdvert.maskKey, site: dropout, digest: digest)
                // The survivor added +PRG when its name sorts first: subtract it then, add it back otherwise.
                streams.append((try MaskStream(seed: seed), peer < dropout))
            }
        }
        return MaskRemoval(streams: streams)
    }

    private func reconstruct(
        _ owner: String, _ secret: RevealedShare.Secret, check: ([UInt8]) -> Bool
    ) throws(SecureAggregationError) -> [UInt8] {
        let available = Array((shares[owner]?[secret] ?? [:]).values).sorted { $0.x < $1.x }
        let t = parameters.threshold
        guard available.count >= t else {
            throw SecureAggregationError(
                .reconstruction,
                "\(available.count) shares of \(owner)'s \(secret.rawValue) arrived; \(t) are needed to unmask the sum")
        }
        // Subsets of size t in lexicographic order, at most 10 000 tried.
        var indices = Array(0..<t)
        for _ in 0..<10_000 {
            if let value = try? Shamir.combine(indices.map { available[$0] }), check(value) { return value }
            var i = t - 1
            while i >= 0 && indices[i] == available.count - t + i { i -= 1 }
            if i < 0 { break }
            indices[i] += 1
            for j in (i + 1)..<t { indices[j] = indices[j - 1] + 1 }
        }
        throw SecureAggregationError(
            .reconstruction, "the shares of \(owner)'s \(secret.rawValue) do not agree with its signed advert")
    }
}

/// Mask words to take out of a sum of masked vectors, range by range.
public struct MaskRemoval: Sendable {
    private var streams: [(stream: MaskStream, negate: Bool)]

    init(streams: [(MaskStream, Bool)]) { self.streams = streams.map { (stream: $0.0, negate: $0.1) } }

    /// Removes the masks from `words`, which hold the sum's words `position ..< position + words.count`.
    public mutating func apply(to words: UnsafeMutableBufferPointer<UInt32>, at position: Int)
        throws(SecureAggregationError)
    {
        for i in streams.indices { try streams[i].stream.apply(to: words, at: position, negate: streams[i].negate) }
    }
}
