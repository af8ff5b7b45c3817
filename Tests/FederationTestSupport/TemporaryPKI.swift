import FederationGRPC
import Foundation
import Provisioning
import SecureAggregation
import SwiftASN1

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

    /// Issues a credential for `name` with `role` (server, site or admin) and writes certificate and key.
    public func issue(_ name: String, role: String) throws -> MutualTLSFiles {
        guard let r = ParticipantRole(rawValue: role) else {
            throw ProvisioningError(.invalidProject, "unknown role \(role)")
        }
        let credential = try authority.issue(
            Participant(name: name, role: r), project: project,
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

    /// Checks certificates against this PKI's CA.
    public var verifier: PeerVerifier { PeerVerifier(caCertificate: authority.certificate) }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}
