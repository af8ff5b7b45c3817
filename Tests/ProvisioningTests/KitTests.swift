import Foundation
import SwiftASN1
import Testing

@testable import Provisioning

@Suite("Kit loader")
struct KitTests {
    @Test("a good kit loads with its name, role, server address and PEM paths")
    func loadsAGoodKit() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let site = try Kit.load(from: folder.appending("research-center"), expectedRoles: [.site])
        #expect(site.name == "research-center")
        #expect(site.role == .site)
        #expect(site.project == "tessera-test")
        #expect(site.serverAddress == ServerAddress(host: "localhost", port: 8443))
        #expect("\(site.serverAddress)" == "localhost:8443")
        #expect(site.certificatePath.hasSuffix("research-center/cert.pem"))
        #expect(site.privateKeyPath.hasSuffix("research-center/key.pem"))
        #expect(site.caCertificatePath.hasSuffix("research-center/ca.pem"))
        #expect(try Kit.load(from: folder.appending("server")).role == .server)
        #expect(try Kit.load(from: folder.appending("lead")).role == .admin)
        let readme = try String(contentsOfFile: folder.appending("research-center/README.txt"), encoding: .utf8)
        #expect(readme.contains("tessera client --kit <dir> --data <DICOM folder>"))
        let serverReadme = try String(contentsOfFile: folder.appending("server/README.txt"), encoding: .utf8)
        #expect(serverReadme.contains("tessera server --kit <dir>"))
    }

    @Test("a leaf (with its key) from another project's CA fails: untrusted, naming cert.pem")
    func leafFromAnotherCAFails() throws {
        let ours = try TemporaryFolder()
        let theirs = try TemporaryFolder()
        defer {
            ours.cleanUp()
            theirs.cleanUp()
        }
        _ = try Provisioner(project: try sampleProject(), output: ours.path).run()
        _ = try Provisioner(project: try sampleProject(), output: theirs.path).run()
        let kit = ours.appending("community-hospital")
        for file in ["cert.pem", "key.pem"] {
            try FileManager.default.removeItem(atPath: "\(kit)/\(file)")
            try FileManager.default.copyItem(
                atPath: theirs.appending("community-hospital/\(file)"), toPath: "\(kit)/\(file)")
        }
        let error = #expect(throws: ProvisioningError.self) { try Kit.load(from: kit) }
        #expect(error?.code == .untrustedCertificate)
        #expect(error?.message.contains("cert.pem") == true)
        #expect(error?.message.contains("not issued by the CA") == true)

        // The provisioner also refuses to keep a foreign kit as if it were ours.
        let conflict = #expect(throws: ProvisioningError.self) {
            try Provisioner(project: try sampleProject(), output: ours.path).run()
        }
        #expect(conflict?.code == .conflict)
    }

    @Test("a kit whose key is another participant's fails, naming key.pem")
    func mismatchedKeyFails() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let kit = folder.appending("community-hospital")
        try FileManager.default.removeItem(atPath: "\(kit)/key.pem")
        try FileManager.default.copyItem(atPath: folder.appending("research-center/key.pem"), toPath: "\(kit)/key.pem")
        let error = #expect(throws: ProvisioningError.self) { try Kit.load(from: kit) }
        #expect(error?.code == .invalidKit)
        #expect(error?.message.contains("key.pem is not the private key of") == true)
    }

    @Test("a missing file is named, with what to do", arguments: ["ca.pem", "cert.pem", "key.pem", "kit.yaml"])
    func missingFileIsNamed(file: String) throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let kit = folder.appending("treatment-center")
        try FileManager.default.removeItem(atPath: "\(kit)/\(file)")
        let error = #expect(throws: ProvisioningError.self) { try Kit.load(from: kit) }
        #expect(error?.code == .invalidKit)
        #expect(error?.message.contains("\(file) (") == true)
        #expect(error?.message.contains("is missing: re-copy") == true)
    }

    @Test("a site kit is refused where a server kit is needed")
    func wrongRoleIsRefused() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let error = #expect(throws: ProvisioningError.self) {
            try Kit.load(from: folder.appending("research-center"), expectedRoles: [.server])
        }
        #expect(error?.code == .untrustedCertificate)
        #expect(error?.message.contains("needs a server kit") == true)
    }

    @Test("an expired or not-yet-valid certificate fails, naming the file")
    func validityIsChecked() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        var project = try sampleProject()
        project.validityDays = 1
        _ = try Provisioner(project: project, output: folder.path).run()
        let kit = folder.appending("research-center")
        let later = #expect(throws: ProvisioningError.self) {
            try Kit.load(from: kit, now: Date().addingTimeInterval(3 * 86_400))
        }
        #expect(later?.message.contains("cert.pem expired") == true)
        let earlier = #expect(throws: ProvisioningError.self) {
            try Kit.load(from: kit, now: Date().addingTimeInterval(-3_600))
        }
        #expect(earlier?.code == .untrustedCertificate)
    }

    @Test("a key readable by others is refused with the chmod to run")
    func looseKeyPermissionsFail() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let key = folder.appending("lead/key.pem")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: key)
        let error = #expect(throws: ProvisioningError.self) { try Kit.load(from: folder.appending("lead")) }
        #expect(error?.message.contains("chmod 600") == true)
    }
}

@Suite("Peer identity from a certificate")
struct PeerIdentityTests {
    @Test("name and role come from CN and OU of the DER a TLS stack hands over")
    func identityFromDER() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let project = try sampleProject()
        _ = try Provisioner(project: project, output: folder.path).run()
        for participant in project.participants {
            let pem = try String(contentsOfFile: folder.appending("\(participant.name)/cert.pem"), encoding: .utf8)
            let der = try PEMDocument(pemString: pem).derBytes
            let identity = try Kit.participantIdentity(derEncoded: der)
            #expect(identity.name == participant.name)
            #expect(identity.role == participant.role)
        }
        // The CA itself has no OU: it is not a participant.
        let caPEM = try String(contentsOfFile: folder.appending("ca/ca.pem"), encoding: .utf8)
        let error = #expect(throws: ProvisioningError.self) {
            try Kit.participantIdentity(derEncoded: try PEMDocument(pemString: caPEM).derBytes)
        }
        #expect(error?.message.contains("exactly one OU") == true)
        #expect(throws: ProvisioningError.self) { try Kit.participantIdentity(derEncoded: [1, 2, 3]) }
    }
}
