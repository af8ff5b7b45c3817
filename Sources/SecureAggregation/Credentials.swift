import Crypto
import Foundation
import SwiftASN1
import X509

/// What a participant signs its secure-aggregation messages with: the P-256 key of its kit (`key.pem`) and the
/// certificate the project CA issued for it (`cert.pem`), which travels with every key advertisement.
public struct SigningIdentity: Sendable {
    public let name: String
    let key: P256.Signing.PrivateKey
    /// The certificate, DER.
    public let certificate: [UInt8]

    /// - Throws: `.authentication` when the PEM texts do not parse or the key is not the certificate's.
    public init(name: String, privateKeyPEM: String, certificatePEM: String) throws(SecureAggregationError) {
        do {
            let key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
            let certificate = try Certificate(pemEncoded: certificatePEM)
            guard P256.Signing.PublicKey(certificate.publicKey)?.rawRepresentation == key.publicKey.rawRepresentation
            else {
                throw SecureAggregationError(.authentication, "the key of \(name) is not its certificate's key")
            }
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            self.init(name: name, key: key, certificate: serializer.serializedBytes)
        } catch let error as SecureAggregationError {
            throw error
        } catch {
            throw SecureAggregationError(
                .authentication, "the certificate or key of \(name) cannot be read", cause: error)
        }
    }

    /// - Parameters: key: the certificate's private key; certificate: DER.
    public init(name: String, key: P256.Signing.PrivateKey, certificate: [UInt8]) {
        self.name = name
        self.key = key
        self.certificate = certificate
    }

    /// ECDSA P-256 / SHA-256 signature of `message`, DER.
    func sign(_ message: [UInt8]) throws(SecureAggregationError) -> [UInt8] {
        do {
            return Array(try key.signature(for: message).derRepresentation)
        } catch {
            throw SecureAggregationError(.authentication, "\(name) could not sign", cause: error)
        }
    }
}

/// Checks a peer's certificate against the project CA and its signatures against the certificate's key.
public struct PeerVerifier: Sendable {
    /// The role a certificate must carry (its single OU) to take part: `site`.
    public static let participantRole = "site"

    let roots: [Certificate]

    /// - Parameter caCertificatePEM: the project CA (`ca.pem` of the kit).
    /// - Throws: `.authentication` when it does not parse.
    public init(caCertificatePEM: String) throws(SecureAggregationError) {
        do {
            roots = [try Certificate(pemEncoded: caCertificatePEM)]
        } catch {
            throw SecureAggregationError(.authentication, "the project CA certificate cannot be read", cause: error)
        }
    }

    /// - Parameter caCertificate: the project CA's certificate.
    public init(caCertificate: Certificate) {
        roots = [caCertificate]
    }

    /// The public key of `certificate` (DER) after checking that the project CA signed it, that it is valid at
    /// `time` and not a CA itself, that its single CN is `name` and its single OU `site`. (Participant certificates
    /// are issued directly by the project CA: there are no intermediates.)
    /// - Throws: `.authentication` naming what failed.
    public func key(
        of certificate: [UInt8], for name: String, at time: Date = Date()
    ) throws(SecureAggregationError) -> P256.Signing.PublicKey {
        let leaf: Certificate
        do {
            leaf = try Certificate(derEncoded: certificate)
        } catch {
            throw SecureAggregationError(
                .authentication, "the certificate sent for \(name) cannot be read", cause: error)
        }
        guard
            roots.contains(where: { ca in
                leaf.issuer == ca.subject && ca.publicKey.isValidSignature(leaf.signature, for: leaf)
            })
        else {
            throw SecureAggregationError(
                .authentication,
                "the certificate sent for \(name) (subject \(leaf.subject)) is not signed by the project CA")
        }
        guard leaf.notValidBefore <= time, time <= leaf.notValidAfter else {
            throw SecureAggregationError(
                .authentication,
                "the certificate sent for \(name) is not valid now (\(leaf.notValidBefore) to \(leaf.notValidAfter))")
        }
        if case .isCertificateAuthority? = try? leaf.extensions.basicConstraints {
            throw SecureAggregationError(.authentication, "the certificate sent for \(name) is a CA certificate")
        }
        var names: [String] = []
        var roles: [String] = []
        for rdn in leaf.subject {
            for attribute in rdn {
                if attribute.type == .RDNAttributeType.commonName, let s = String(attribute.value) { names.append(s) }
                if attribute.type == .RDNAttributeType.organizationalUnitName, let s = String(attribute.value) {
                    roles.append(s)
                }
            }
        }
        guard names == [name], roles == [Self.participantRole] else {
            throw SecureAggregationError(
                .authentication,
                "the certificate sent for \(name) belongs to \(names.joined(separator: ",")) with role "
                    + "\(roles.joined(separator: ",")): a site's keys must come with its own site certificate")
        }
        guard let key = P256.Signing.PublicKey(leaf.publicKey) else {
            throw SecureAggregationError(.authentication, "the certificate of \(name) has no P-256 key")
        }
        return key
    }

    /// - Throws: `.authentication` unless `signature` (DER) is `key`'s ECDSA signature of `message`.
    static func check(
        _ signature: [UInt8], of message: [UInt8], by key: P256.Signing.PublicKey, what: String
    ) throws(SecureAggregationError) {
        let parsed: P256.Signing.ECDSASignature
        do {
            parsed = try P256.Signing.ECDSASignature(derRepresentation: signature)
        } catch {
            throw SecureAggregationError(.authentication, "\(what): the signature cannot be read", cause: error)
        }
        guard key.isValidSignature(parsed, for: message) else {
            throw SecureAggregationError(.authentication, "\(what): the signature does not verify")
        }
    }
}

/// Length-prefixed concatenation: the canonical bytes every signature and key derivation covers.
struct Transcript {
    private(set) var bytes: [UInt8] = []

    init(_ label: String) { append(label) }

    mutating func append(_ field: [UInt8]) {
        var n = UInt32(truncatingIfNeeded: field.count)
        for _ in 0..<4 {
            bytes.append(UInt8(truncatingIfNeeded: n))
            n >>= 8
        }
        bytes += field
    }

    mutating func append(_ field: String) { append(Array(field.utf8)) }

    mutating func append(_ value: Int) { append(String(value)) }

    mutating func append(_ value: Double) { append(String(value.bitPattern, radix: 16)) }
}

/// A site's signature binding one public key to itself and one session, for protocols that relay keys through the
/// server (the statistics secure sums): a server that substitutes a key or invents a participant is caught by every
/// site that checks the endorsement against the project CA.
public enum KeyEndorsement {
    /// Largest certificate or signature accepted in an endorsement, bytes.
    public static let maxCertificateBytes = KeyAdvert.maxCertificateBytes
    public static let maxSignatureBytes = 80

    static func transcript(key: Data, site: String, session: String, purpose: String) -> [UInt8] {
        var t = Transcript("tessera-key-endorsement-v1")
        t.append(purpose)
        t.append(session)
        t.append(site)
        t.append(Array(key))
        return t.bytes
    }

    /// The signature (DER) of `identity` over (purpose, session, its name, key).
    public static func sign(
        _ key: Data, session: String, purpose: String, by identity: SigningIdentity
    ) throws(SecureAggregationError) -> Data {
        Data(try identity.sign(transcript(key: key, site: identity.name, session: session, purpose: purpose)))
    }

    /// - Throws: `.authentication` unless `certificate` is `site`'s, issued by the project CA and valid at `time`,
    ///   and `signature` is its signature over (purpose, session, site, key).
    public static func verify(
        _ key: Data, site: String, session: String, purpose: String, certificate: Data, signature: Data,
        verifier: PeerVerifier, at time: Date = Date()
    ) throws(SecureAggregationError) {
        guard certificate.count <= maxCertificateBytes, signature.count <= maxSignatureBytes else {
            throw SecureAggregationError(.authentication, "the key endorsement of \(site) is oversized")
        }
        let publicKey = try verifier.key(of: Array(certificate), for: site, at: time)
        try PeerVerifier.check(
            Array(signature), of: transcript(key: key, site: site, session: session, purpose: purpose), by: publicKey,
            what: "the key of \(site) for session \(session)")
    }
}
