import Crypto
import Foundation

/// One site's side of one secure aggregation (Bonawitz et al., CCS 2017, with the sparse neighbourhoods of Bell et
/// al., CCS 2020), as five steps the server drives:
///
/// 1. `advertise`: two fresh X25519 keys and a commitment to a fresh self-mask seed b, signed with the site's
///    certificate key.
/// 2. `share`: checks every advert (certificate chains to the project CA, names the site it speaks for, signature
///    over these exact parameters), refuses a set smaller than the threshold or its policy's minimum, then
///    Shamir-shares b and its mask private key among its holders (itself and its neighbours), each share encrypted
///    for its holder.
/// 3. `prepareMasking`: takes the shares addressed to it and the set U2 of sites that sent shares (⊆ U1); from then
///    on `mask` turns update values into words of Z/2³²: quantised value + PRG(b) ± PRG(pairwise key) for every
///    neighbour in U2 (+ when this site's name sorts first).
/// 4. `confirm`: signs the set U3 of sites whose vectors arrived (⊆ U2, large enough).
/// 5. `unmask`: only for the U3 it signed and with enough valid signatures of it, reveals for each site it holds
///    shares of: the share of b if that site is in U3, of its mask key if it dropped (in U2, not U3); never both for
///    one site, whatever the server asks later.
///
/// What the server learns: Σ over U3 of the quantised, weighted updates, and nothing of a single one unless
/// `threshold` holders of that site collude with it. Any step out of order, with another session, or against these
/// rules throws and the site answers nothing more in this session.
public struct SecAggSiteSession: Sendable {
    public enum Stage: Sendable, Equatable { case advertised, shared, masking, confirmed, revealed }

    public let parameters: SecAggParameters
    public let identity: SigningIdentity
    /// The fewest participants this site reveals anything with (its policy), at least the threshold.
    public let minimumParticipants: Int
    public private(set) var stage: Stage = .advertised
    private let verifier: PeerVerifier
    private let encryptionKey = Curve25519.KeyAgreement.PrivateKey()
    private let maskKey = Curve25519.KeyAgreement.PrivateKey()
    private let seed: [UInt8]
    private let digest: [UInt8]
    private var graph: NeighbourGraph?
    private var peers: [String: KeyAdvert] = [:]
    private var signingKeys: [String: P256.Signing.PublicKey] = [:]
    /// Shares this site holds, by owner: (share of b, share of the mask key).
    private var held: [String: (seed: Shamir.Share, key: Shamir.Share)] = [:]
    private var senders: Set<String> = []
    private var survivors: [String] = []
    private var quantizer: RingQuantizer?
    private var selfMask: MaskStream?
    private var pairwise: [(stream: MaskStream, negate: Bool)] = []
    private var revealed: SecAggMessage.UnmaskResponse?

    /// - Throws: `.invalidParameters` for parameters out of range.
    public init(
        parameters: SecAggParameters, identity: SigningIdentity, verifier: PeerVerifier, minimumParticipants: Int
    ) throws(SecureAggregationError) {
        try parameters.validate()
        self.parameters = parameters
        self.identity = identity
        self.verifier = verifier
        self.minimumParticipants = max(minimumParticipants, parameters.threshold)
        self.digest = parameters.digest
        var seed = [UInt8](repeating: 0, count: 32)
        secureRandom(&seed)
        self.seed = seed
    }

    /// Step 1: this site's signed advert.
    public func advertise() throws(SecureAggregationError) -> KeyAdvert {
        var advert = KeyAdvert(
            site: identity.name, encryptionKey: encryptionKey.publicKey.rawRepresentation,
            maskKey: maskKey.publicKey.rawRepresentation,
            seedCommitment: Data(SecAggSiteSession.commitment(seed: seed, digest: digest)),
            certificate: Data(identity.certificate), signature: Data())
        advert.signature = Data(try identity.sign(advert.transcript(parameters)))
        return advert
    }

    static func commitment(seed: [UInt8], digest: [UInt8]) -> [UInt8] {
        var t = Transcript("tessera-secagg-v1/seed")
        t.append(digest)
        t.append(seed)
        return Array(SHA256.hash(data: t.bytes))
    }

    /// Step 2: checks the advertised set and returns this site's encrypted shares.
    /// - Throws: `.authentication` for an advert whose certificate or signature fails; `.participantSet` when
    ///   this site's own advert is missing or altered, or the set is smaller than `minimumParticipants`.
    public mutating func share(
        _ request: SecAggMessage.ShareRequest, now: Date = Date()
    ) throws(SecureAggregationError) -> SecAggMessage.ShareResponse {
        try expect(.advertised, "share")
        guard request.parameters == parameters else {
            throw SecureAggregationError(
                .participantSet, "the server's parameters for session \(parameters.session) changed after the adverts")
        }
        let names = request.adverts.map(\.site)
        guard names.count >= minimumParticipants else {
            throw SecureAggregationError(
                .participantSet,
                "\(identity.name) takes part in a secure aggregation of at least \(minimumParticipants) sites; the "
                    + "server announced \(names.count)")
        }
        let own = try advertise()
        guard let mine = request.adverts.first(where: { $0.site == identity.name }),
            mine.encryptionKey == own.encryptionKey, mine.maskKey == own.maskKey,
            mine.seedCommitment == own.seedCommitment
        else {
            throw SecureAggregationError(
                .participantSet, "the server's set does not carry \(identity.name)'s own keys unchanged")
        }
        for advert in request.adverts {
            guard advert.certificate.count <= KeyAdvert.maxCertificateBytes, advert.encryptionKey.count == 32,
                advert.maskKey.count == 32, advert.seedCommitment.count == 32
            else {
                throw SecureAggregationError(
                    .malformedMessage, "the advert of \(advert.site) has fields of wrong sizes")
            }
            let key = try verifier.key(of: Array(advert.certificate), for: advert.site, at: now)
            try PeerVerifier.check(
                Array(advert.signature), of: advert.transcript(parameters), by: key,
                what: "the key advert of \(advert.site)")
            signingKeys[advert.site] = key
            peers[advert.site] = advert
        }
        let graph = try NeighbourGraph(participants: names, parameters: parameters)
        self.graph = graph
        let holders = graph.holders(of: identity.name)
        let xs = holders.compactMap { graph.shareIndex($0) }
        let seedShares = try Shamir.split(seed, threshold: parameters.threshold, xs: xs, random: secureRandom)
        let keyShares = try Shamir.split(
            Array(maskKey.rawRepresentation), threshold: parameters.threshold, xs: xs, random: secureRandom)
        var out: [EncryptedShare] = []
        for (i, holder) in holders.enumerated() {
            if holder == identity.name {
                held[holder] = (seedShares[i], keyShares[i])
                continue
            }
            guard let peer = peers[holder] else { continue }
            let plaintext = [seedShares[i].x] + seedShares[i].y + keyShares[i].y
            let box = try seal(plaintext, from: identity.name, to: holder, peerKey: peer.encryptionKey)
            out.append(EncryptedShare(from: identity.name, to: holder, box: box))
        }
        stage = .shared
        return SecAggMessage.ShareResponse(shares: out)
    }

    /// Step 3: takes the shares addressed to this site; afterwards `mask` may be called.
    /// - Throws: `.participantSet` when U2 is not a large enough subset of U1 holding this site, or a holder's
    ///   share is missing; `.authentication` when a share does not decrypt.
    public mutating func prepareMasking(_ request: SecAggMessage.MaskRequest) throws(SecureAggregationError) {
        try expect(.shared, "mask")
        guard request.session == parameters.session, let graph else {
            throw SecureAggregationError(.malformedMessage, "a mask request of another session")
        }
        let u2 = Set(request.senders)
        guard u2.count == request.senders.count, u2.isSubset(of: Set(graph.ring)), u2.contains(identity.name) else {
            throw SecureAggregationError(
                .participantSet,
                "the server's list of sites that shared keys (\(request.senders.sorted())) is not a subset of the "
                    + "signed adverts, or leaves this site out")
        }
        guard u2.count >= minimumParticipants else {
            throw SecureAggregationError(
                .participantSet,
                "only \(u2.count) sites shared keys; \(identity.name) masks only among at least \(minimumParticipants)")
        }
        var received: [String: EncryptedShare] = [:]
        for share in request.shares {
            guard share.to == identity.name, u2.contains(share.from), received[share.from] == nil,
                graph.holders(of: share.from).contains(identity.name)
            else {
                throw SecureAggregationError(
                    .participantSet, "a share from \(share.from) to \(share.to) that this site cannot hold")
            }
            received[share.from] = share
        }
        for owner in u2 where owner != identity.name && graph.holders(of: owner).contains(identity.name) {
            guard let share = received[owner], let peer = peers[owner] else {
                throw SecureAggregationError(
                    .participantSet,
                    "\(owner) is listed as having shared its keys, but its share for this site is missing")
            }
            let plain = try open(share.box, from: owner, to: identity.name, peerKey: peer.encryptionKey)
            guard plain.count == 65, plain[0] == graph.shareIndex(identity.name) else {
                throw SecureAggregationError(.authentication, "the share from \(owner) is not addressed to this site")
            }
            held[owner] = (
                Shamir.Share(x: plain[0], y: Array(plain[1..<33])), Shamir.Share(x: plain[0], y: Array(plain[33..<65]))
            )
        }
        senders = u2
        quantizer = try RingQuantizer(clipRange: parameters.clipRange, participants: graph.ring.count)
        selfMask = try MaskStream(seed: seed)
        pairwise = []
        for peer in graph.neighbours(of: identity.name) where u2.contains(peer) {
            guard let advert = peers[peer] else { continue }
            let stream = try MaskStream(
                seed: SecAggSiteSession.pairwiseSeed(
                    own: maskKey, peer: peer, peerKey: advert.maskKey, site: identity.name, digest: digest))
            pairwise.append((stream, identity.name > peer))
        }
        stage = .masking
    }

    /// The quantiser of this session (after `prepareMasking`).
    public var ringQuantizer: RingQuantizer? { quantizer }

    /// Step 3: masked words for values at `position` of the vector, each w·clip(x) quantised.
    /// - Throws: `.protocolState` before `prepareMasking` or past the vector's last value word;
    ///   `.invalidParameters` for a weight outside [0, 1].
    public mutating func mask(
        _ values: ArraySlice<Float>, at position: Int, weight: Double
    ) throws(SecureAggregationError) -> [UInt32] {
        guard stage == .masking, let quantizer else {
            throw SecureAggregationError(.protocolState, "masking before the shares were exchanged")
        }
        guard weight.isFinite, weight >= 0, weight <= 1 else {
            throw SecureAggregationError(.invalidParameters, "a weight of \(weight); need 0 ≤ w ≤ 1")
        }
        guard position >= 0, position <= parameters.vectorLength - 1 - values.count else {
            throw SecureAggregationError(
                .protocolState, "values \(position)..<\(position + values.count) outside the vector's value words")
        }
        var words = values.map { quantizer.encode($0, weight: weight) }
        try addMasks(to: &words, at: position)
        return words
    }

    /// Step 3: the masked weight word (the vector's last).
    public mutating func maskedWeight(_ weight: Double) throws(SecureAggregationError) -> UInt32 {
        guard stage == .masking, let quantizer else {
            throw SecureAggregationError(.protocolState, "masking before the shares were exchanged")
        }
        guard weight.isFinite, weight >= 0, weight <= 1 else {
            throw SecureAggregationError(.invalidParameters, "a weight of \(weight); need 0 ≤ w ≤ 1")
        }
        let word = UInt32(bitPattern: Int32((weight * quantizer.scale).rounded()))
        var words = [UInt32](repeating: word, count: 1)
        try addMasks(to: &words, at: parameters.vectorLength - 1)
        return words[0]
    }

    /// Adds this site's masks for words `position ..< position + words.count`. The streams are copied out and back
    /// so the closure over the buffer captures no part of `self`: with the mutating calls on `self`'s streams inside
    /// that closure, the one-word weight array came out wrongly masked in release builds (Swift 6.3.1, -O; debug
    /// builds were right), which `Benchmarks`' release runs caught.
    private mutating func addMasks(to words: inout [UInt32], at position: Int) throws(SecureAggregationError) {
        guard var own = selfMask else {
            throw SecureAggregationError(.protocolState, "masking before the shares were exchanged")
        }
        var streams = pairwise
        try words.withUnsafeMutableBufferPointer { (buffer) throws(SecureAggregationError) in
            try own.apply(to: buffer, at: position, negate: false)
            for i in streams.indices {
                try streams[i].stream.apply(to: buffer, at: position, negate: streams[i].negate)
            }
        }
        selfMask = own
        pairwise = streams
    }

    /// Step 4: signs U3.
    /// - Throws: `.participantSet` when U3 is not a subset of U2 holding this site, or is too small.
    public mutating func confirm(
        _ request: SecAggMessage.ConfirmRequest
    ) throws(SecureAggregationError) -> SecAggMessage.ConfirmResponse {
        try expect(.masking, "confirm")
        guard request.session == parameters.session else {
            throw SecureAggregationError(.malformedMessage, "a confirmation request of another session")
        }
        let u3 = Set(request.survivors)
        guard u3.count == request.survivors.count, u3.isSubset(of: senders), u3.contains(identity.name) else {
            throw SecureAggregationError(
                .participantSet,
                "the server's survivors (\(request.survivors.sorted())) are not a subset of the sites that shared "
                    + "keys, "
                    + "or leave this site out")
        }
        guard u3.count >= minimumParticipants else {
            throw SecureAggregationError(
                .participantSet,
                "only \(u3.count) sites' vectors arrived; \(identity.name) unmasks only among at least "
                    + "\(minimumParticipants)")
        }
        survivors = u3.sorted()
        stage = .confirmed
        selfMask = nil
        pairwise = []
        return SecAggMessage.ConfirmResponse(signature: Data(try identity.sign(confirmTranscript(survivors))))
    }

    private func confirmTranscript(_ set: [String]) -> [UInt8] {
        var t = Transcript("tessera-secagg-v1/survivors")
        t.append(digest)
        for s in set { t.append(s) }
        return t.bytes
    }

    /// Step 5: the shares the server needs, for the U3 this site signed only. The same request again gets the same
    /// answer (a resent message); any other is refused.
    /// - Throws: `.participantSet` for another set than the one signed, or too few valid signatures of it;
    ///   `.authentication` for a signature that does not verify.
    public mutating func unmask(
        _ request: SecAggMessage.UnmaskRequest
    ) throws(SecureAggregationError) -> SecAggMessage.UnmaskResponse {
        if stage == .revealed, let revealed, request.survivors.sorted() == survivors { return revealed }
        try expect(.confirmed, "unmask")
        guard request.session == parameters.session else {
            throw SecureAggregationError(.malformedMessage, "an unmask request of another session")
        }
        guard request.survivors.sorted() == survivors else {
            throw SecureAggregationError(
                .participantSet,
                "the server announces survivors \(request.survivors.sorted()), but this site signed \(survivors): "
                    + "nothing is revealed")
        }
        let signers = Set(request.signatures.keys)
        guard signers.isSubset(of: Set(survivors)), signers.count >= minimumParticipants else {
            throw SecureAggregationError(
                .participantSet,
                "\(signers.count) signatures of the survivors from sites among them; this site needs "
                    + "\(minimumParticipants)")
        }
        let message = confirmTranscript(survivors)
        for (site, signature) in request.signatures {
            guard let key = signingKeys[site] else {
                throw SecureAggregationError(.participantSet, "a signature from \(site), which did not advertise keys")
            }
            try PeerVerifier.check(Array(signature), of: message, by: key, what: "\(site)'s signature of the survivors")
        }
        let u3 = Set(survivors)
        var shares: [RevealedShare] = []
        for (owner, pair) in held.sorted(by: { $0.key < $1.key }) {
            if u3.contains(owner) {
                shares.append(RevealedShare(owner: owner, secret: .selfMaskSeed, share: pair.seed))
            } else if senders.contains(owner) {
                shares.append(RevealedShare(owner: owner, secret: .maskKey, share: pair.key))
            }
        }
        let response = SecAggMessage.UnmaskResponse(shares: shares)
        revealed = response
        stage = .revealed
        held = [:]
        return response
    }

    private mutating func expect(_ wanted: Stage, _ step: String) throws(SecureAggregationError) {
        guard stage == wanted else {
            throw SecureAggregationError(
                .protocolState,
                "\(identity.name) was asked to \(step) in session \(parameters.session) at stage \(stage): refused")
        }
    }

    // MARK: - Keys

    /// The pairwise mask seed of `site` and `peer`: HKDF-SHA256 of their X25519 secret, salted by the session.
    static func pairwiseSeed(
        own: Curve25519.KeyAgreement.PrivateKey, peer: String, peerKey: Data, site: String, digest: [UInt8]
    ) throws(SecureAggregationError) -> [UInt8] {
        do {
            let secret = try own.sharedSecretFromKeyAgreement(
                with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerKey))
            var info = Transcript("tessera-secagg-v1/pairwise-mask")
            for name in [site, peer].sorted() { info.append(name) }
            let key = secret.hkdfDerivedSymmetricKey(
                using: SHA256.self, salt: digest, sharedInfo: info.bytes, outputByteCount: 32)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw SecureAggregationError(.authentication, "no pairwise key with \(peer)", cause: error)
        }
    }

    private func shareKey(from: String, to: String, peerKey: Data) throws(SecureAggregationError) -> SymmetricKey {
        do {
            let secret = try encryptionKey.sharedSecretFromKeyAgreement(
                with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerKey))
            var info = Transcript("tessera-secagg-v1/share")
            info.append(from)
            info.append(to)
            return secret.hkdfDerivedSymmetricKey(
                using: SHA256.self, salt: digest, sharedInfo: info.bytes, outputByteCount: 32)
        } catch {
            throw SecureAggregationError(.authentication, "no share key between \(from) and \(to)", cause: error)
        }
    }

    private func seal(_ plaintext: [UInt8], from: String, to: String, peerKey: Data) throws(SecureAggregationError)
        -> Data
    {
        let key = try shareKey(from: from, to: to, peerKey: peerKey)
        do {
            return try ChaChaPoly.seal(plaintext, using: key, authenticating: digest + Array(from.utf8)).combined
        } catch {
            throw SecureAggregationError(.authentication, "the share for \(to) cannot be encrypted", cause: error)
        }
    }

    private func open(_ box: Data, from: String, to: String, peerKey: Data) throws(SecureAggregationError)
        -> [UInt8]
    {
        let key = try shareKey(from: from, to: to, peerKey: peerKey)
        do {
            let sealed = try ChaChaPoly.SealedBox(combined: box)
            return Array(try ChaChaPoly.open(sealed, using: key, authenticating: digest + Array(from.utf8)))
        } catch {
            throw SecureAggregationError(
                .authentication, "the share from \(from) does not decrypt: it was altered or not meant for \(to)",
                cause: error)
        }
    }
}

/// Fills `bytes` from the system's CSPRNG.
func secureRandom(_ bytes: inout [UInt8]) {
    var generator = SystemRandomNumberGenerator()
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
}
