import Crypto
import Foundation
import X509

/// Creates the project CA and a startup kit per participant, and adds kits on later runs without touching old ones.
///
/// Output layout:
/// ```
/// <output>/ca/ca.pem         the CA certificate (also copied into every kit)
/// <output>/ca/ca-key.pem     the CA private key, PKCS#8 PEM, mode 0600 (folder 0700): never in a kit
/// <output>/<participant>/    one kit per participant (see `Kit`): ca.pem, cert.pem, key.pem (0600), kit.yaml,
///                            README.txt
/// ```
/// Re-running with the same output reuses the CA, keeps every existing kit byte for byte, and issues kits only for
/// participants without one. A participant removed from the project file keeps its kit folder (it is reported, not
/// deleted; its certificate stays valid until it expires or is revoked with `revoke`). Every kit and the CA folder
/// are written under a hidden temporary name and renamed into place, so an interrupted run never leaves a
/// half-written kit that looks complete. A new kit gets a copy of the CA's revocation list (`ca/crl.der`) when there
/// is one; a kept kit whose certificate is on it is reported with a note. Revocation and renewal:
/// `Provisioner+Lifecycle.swift`.
public struct Provisioner: Sendable {
    /// The project to provision.
    public var project: Project
    /// The output folder.
    public var output: String
    /// The issuing time; certificates are valid from five minutes before it.
    public var now: Date

    public init(project: Project, output: String, now: Date = Date()) {
        self.project = project
        self.output = output
        self.now = now
    }

    /// The CA folder's name inside the output.
    public static let caFolderName = "ca"
    /// The CA key's file name inside the CA folder.
    public static let caKeyFileName = "ca-key.pem"

    /// Provisions: loads or creates the CA, checks existing kits against the project, then writes the missing kits.
    ///
    /// Nothing is written until every existing kit has been checked, so a conflict leaves the output as it was.
    /// - Returns: what was created, kept and left in place.
    /// - Throws: `ProvisioningError` (`.conflict` when the output holds kits of another CA, a participant whose role
    ///   changed, or a folder that is not a kit; `.io`, `.crypto` otherwise).
    public func run() throws(ProvisioningError) -> ProvisioningReport {
        let root = URL(fileURLWithPath: output).standardizedFileURL
        try PEMFiles.createDirectory(root.path, mode: 0o700)
        let caFolder = root.appendingPathComponent(Self.caFolderName)
        var report = ProvisioningReport(output: root.path, caFolder: caFolder.path, caCreated: false)

        let existingKits = try kitFolders(in: root)
        var authority = try loadAuthority(caFolder)
        if authority == nil, !existingKits.isEmpty {
            let names = existingKits.keys.sorted().joined(separator: ", ")
            throw ProvisioningError(
                .conflict,
                "\(root.path) has kits (\(names)) but no CA in \(caFolder.path): "
                    + "restore ca/ca.pem and ca/ca-key.pem from backup, or provision into "
                    + "an empty folder (a new CA would not trust the old kits)")
        }

        // Plan: check every participant's folder before writing anything.
        var toIssue: [Participant] = []
        for participant in project.participants {
            let folder = root.appendingPathComponent(participant.name)
            guard FileManager.default.fileExists(atPath: folder.path) else {
                toIssue.append(participant)
                continue
            }
            guard let authority else {
                throw ProvisioningError(
                    .conflict,
                    "\(folder.path) exists but the CA is new: remove the folder or "
                        + "choose another output")
            }
            report.entries.append(try checkExisting(participant, folder: folder, authority: authority))
        }

        if authority == nil {
            let created = try CertificateAuthority.create(
                project: project.name, validityDays: project.caValidityDays, now: now)
            try writeAuthority(created, to: caFolder)
            authority = created
            report.caCreated = true
        }
        guard let authority else { return report }
        report.caNotValidAfter = authority.certificate.notValidAfter

        for participant in toIssue {
            let folder = root.appendingPathComponent(participant.name)
            let credential = try authority.issue(
                participant, project: project.name, server: project.server.address,
                validityDays: project.validityDays, now: now)
            try writeKit(participant, credential: credential, authority: authority, to: folder)
            report.entries.append(
                ProvisioningReport.Entry(
                    name: participant.name, role: participant.role, folder: folder.path, action: .created,
                    notValidAfter: credential.certificate.notValidAfter))
        }

        let names = Set(project.participants.map(\.name))
        for (name, manifest) in existingKits.sorted(by: { $0.key < $1.key }) where !names.contains(name) {
            let folder = root.appendingPathComponent(name)
            let certPath = folder.appendingPathComponent(Kit.FileName.certificate).path
            let expiry = (try? String(contentsOfFile: certPath, encoding: .utf8))
                .flatMap { try? Certificate(pemEncoded: $0) }?.notValidAfter
            report.entries.append(
                ProvisioningReport.Entry(
                    name: name, role: manifest.role, folder: folder.path, action: .leftInPlace, notValidAfter: expiry,
                    note: "not in the project file: kit not deleted; its certificate stays valid until it expires "
                        + "(no revocation yet): delete the folder and stop using the kit if the participant left"))
        }
        let order = Dictionary(uniqueKeysWithValues: project.participants.enumerated().map { ($1.name, $0) })
        report.entries.sort { (order[$0.name] ?? Int.max, $0.name) < (order[$1.name] ?? Int.max, $1.name) }
        return report
    }

    // MARK: - Existing state

    /// The kits already in the output: folder name → manifest (folders with a `kit.yaml`, hidden ones skipped).
    func kitFolders(in root: URL) throws(ProvisioningError) -> [String: KitManifest] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: root.path)
        } catch {
            throw ProvisioningError(.io, "cannot list \(root.path)", cause: "\(error)")
        }
        var kits: [String: KitManifest] = [:]
        for name in names where !name.hasPrefix(".") && name != Self.caFolderName {
            let manifestPath = root.appendingPathComponent(name).appendingPathComponent(Kit.FileName.manifest).path
            guard FileManager.default.fileExists(atPath: manifestPath) else { continue }
            kits[name] = try KitManifest.parse(
                yaml: PEMFiles.read(manifestPath, what: "kit description"),
                path: manifestPath)
        }
        return kits
    }

    /// Loads the CA from `folder`, or returns `nil` when neither of its files exists.
    func loadAuthority(_ folder: URL) throws(ProvisioningError) -> CertificateAuthority? {
        let certPath = folder.appendingPathComponent(Kit.FileName.caCertificate).path
        let keyPath = folder.appendingPathComponent(Self.caKeyFileName).path
        let hasCert = FileManager.default.fileExists(atPath: certPath)
        let hasKey = FileManager.default.fileExists(atPath: keyPath)
        if !hasCert && !hasKey { return nil }
        guard hasCert && hasKey else {
            throw ProvisioningError(
                .conflict,
                "\(folder.path) has only \(hasCert ? certPath : keyPath): restore the "
                    + "other file from backup; without both the CA cannot issue kits the old ones trust")
        }
        let authority = try CertificateAuthority(
            certificatePEM: PEMFiles.read(certPath, what: "the CA certificate"),
            keyPEM: PEMFiles.read(keyPath, what: "the CA key"), certificatePath: certPath, keyPath: keyPath)
        let organisation = Kit.attributeValues(.RDNAttributeType.organizationName, in: authority.certificate.subject)
        guard organisation == [project.name] else {
            throw ProvisioningError(
                .conflict,
                "\(certPath) is the CA of project '\(organisation.first ?? "?")', "
                    + "not '\(project.name)': use another output folder, or keep the project name")
        }
        if now > authority.certificate.notValidAfter {
            throw ProvisioningError(
                .conflict,
                "the CA in \(certPath) expired on "
                    + "\(authority.certificate.notValidAfter): provision a new project into an empty folder")
        }
        return authority
    }

    /// Checks a participant's existing kit against the CA and the project; it is kept as it is.
    func checkExisting(_ participant: Participant, folder: URL, authority: CertificateAuthority)
        throws(ProvisioningError) -> ProvisioningReport.Entry
    {
        let certPath = folder.appendingPathComponent(Kit.FileName.certificate).path
        let manifestPath = folder.appendingPathComponent(Kit.FileName.manifest).path
        guard FileManager.default.fileExists(atPath: certPath), FileManager.default.fileExists(atPath: manifestPath)
        else {
            throw ProvisioningError(
                .conflict,
                "\(folder.path) exists but is not a kit (no \(Kit.FileName.certificate) "
                    + "or \(Kit.FileName.manifest)): move it away so the kit of '\(participant.name)' can be written")
        }
        let certificate = try PEMFiles.certificate(pem: PEMFiles.read(certPath, what: "certificate"), path: certPath)
        let ca = authority.certificate
        guard certificate.issuer == ca.subject, ca.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw ProvisioningError(
                .conflict,
                "\(certPath) was not issued by this project's CA: remove \(folder.path) "
                    + "to issue a new kit for '\(participant.name)'")
        }
        let identity = try Kit.participantIdentity(of: certificate)
        guard identity.role == participant.role, identity.name == participant.name else {
            throw ProvisioningError(
                .conflict,
                "'\(participant.name)' has role \(participant.role.rawValue) in the "
                    + "project file but its kit in \(folder.path) has role \(identity.role.rawValue): delete that folder "
                    + "to re-issue it with the new role")
        }
        var notes: [String] = []
        let manifest = try KitManifest.parse(
            yaml: PEMFiles.read(manifestPath, what: "kit description"),
            path: manifestPath)
        if manifest.server != project.server.address {
            notes.append(
                "its kit.yaml still names server \(manifest.server), not \(project.server.address): delete "
                    + "the folder and run again to re-issue")
        }
        if now > certificate.notValidAfter {
            notes.append("its certificate expired on \(certificate.notValidAfter): delete the folder and run again")
        }
        let crlPath = folder.deletingLastPathComponent().appendingPathComponent(Self.caFolderName)
            .appendingPathComponent(CertificateRevocationList.fileName).path
        if FileManager.default.fileExists(atPath: crlPath),
            try loadRevocationList(crlPath, authority: authority).isRevoked(certificate)
        {
            notes.append("its certificate is revoked (\(crlPath)): run with --renew \(participant.name) to re-issue it")
        }
        return ProvisioningReport.Entry(
            name: participant.name, role: participant.role, folder: folder.path, action: .kept,
            notValidAfter: certificate.notValidAfter, note: notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    // MARK: - Writing

    /// Writes the CA folder (mode 0700) with `ca.pem` (0644) and `ca-key.pem` (0600).
    func writeAuthority(_ authority: CertificateAuthority, to folder: URL) throws(ProvisioningError) {
        try writeAtomically(folder) { (staging: URL) throws(ProvisioningError) in
            try PEMFiles.create(
                staging.appendingPathComponent(Kit.FileName.caCertificate).path,
                text: PEMFiles.pem(authority.certificate), mode: 0o644)
            try PEMFiles.create(
                staging.appendingPathComponent(Self.caKeyFileName).path,
                text: PEMFiles.pem(authority.privateKey), mode: 0o600)
        }
    }

    /// Writes one kit folder (mode 0700).
    func writeKit(
        _ participant: Participant, credential: CertificateAuthority.IssuedCredential,
        authority: CertificateAuthority, to folder: URL
    ) throws(ProvisioningError) {
        let manifest = KitManifest(
            project: project.name, participant: participant.name, role: participant.role,
            server: project.server.address)
        try writeAtomically(folder) { (staging: URL) throws(ProvisioningError) in
            func path(_ name: String) -> String { staging.appendingPathComponent(name).path }
            let caText = try PEMFiles.pem(authority.certificate)
            try PEMFiles.create(path(Kit.FileName.caCertificate), text: caText, mode: 0o644)
            try PEMFiles.create(path(Kit.FileName.certificate), text: PEMFiles.pem(credential.certificate), mode: 0o644)
            try PEMFiles.create(path(Kit.FileName.privateKey), text: PEMFiles.pem(credential.privateKey), mode: 0o600)
            try PEMFiles.create(path(Kit.FileName.manifest), text: manifest.yaml(), mode: 0o644)
            try PEMFiles.create(path(Kit.FileName.readme), text: Self.readme(for: manifest), mode: 0o644)
            let crl = folder.deletingLastPathComponent().appendingPathComponent(Self.caFolderName)
                .appendingPathComponent(CertificateRevocationList.fileName)
            if FileManager.default.fileExists(atPath: crl.path) {
                do {
                    try FileManager.default.copyItem(
                        at: crl, to: staging.appendingPathComponent(Kit.FileName.revocationList))
                } catch {
                    throw ProvisioningError(.io, "cannot copy \(crl.path) into the new kit", cause: "\(error)")
                }
            }
        }
    }

    /// Fills a hidden staging folder next to `folder`, then renames it to `folder`.
    func writeAtomically(_ folder: URL, fill: (URL) throws(ProvisioningError) -> Void) throws(ProvisioningError) {
        let staging = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).partial")
        if FileManager.default.fileExists(atPath: staging.path) {
            // Left by an interrupted run: never a complete kit, and only we write this name.
            try? FileManager.default.removeItem(at: staging)
        }
        try PEMFiles.createDirectory(staging.path, mode: 0o700)
        do {
            try fill(staging)
            try FileManager.default.moveItem(at: staging, to: folder)
        } catch let error as ProvisioningError {
            try? FileManager.default.removeItem(at: staging)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw ProvisioningError(
                .io, "cannot move the new kit into \(folder.path): is something there already?",
                cause: "\(error)")
        }
    }

    /// The README line(s) of a kit.
    static func readme(for manifest: KitManifest) -> String {
        let start: String
        switch manifest.role {
        case .server:
            start = "tessera server --kit <dir>"
        case .site:
            start = "tessera client --kit <dir> --data <DICOM folder>"
        case .admin, .member:
            start =
                "tessera admin --kit <dir> submit <pipeline.yaml> | status | abort <job> | download <job> | "
                + "logs <job> | sites"
        case .siteAdmin:
            start = "tessera admin --kit <dir> status | logs <job> | sites   (read-only, this site's jobs)"
        }
        return """
            Tessera startup kit for \(manifest.role.rawValue) '\(manifest.participant)' of project \
            '\(manifest.project)' (server \(manifest.server)).
            Start: \(start)
            where <dir> is this folder. key.pem is this participant's private key: keep it secret (mode 0600), never \
            send it anywhere; ca.pem is the only certificate authority the federation trusts.

            """
    }
}
