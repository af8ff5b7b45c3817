import Crypto
import Foundation
import X509

/// Revoking and renewing one participant's certificate, months into a project, without touching the other kits.
///
/// - `revoke`: adds the serial number of `<output>/<name>/cert.pem` to `<output>/ca/crl.der` (RFC 5280 CRL, see
///   `CertificateRevocationList`), re-signed by the CA with a cRLNumber one higher. Copy that file as `crl.der` into
///   the server's and the sites' kit folders: their next TLS handshake with the revoked participant fails.
/// - `renew`: issues a new key and certificate for the project's participant `name` (same CA, name, role, e-mail and
///   site), moves its old kit to `<output>/.retired/<name>-<yyyyMMdd-HHmmss>/` and writes the new kit in its place.
///   The old certificate stays valid until it expires (or is revoked): the participant switches kits when it likes.
extension Provisioner {
    /// The folder old kits are moved to by `renew`.
    public static let retiredFolderName = ".retired"

    /// What `revoke` did.
    public struct Revocation: Sendable, CustomStringConvertible {
        /// The CRL file written.
        public var path: String
        /// The revoked certificate's serial number, hexadecimal.
        public var serialNumber: String
        /// The list's cRLNumber.
        public var number: Int
        /// How many certificates the list names.
        public var count: Int
        /// True when the certificate was on the list already (the list is then rewritten unchanged but for its
        /// number and dates).
        public var alreadyRevoked: Bool

        public var description: String {
            "revoked certificate \(serialNumber)\(alreadyRevoked ? " (already on the list)" : ""): \(path) is CRL "
                + "number \(number) with \(count) certificate(s); copy it as \(CertificateRevocationList.fileName) "
                + "into the kit folders of the server and the sites"
        }
    }

    /// Revokes the certificate of the kit `<output>/<name>`.
    /// - Throws: `ProvisioningError` (`.invalidProject` for a name with no kit, `.conflict` for a kit of another CA,
    ///   `.io`, `.crypto`).
    public func revoke(_ name: String) throws(ProvisioningError) -> Revocation {
        let root = URL(fileURLWithPath: output).standardizedFileURL
        let caFolder = root.appendingPathComponent(Self.caFolderName)
        guard let authority = try loadAuthority(caFolder) else {
            throw ProvisioningError(.conflict, "\(caFolder.path) has no CA: nothing was ever issued here")
        }
        let certificate = try kitCertificate(name, root: root, authority: authority)
        let crlPath = caFolder.appendingPathComponent(CertificateRevocationList.fileName).path
        var list = try loadRevocationList(crlPath, authority: authority)
        let already = list.isRevoked(certificate)
        if !already {
            list.entries.append(
                CertificateRevocationList.Entry(
                    serialNumber: Array(certificate.serialNumber.bytes), revocationDate: now))
        }
        let (number, overflow) = list.number.addingReportingOverflow(1)
        guard !overflow else {
            throw ProvisioningError(.conflict, "\(crlPath) has cRLNumber \(list.number): it cannot grow further")
        }
        list.number = number
        list.thisUpdate = CertificateRevocationList.wholeSeconds(now)
        list.nextUpdate = CertificateRevocationList.wholeSeconds(
            min(now.addingTimeInterval(Double(project.validityDays) * 86_400), authority.certificate.notValidAfter))
        let bytes = try list.signed(by: authority)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: crlPath), options: .atomic)
        } catch {
            throw ProvisioningError(.io, "cannot write \(crlPath)", cause: "\(error)")
        }
        return Revocation(
            path: crlPath, serialNumber: certificate.serialNumber.description, number: list.number,
            count: list.entries.count, alreadyRevoked: already)
    }

    /// Issues a new kit for the project's participant `name`, moving the old one to `<output>/.retired/`.
    /// - Returns: the new kit's report entry (action `renewed`; its note names where the old kit went).
    /// - Throws: `ProvisioningError` (`.invalidProject` when `name` is not in the project file or has no kit yet,
    ///   `.conflict` for a kit of another CA or role, `.io`, `.crypto`).
    public func renew(_ name: String) throws(ProvisioningError) -> ProvisioningReport.Entry {
        let root = URL(fileURLWithPath: output).standardizedFileURL
        let caFolder = root.appendingPathComponent(Self.caFolderName)
        guard let participant = project.participants.first(where: { $0.name == name }) else {
            throw ProvisioningError(
                .invalidProject, "'\(name)' is not in the project file: add it, or give a participant's name")
        }
        guard let authority = try loadAuthority(caFolder) else {
            throw ProvisioningError(.conflict, "\(caFolder.path) has no CA: run `tessera provision` first")
        }
        let folder = root.appendingPathComponent(name)
        let old = try kitCertificate(name, root: root, authority: authority)
        _ = try checkExisting(participant, folder: folder, authority: authority)

        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.timeZone = TimeZone(identifier: "UTC")
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        let retired = root.appendingPathComponent(Self.retiredFolderName)
        let destination = retired.appendingPathComponent("\(name)-\(stamp.string(from: now))")
        try PEMFiles.createDirectory(retired.path, mode: 0o700)
        let credential = try authority.issue(
            participant, project: project.name, server: project.server.address, validityDays: project.validityDays,
            now: now)
        do {
            try FileManager.default.moveItem(at: folder, to: destination)
        } catch {
            throw ProvisioningError(
                .io, "cannot move the old kit \(folder.path) to \(destination.path)", cause: "\(error)")
        }
        try writeKit(participant, credential: credential, authority: authority, to: folder)
        return ProvisioningReport.Entry(
            name: name, role: participant.role, folder: folder.path, action: .renewed,
            notValidAfter: credential.certificate.notValidAfter,
            note: "old kit moved to \(destination.path); its certificate stays valid until "
                + "\(old.notValidAfter) unless revoked (`tessera provision --revoke` revokes the current kit's, so "
                + "revoke before renewing to retire the old one at once)")
    }

    /// The certificate of kit `<root>/<name>`, checked to be issued by `authority`.
    func kitCertificate(_ name: String, root: URL, authority: CertificateAuthority) throws(ProvisioningError)
        -> Certificate
    {
        let certPath = root.appendingPathComponent(name).appendingPathComponent(Kit.FileName.certificate).path
        guard FileManager.default.fileExists(atPath: certPath) else {
            throw ProvisioningError(.invalidProject, "there is no kit '\(name)' in \(root.path) (no \(certPath))")
        }
        let certificate = try PEMFiles.certificate(pem: PEMFiles.read(certPath, what: "certificate"), path: certPath)
        let ca = authority.certificate
        guard certificate.issuer == ca.subject, ca.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw ProvisioningError(.conflict, "\(certPath) was not issued by this project's CA")
        }
        return certificate
    }

    /// The CRL at `path`, or an empty list (number 0) when there is none yet.
    func loadRevocationList(_ path: String, authority: CertificateAuthority) throws(ProvisioningError)
        -> CertificateRevocationList
    {
        guard FileManager.default.fileExists(atPath: path) else {
            return CertificateRevocationList(
                issuer: authority.certificate.subject, thisUpdate: now, nextUpdate: now, number: 0, entries: [])
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProvisioningError(.io, "cannot read \(path)")
        }
        return try CertificateRevocationList(
            derEncoded: Array(data), issuedBy: authority.certificate, path: path)
    }
}
