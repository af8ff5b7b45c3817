import Foundation

/// A site's keys for one session, signed with its certificate's key: two X25519 public keys (one to encrypt the
/// shares it receives, one for pairwise masks) and a commitment to its self-mask seed, so the server can tell a
/// wrongly reconstructed seed.
public struct KeyAdvert: Sendable, Equatable, Codable {
    public var site: String
    /// X25519 public key (32 bytes) for share encryption.
    public var encryptionKey: Data
    /// X25519 public key (32 bytes) for pairwise masks.
    public var maskKey: Data
    /// SHA-256(session digest ‖ self-mask seed).
    public var seedCommitment: Data
    /// The site's certificate, DER (at most `maxCertificateBytes`).
    public var certificate: Data
    /// ECDSA P-256 signature (DER) of the advert's transcript under the session parameters.
    public var signature: Data

    public static let maxCertificateBytes = 16_384

    func transcript(_ parameters: SecAggParameters) -> [UInt8] {
        var t = Transcript("tessera-secagg-v1/advert")
        t.append(parameters.digest)
        t.append(site)
        t.append(Array(encryptionKey))
        t.append(Array(maskKey))
        t.append(Array(seedCommitment))
        return t.bytes
    }
}

/// Shares of one site's secrets for one holder, encrypted (ChaCha20-Poly1305) under a key only the two share.
public struct EncryptedShare: Sendable, Equatable, Codable {
    public var from: String
    public var to: String
    /// nonce ‖ ciphertext ‖ tag.
    public var box: Data
}

/// A holder's shares, revealed at unmasking: of the self-mask seed for a survivor, of the mask key for a dropout.
public struct RevealedShare: Sendable, Equatable, Codable {
    public enum Secret: String, Sendable, Codable { case selfMaskSeed = "self_mask_seed", maskKey = "mask_key" }
    public var owner: String
    public var secret: Secret
    public var share: Shamir.Share
}

/// The messages of the five stages, as task and result payloads (JSON). Each names the session it belongs to.
public enum SecAggMessage {
    /// Server → sites, stage 2: every advert the server received (the set U1).
    public struct ShareRequest: Sendable, Equatable, Codable {
        public var parameters: SecAggParameters
        public var adverts: [KeyAdvert]
        public init(parameters: SecAggParameters, adverts: [KeyAdvert]) {
            self.parameters = parameters
            self.adverts = adverts
        }
    }

    /// Site → server, stage 2: its encrypted shares, one per holder other than itself.
    public struct ShareResponse: Sendable, Equatable, Codable {
        public var shares: [EncryptedShare]
    }

    /// Server → site, stage 3: the sites whose shares arrived (U2) and the shares addressed to this site.
    public struct MaskRequest: Sendable, Equatable, Codable {
        public var session: String
        public var senders: [String]
        public var shares: [EncryptedShare]
        public init(session: String, senders: [String], shares: [EncryptedShare]) {
            self.session = session
            self.senders = senders
            self.shares = shares
        }
    }

    /// Server → sites, stage 4: the sites whose masked vectors arrived whole (U3).
    public struct ConfirmRequest: Sendable, Equatable, Codable {
        public var session: String
        public var survivors: [String]
        public init(session: String, survivors: [String]) {
            self.session = session
            self.survivors = survivors
        }
    }

    /// Site → server, stage 4: its signature of U3.
    public struct ConfirmResponse: Sendable, Equatable, Codable {
        public var signature: Data
    }

    /// Server → sites, stage 5: U3 and the signatures of it the server collected.
    public struct UnmaskRequest: Sendable, Equatable, Codable {
        public var session: String
        public var survivors: [String]
        public var signatures: [String: Data]
        public init(session: String, survivors: [String], signatures: [String: Data]) {
            self.session = session
            self.survivors = survivors
            self.signatures = signatures
        }
    }

    /// Site → server, stage 5.
    public struct UnmaskResponse: Sendable, Equatable, Codable {
        public var shares: [RevealedShare]
    }

    /// The largest payload of any stage, bytes (adverts with certificates of 255 sites fit).
    public static let maxPayloadBytes = 8 << 20

    /// Decodes a payload of at most `maxPayloadBytes`.
    /// - Throws: `.malformedMessage` with the decoding error as its cause.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(SecureAggregationError) -> T {
        guard bytes.count <= maxPayloadBytes else {
            throw SecureAggregationError(
                .malformedMessage, "a secure-aggregation message of \(bytes.count) bytes; at most \(maxPayloadBytes)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw SecureAggregationError(
                .malformedMessage, "a secure-aggregation message (\(T.self)) cannot be decoded", cause: error)
        }
    }

    /// - Throws: `.malformedMessage` when encoding fails.
    public static func encode<T: Encodable>(_ value: T) throws(SecureAggregationError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return Array(try encoder.encode(value))
        } catch {
            throw SecureAggregationError(
                .malformedMessage, "a secure-aggregation message cannot be encoded", cause: error)
        }
    }
}
