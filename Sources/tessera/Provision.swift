import ArgumentParser
import Foundation
import Provisioning

struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the project CA, certificates and one startup kit per participant.",
        discussion: """
            Reads a project file (see pipelines/project.yaml) and writes <output>/ca/ (the CA; keep ca-key.pem \
            secret) and <output>/<participant>/ (a kit: ca.pem, cert.pem, key.pem, kit.yaml, README.txt). Run it \
            again with the same output after adding a site: only the new kit is issued, existing kits stay \
            byte-identical. A participant removed from the file keeps its kit folder.

            --revoke NAME adds the certificate of kit <output>/NAME to the CA's revocation list <output>/ca/crl.der \
            (copy it as crl.der into the server's and the sites' kits: they refuse that certificate at the TLS \
            handshake). --renew NAME issues a new key and certificate for NAME (same CA and role) in a new kit and \
            moves the old kit to <output>/.retired/; no other kit changes. See docs/operations-access.md.
            """)

    @Argument(help: "Project file (see pipelines/project.yaml).")
    var project: String

    @Option(name: .shortAndLong, help: "Folder for the CA and the startup kits.")
    var output: String

    @Option(help: "Revoke the certificate of this participant's kit (writes <output>/ca/crl.der).")
    var revoke: String?

    @Option(help: "Renew this participant's certificate: a new kit, the old one moved to <output>/.retired/.")
    var renew: String?

    func validate() throws {
        guard FileManager.default.fileExists(atPath: project) else {
            throw ValidationError("project file '\(project)' does not exist (example: pipelines/project.yaml)")
        }
        if revoke != nil && renew != nil {
            throw ValidationError("give --revoke or --renew, not both: revoke first, then renew, if both are meant")
        }
    }

    func run() throws {
        do {
            let project = try Project.load(path: self.project)
            let provisioner = Provisioner(project: project, output: output)
            if let name = revoke {
                print(try provisioner.revoke(name))
            } else if let name = renew {
                let entry = try provisioner.renew(name)
                print(
                    "renewed \(entry.name) (\(entry.role.rawValue)): new kit \(entry.folder), valid until "
                        + "\(entry.notValidAfter.map { "\($0)" } ?? "?")")
                if let note = entry.note { print("note: \(note)") }
            } else {
                print(try provisioner.run())
            }
        } catch {
            throw CommandFailure(description: error.description)
        }
    }
}
