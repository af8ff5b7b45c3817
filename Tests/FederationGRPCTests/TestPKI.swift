import Crypto
import FederationGRPC
import Foundation
import X509

/// A throw-away certificate authority for tests: a P-256 CA and leaf certificates with the subject layout of
/// `tessera provision` (CN = participant name, OU = role), written as PEM files into a temporary folder. Kept small
/// on purpose: the Provisioning module replaces it.
struct TestPKI {
    let directory: URL
    private let caKey: P256.Signing.PrivateKey
    private let caCertificate: Certificate
    private let caName: DistinguishedName
    /// Path of the CA certificate, PEM.
    let caPath: String

    init(name: String = "Tessera test CA") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        caKey = P256.Signing.PrivateKey()
        caName = try DistinguishedName { CommonName(name) }
        let now = Date()
        caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86_400),
            issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))
        caPath = directory.appendingPathComponent("ca.pem").path
        try caCertificate.serializeAsPEM().pemString.write(toFile: caPath, atomically: true, encoding: .utf8)
    }

    /// Issues a certificate for `name` with role `role` (`server`, `site`, `admin`) and writes it with its key.
    /// Server certificates name `localhost` (clients connect to 127.0.0.1 and verify that name).
    func issue(_ name: String, role: String) throws -> MutualTLSFiles {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let subject = try DistinguishedName {
            CommonName(name)
            OrganizationalUnitName(role)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86_400),
            issuer: caName, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([role == "server" ? .serverAuth : .clientAuth])
                SubjectAlternativeNames([.dnsName(role == "server" ? "localhost" : name)])
            },
            issuerPrivateKey: .init(caKey))
        let certificatePath = directory.appendingPathComponent("\(name)-\(role).pem").path
        let keyPath = directory.appendingPathComponent("\(name)-\(role).key").path
        try certificate.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return MutualTLSFiles(certificateChain: certificatePath, privateKey: keyPath, trustRoots: caPath)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
