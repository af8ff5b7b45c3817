import Crypto
import Foundation
import SwiftASN1
import X509
import Yams

/// A participant's startup kit, loaded and checked: who it is, what it may do, where the server is, and the paths of
/// the PEM files a TLS stack needs.
///
/// Layout of a kit folder (all written by `Provisioner`):
/// - `ca.pem`: the project CA certificate (the only trust root);
/// - `cert.pem`: the participant's certificate, subject `O=<project>, OU=<role>, CN=<name>`;
/// - `key.pem`: its P-256 private key, PKCS#8 PEM, mode 0600;
/// - `kit.yaml`: `project`, `participant`, `role`, `server` (`host:port`) and the three file names;
/// - `README.txt`: how to start with it;
/// - `crl.der` (optional, copied in by the operator from `<output>/ca/crl.der`): the project's revocation list; the
///   TLS handshakes of the server, the sites and the admins refuse the certificates it names.
public struct Kit: Sendable, Hashable {
    /// The participant's name: the certificate's subject CN.
    public var name: String
    /// The participant's role: the certificate's subject OU.
    public var role: ParticipantRole
    /// The project name from `kit.yaml` (also the certificate's O).
    public var project: String
    /// The server address clients dial (and the server binds on its port).
    public var serverAddress: ServerAddress
    /// Absolute path of `ca.pem`.
    public var caCertificatePath: String
    /// Absolute path of `cert.pem`.
    public var certificatePath: String
    /// Absolute path of `key.pem`.
    public var privateKeyPath: String
    /// The end of the certificate's validity.
    public var notValidAfter: Date
    /// Absolute path of `crl.der` in the kit, whether or not the file exists yet (it is read at each handshake).
    public var revocationListPath: String

    /// File names inside a kit folder.
    public enum FileName {
        public static let caCertificate = "ca.pem"
        public static let certificate = "cert.pem"
        public static let privateKey = "key.pem"
        public static let manifest = "kit.yaml"
        public static let readme = "README.txt"
        public static let revocationList = CertificateRevocationList.fileName
    }

    /// Loads and checks a kit folder.
    ///
    /// Checks, in order: the files exist and parse; `key.pem` is the key of `cert.pem`; `ca.pem` is a self-signed CA
    /// certificate; `cert.pem` is signed by it (issuer name and ECDSA signature) and, like the CA, valid at `now`;
    /// the certificate's CN/OU/O agree with `kit.yaml` and its extended key usage fits the role; and, if given, the
    /// role is one of `expectedRoles`.
    /// - Parameters:
    ///   - folder: the kit folder.
    ///   - expectedRoles: the roles the caller accepts (a server refuses a site's kit), or `nil` for any.
    ///   - now: the time at which validity is checked.
    /// - Throws: `ProvisioningError` (`.invalidKit` or `.untrustedCertificate`) naming the file and what to do.
    public static func load(from folder: String, expectedRoles: Set<ParticipantRole>? = nil, now: Date = Date())
        throws(ProvisioningError) -> Kit
    {
        let base = URL(fileURLWithPath: folder).standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ProvisioningError(
                .invalidKit,
                "kit folder \(base.path) does not exist: give the folder that "
                    + "`tessera provision` wrote for this participant")
        }
        let caPath = base.appendingPathComponent(FileName.caCertificate).path
        let certPath = base.appendingPathComponent(FileName.certificate).path
        let keyPath = base.appendingPathComponent(FileName.privateKey).path
        let manifestPath = base.appendingPathComponent(FileName.manifest).path

        let manifest = try KitManifest.parse(
            yaml: PEMFiles.read(manifestPath, what: "the kit description"), path: manifestPath)
        let ca = try PEMFiles.certificate(pem: PEMFiles.read(caPath, what: "the project CA certificate"), path: caPath)
        let leaf = try PEMFiles.certificate(
            pem: PEMFiles.read(certPath, what: "the participant certificate"), path: certPath)
        let key = try PEMFiles.privateKey(pem: PEMFiles.read(keyPath, what: "the private key"), path: keyPath)
        if let mode = PEMFiles.mode(of: keyPath), mode & 0o077 != 0 {
            throw ProvisioningError(
                .invalidKit,
                "\(keyPath) is readable by others (mode \(String(mode, radix: 8))): "
                    + "run `chmod 600 \(keyPath)`")
        }

        guard Certificate.PublicKey(key.publicKey) == leaf.publicKey else {
            throw ProvisioningError(
                .invalidKit,
                "\(keyPath) is not the private key of \(certPath): the files come "
                    + "from different kits; re-copy the whole kit folder from the provisioning output")
        }
        try verifyAuthority(ca, path: caPath, now: now)
        guard leaf.issuer == ca.subject, ca.publicKey.isValidSignature(leaf.signature, for: leaf) else {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(certPath) was not issued by the CA in \(caPath) "
                    + "(issuer '\(leaf.issuer)'): the kit mixes files of two projects; ask the project admin for this "
                    + "project's kit")
        }
        try checkValidity(leaf, path: certPath, now: now)

        let identity: (name: String, role: ParticipantRole)
        do {
            identity = try participantIdentity(of: leaf)
        } catch {
            throw ProvisioningError(error.code, "\(certPath): \(error.message)", cause: error.cause)
        }
        guard identity.name == manifest.participant, identity.role == manifest.role else {
            throw ProvisioningError(
                .invalidKit,
                "\(manifestPath) names '\(manifest.participant)' (\(manifest.role)) "
                    + "but \(certPath) is for '\(identity.name)' (\(identity.role.rawValue)): re-copy the whole kit folder"
            )
        }
        let organisations = attributeValues(.RDNAttributeType.organizationName, in: leaf.subject)
        guard organisations == [manifest.project] else {
            throw ProvisioningError(
                .invalidKit,
                "\(manifestPath) names project '\(manifest.project)' but \(certPath) "
                    + "belongs to '\(organisations.joined(separator: ", "))': re-copy the whole kit folder")
        }
        let purposes = extendedKeyUsages(of: leaf)
        guard purposes.contains(identity.role.extendedKeyUsage) else {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(certPath) lacks the \(identity.role.extendedKeyUsage) "
                    + "extended key usage its role '\(identity.role.rawValue)' needs: re-provision this participant")
        }
        if let expectedRoles, !expectedRoles.contains(identity.role) {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(base.path) is the kit of \(identity.role.rawValue) '\(identity.name)', but this command needs a "
                    + "\(expectedRoles.map(\.rawValue).sorted().joined(separator: " or ")) kit")
        }
        return Kit(
            name: identity.name, role: identity.role, project: manifest.project, serverAddress: manifest.server,
            caCertificatePath: caPath, certificatePath: certPath, privateKeyPath: keyPath,
            notValidAfter: leaf.notValidAfter,
            revocationListPath: base.appendingPathComponent(FileName.revocationList).path)
    }

    /// The default of `tessera server`/`client`'s `--expiry-warning-days`: warn 30 days before the certificate ends.
    public static let defaultExpiryWarningDays = 30

    /// A warning when the kit's certificate expires within `days` days of `now` (nil otherwise): what to say at start.
    public func expiryWarning(now: Date = Date(), withinDays days: Int) -> String? {
        let left = notValidAfter.timeIntervalSince(now)
        guard left <= Double(days) * 86_400 else { return nil }
        let whole = Int(exactly: (left / 86_400).rounded(.down)) ?? 0
        return "the certificate of \(role.rawValue) '\(name)' (\(certificatePath)) expires on \(notValidAfter), in "
            + "\(whole) day(s): ask the project admin for a renewed kit (`tessera provision --renew \(name)`)"
    }

    // MARK: - Certificate facts

    /// The CN and OU of a participant certificate's subject: exactly one of each, OU a known role.
    /// - Throws: `ProvisioningError.untrustedCertificate` if either is missing, repeated or unknown.
    public static func participantIdentity(of certificate: Certificate) throws(ProvisioningError)
        -> (name: String, role: ParticipantRole)
    {
        let names = attributeValues(.RDNAttributeType.commonName, in: certificate.subject)
        let units = attributeValues(.RDNAttributeType.organizationalUnitName, in: certificate.subject)
        guard names.count == 1, let name = names.first else {
            throw ProvisioningError(
                .untrustedCertificate,
                "the subject must have exactly one CN (the participant "
                    + "name), found \(names.count)")
        }
        guard units.count == 1, let unit = units.first, let role = ParticipantRole(rawValue: unit) else {
            throw ProvisioningError(
                .untrustedCertificate,
                "the subject must have exactly one OU naming the role "
                    + "(\(ParticipantRole.allCases.map(\.rawValue).joined(separator: ", "))), found \(units)")
        }
        return (name, role)
    }

    /// The CN and OU of a DER-encoded peer certificate, as a TLS stack hands it over after the handshake.
    ///
    /// Call it only on a certificate the handshake has verified against the project CA: it reads the subject, it
    /// does not check the chain.
    /// - Throws: `ProvisioningError.untrustedCertificate` if the bytes are not a certificate or the subject lacks
    ///   exactly one CN and one OU naming a role.
    public static func participantIdentity(derEncoded bytes: [UInt8]) throws(ProvisioningError)
        -> (name: String, role: ParticipantRole)
    {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: bytes)
        } catch {
            throw ProvisioningError(.untrustedCertificate, "the peer certificate is not valid DER", cause: "\(error)")
        }
        return try participantIdentity(of: certificate)
    }

    /// The string values of every `type` attribute in `name`, in order.
    static func attributeValues(_ type: ASN1ObjectIdentifier, in name: DistinguishedName) -> [String] {
        name.flatMap { $0.filter { $0.type == type } }.compactMap { String($0.value) }
    }

    /// The TLS purposes in a certificate's extendedKeyUsage (empty if absent or unreadable).
    static func extendedKeyUsages(of certificate: Certificate) -> Set<ExtendedKeyUsagePurpose> {
        guard let usage = try? certificate.extensions.extendedKeyUsage else { return [] }
        var result: Set<ExtendedKeyUsagePurpose> = []
        for purpose in usage {
            if purpose == .serverAuth { result.insert(.serverAuth) }
            if purpose == .clientAuth { result.insert(.clientAuth) }
        }
        return result
    }

    /// Checks that `ca` is a self-signed CA certificate valid at `now`.
    static func verifyAuthority(_ ca: Certificate, path: String, now: Date) throws(ProvisioningError) {
        let isAuthority: Bool
        if case .some(.isCertificateAuthority) = try? ca.extensions.basicConstraints {
            isAuthority = true
        } else {
            isAuthority = false
        }
        guard isAuthority, ca.issuer == ca.subject, ca.publicKey.isValidSignature(ca.signature, for: ca) else {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(path) is not a self-signed CA certificate: re-copy it "
                    + "from the provisioning output (ca/ca.pem)")
        }
        try checkValidity(ca, path: path, now: now)
    }

    /// Checks `now` is within the certificate's validity.
    static func checkValidity(_ certificate: Certificate, path: String, now: Date) throws(ProvisioningError) {
        if now < certificate.notValidBefore {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(path) is not valid before \(certificate.notValidBefore): "
                    + "check this machine's clock")
        }
        if now > certificate.notValidAfter {
            throw ProvisioningError(
                .untrustedCertificate,
                "\(path) expired on \(certificate.notValidAfter): ask the project admin for a renewed kit "
                    + "(`tessera provision <project.yaml> --output <dir> --renew <name>`)")
        }
    }
}

/// The contents of a kit's `kit.yaml`.
public struct KitManifest: Sendable, Hashable, Codable {
    public var project: String
    public var participant: String
    public var role: ParticipantRole
    public var server: ServerAddress

    public init(project: String, participant: String, role: ParticipantRole, server: ServerAddress) {
        self.project = project
        self.participant = participant
        self.role = role
        self.server = server
    }

    enum CodingKeys: String, CodingKey {
        case project, participant, role, server
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        project = try container.decode(String.self, forKey: .project)
        participant = try container.decode(String.self, forKey: .participant)
        role = try container.decode(ParticipantRole.self, forKey: .role)
        let text = try container.decode(String.self, forKey: .server)
        guard let address = ServerAddress(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .server, in: container, debugDescription: "'\(text)' is not host:port")
        }
        server = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(project, forKey: .project)
        try container.encode(participant, forKey: .participant)
        try container.encode(role, forKey: .role)
        try container.encode(server.description, forKey: .server)
    }

    /// The text of `kit.yaml`, with a comment header and the kit's file names.
    func yaml() -> String {
        func quoted(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return """
            # Tessera startup kit, written by `tessera provision`. Do not edit: the certificate decides identity
            # and role.
            project: \(quoted(project))
            participant: \(quoted(participant))
            role: \(role.rawValue)
            server: \(quoted(server.description))
            ca: \(Kit.FileName.caCertificate)
            certificate: \(Kit.FileName.certificate)
            key: \(Kit.FileName.privateKey)

            """
    }

    /// Parses `kit.yaml`.
    /// - Throws: `ProvisioningError.invalidKit` naming `path`.
    static func parse(yaml: String, path: String) throws(ProvisioningError) -> KitManifest {
        do {
            return try YAMLDecoder().decode(KitManifest.self, from: yaml)
        } catch {
            throw ProvisioningError(
                .invalidKit,
                "\(path) is not a valid kit description (needs project, participant, "
                    + "role, server host:port): re-copy the kit from the provisioning output", cause: "\(error)")
        }
    }
}
