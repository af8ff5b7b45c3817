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

    /// The public key of `certificate` (DER) after checking that it chains to the project CA at `time` (RFC 5280:
    /// signature, validity period, constraints), that its single CN is `name` and its single OU `site`.
    /// - Throws: `.authentication` naming what failed.
    public func key(
        of certificate: [UInt8], for name: String, at time: Date = Date()
    ) async throws(SecureAggregationError) -> P256.Signing.PublicKey {
        let leaf: Certificate
        do {
            leaf = try Certificate(derEncoded: certificate)
        } catch {
            throw SecureAggregationError(
                .authentication, "the certificate sent for \(name) cannot be read", cause: error)
        }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy(validationTime: time) }
        let result = await verifier.validate(leafCertificate: leaf, intermediates: CertificateStore())
        guard case .validCertificate = result else {
            throw SecureAggregationError(
                .authentication,
                "the certificate sent for \(name) (subject \(leaf.subject)) does not chain to the project CA or is "
                    + "not valid now")
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
