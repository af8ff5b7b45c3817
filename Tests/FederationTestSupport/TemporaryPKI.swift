import FederationGRPC
import Foundation
import Provisioning
import SecureAggregation
import SwiftASN1
import X509

/// A throw-away project CA and credentials as PEM files in a temporary folder, issued by the Provisioning module
/// exactly as `tessera provision` issues them (CN = participant, OU = role; the server certificate names localhost
/// and 127.0.0.1). For tests and benchmarks over loopback mutual TLS.
public struct TemporaryPKI: Sendable {
    public let directory: URL
    public let caPath: String
    private let authority: CertificateAuthority
    private let project: String

    public init(name: String = "tessera-test") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        project = name
        authority = try CertificateAuthority.create(project: name, validityDays: 2)
        caPath = directory.appendingPathComponent("ca.pem").path
        try authority.certificate.serializeAsPEM().pemString.write(toFile: caPath, atomically: true, encoding: .utf8)
    }

    /// Issues a credential for `name` with `role` (server, site, admin, member or site-admin; a site admin's `site`)
    /// and writes certificate and key.
    public func issue(_ name: String, role: String, site: String? = nil) throws -> MutualTLSFiles {
        guard let r = ParticipantRole(rawValue: role) else {
            throw ProvisioningError(.invalidProject, "unknown role \(role)")
        }
        let credential = try authority.issue(
            Participant(name: name, role: r, site: site), project: project,
            server: ServerAddress(host: "localhost", port: 1), validityDays: 1)
        let certificatePath = directory.appendingPathComponent("\(name)-\(role).pem").path
        let keyPath = directory.appendingPathComponent("\(name)-\(role).key").path
        try credential.certificate.serializeAsPEM().pemString.write(
            toFile: certificatePath, atomically: true, encoding: .utf8)
        try credential.privateKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return MutualTLSFiles(certificateChain: certificatePath, privateKey: keyPath, trustRoots: caPath)
    }

    /// A signing identity for `name` with `role` (in memory), for secure-aggregation keys.
    public func identity(_ name: String, role: ParticipantRole = .site) throws -> SigningIdentity {
        let credential = try authority.issue(
            Participant(name: name, role: role), project: project,
            server: ServerAddress(host: "localhost", port: 1), validityDays: 1)
        var serializer = DER.Serializer()
        try serializer.serialize(credential.certificate)
        return SigningIdentity(name: name, key: credential.privateKey, certificate: serializer.serializedBytes)
    }

    /// Writes `<directory>/crl.der`, a revocation list signed by this CA naming the certificates of `revoked`
    /// (number `number`, valid from now for a day), and returns its path.
    @discardableResult
    public func writeRevocationList(revoking revoked: [MutualTLSFiles], number: Int = 1) throws -> String {
        let now = Date()
        let entries = try revoked.map { files in
            let certificate = try Certificate(
                pemEncoded: String(contentsOfFile: files.certificateChain, encoding: .utf8))
            return CertificateRevocationList.Entry(
                serialNumber: Array(certificate.serialNumber.bytes), revocationDate: now)
        }
        let list = CertificateRevocationList(
            issuer: authority.certificate.subject, thisUpdate: now, nextUpdate: now.addingTimeInterval(86_400),
            number: number, entries: entries)
        try Data(list.signed(by: authority)).write(to: URL(fileURLWithPath: revocationListPath), options: .atomic)
        return revocationListPath
    }

    /// Where `writeRevocationList` writes (nothing is there until it is called).
    public var revocationListPath: String { directory.appendingPathComponent("crl.der").path }

    /// Checks certificates against this PKI's CA.
    public var verifier: PeerVerifier { PeerVerifier(caCertificate: authority.certificate) }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}
