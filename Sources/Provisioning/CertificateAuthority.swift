import Crypto
import Foundation
import SwiftASN1
import X509

/// The project's own certificate authority: a self-signed ECDSA P-256 root that signs every participant certificate.
///
/// The CA certificate carries basicConstraints `CA:TRUE` (critical), keyUsage `keyCertSign, cRLSign` (critical) and a
/// subject key identifier. Its subject is `O=<project>, CN=<project> CA`.
public struct CertificateAuthority: Sendable {
    /// The self-signed CA certificate.
    public let certificate: Certificate
    /// The CA's signing key. Kept in `<output>/ca/ca-key.pem`, never in a participant's kit.
    let privateKey: P256.Signing.PrivateKey

    /// Creates a new CA.
    /// - Parameters:
    ///   - project: the project name, used in the subject.
    ///   - validityDays: lifetime in days from `now`.
    ///   - now: the issuing time (injected for tests); the certificate is valid from five minutes earlier, to
    ///     tolerate clock skew between machines.
    /// - Throws: `ProvisioningError.crypto` if signing fails.
    public static func create(project: String, validityDays: Int, now: Date = Date()) throws(ProvisioningError)
        -> CertificateAuthority
    {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        do {
            let subject = try DistinguishedName {
                OrganizationName(project)
                CommonName("\(project) CA")
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: randomSerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-clockSkew),
                notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key))
            return CertificateAuthority(certificate: certificate, privateKey: key)
        } catch {
            throw ProvisioningError(.crypto, "could not create the project CA certificate", cause: "\(error)")
        }
    }

    /// Loads an existing CA from its certificate and PKCS#8 key PEM text, checking that they belong together.
    /// - Throws: `ProvisioningError.invalidKit` naming the file at fault.
    public init(
        certificatePEM: String, keyPEM: String, certificatePath: String = "ca.pem",
        keyPath: String = "ca-key.pem"
    ) throws(ProvisioningError) {
        let certificate = try PEMFiles.certificate(pem: certificatePEM, path: certificatePath)
        let key = try PEMFiles.privateKey(pem: keyPEM, path: keyPath)
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
            throw ProvisioningError(
                .conflict,
                "\(keyPath) is not the key of \(certificatePath): restore the CA "
                    + "folder from backup (a new CA would invalidate every issued kit)")
        }
        guard case .some(.isCertificateAuthority) = try? certificate.extensions.basicConstraints else {
            throw ProvisioningError(
                .invalidKit, "\(certificatePath) is not a CA certificate (no basicConstraints CA:TRUE)")
        }
        self.init(certificate: certificate, privateKey: key)
    }

    init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Tolerance subtracted from notBefore so a freshly issued certificate verifies on a slightly slow clock.
    static let clockSkew: TimeInterval = 300

    /// A leaf certificate and its new key.
    public struct IssuedCredential: Sendable {
        public let certificate: Certificate
        public let privateKey: P256.Signing.PrivateKey
    }

    /// Issues a participant certificate with a fresh P-256 key.
    ///
    /// Subject `O=<project>, OU=<role>, CN=<name>`; basicConstraints `CA:FALSE` (critical); keyUsage
    /// `digitalSignature` (critical); extendedKeyUsage `serverAuth` for the server, `clientAuth` for sites and
    /// admins; authority and subject key identifiers. The server's subjectAltName has the host (as a DNS name or an
    /// IP address) and, when the host is loopback, `DNS:localhost`, `IP:127.0.0.1` and `IP:::1`; an admin's has its
    /// e-mail as an rfc822Name and a site admin's its site as the URI `urn:tessera:site:<site>`. The lifetime is
    /// `validityDays` from `now`, cut at the CA's own expiry.
    /// - Throws: `ProvisioningError.crypto` if signing fails.
    public func issue(
        _ participant: Participant, project: String, server: ServerAddress, validityDays: Int, now: Date = Date()
    ) throws(ProvisioningError) -> IssuedCredential {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let notAfter = min(now.addingTimeInterval(Double(validityDays) * 86_400), certificate.notValidAfter)
        do {
            let subject = try DistinguishedName {
                OrganizationName(project)
                OrganizationalUnitName(participant.role.rawValue)
                CommonName(participant.name)
            }
            var names: [GeneralName] = []
            if participant.role == .server {
                names = Self.subjectAlternativeNames(for: server)
            } else {
                if let email = participant.email { names.append(.rfc822Name(email)) }
                if let site = participant.site {
                    names.append(.uniformResourceIdentifier(Participant.siteURIPrefix + site))
                }
            }
            let caKeyIdentifier =
                try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
            var extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([participant.role.extendedKeyUsage == .serverAuth ? .serverAuth : .clientAuth])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: caKeyIdentifier)
            }
            if !names.isEmpty {
                try extensions.append(Certificate.Extension(SubjectAlternativeNames(names), critical: false))
            }
            let leaf = try Certificate(
                version: .v3, serialNumber: Self.randomSerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-Self.clockSkew), notValidAfter: notAfter,
                issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(privateKey))
            return IssuedCredential(certificate: leaf, privateKey: key)
        } catch {
            throw ProvisioningError(
                .crypto, "could not issue the certificate of '\(participant.name)'",
                cause: "\(error)")
        }
    }

    /// The server certificate's subjectAltName entries for `server`.
    static func subjectAlternativeNames(for server: ServerAddress) -> [GeneralName] {
        var names: [GeneralName] = []
        func add(_ name: GeneralName) { if !names.contains(name) { names.append(name) } }
        if let v4 = server.ipv4Bytes {
            add(.ipAddress(ASN1OctetString(contentBytes: v4[...])))
        } else if let v6 = server.ipv6Bytes {
            add(.ipAddress(ASN1OctetString(contentBytes: v6[...])))
        } else {
            add(.dnsName(server.host.lowercased()))
        }
        if server.isLoopback {
            add(.dnsName("localhost"))
            add(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])))
            add(.ipAddress(ASN1OctetString(contentBytes: (Array(repeating: 0, count: 15) + [1])[...])))
        }
        return names
    }

    /// A random positive 16-byte serial number (RFC 5280 §4.1.2.2 allows up to 20 octets).
    ///
    /// The first byte's top bit is cleared (a DER INTEGER with it set would be negative, or need a 17th byte) and its
    /// next bit set (so no leading zero byte is dropped): 126 random bits, from the system CSPRNG.
    static func randomSerialNumber() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[0] = (bytes[0] & 0x7F) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }
}
