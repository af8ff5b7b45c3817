import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import Provisioning

@Suite("Provisioner: CA, certificates and startup kits")
struct ProvisionerTests {
    @Test("every kit's certificate verifies against the CA with swift-certificates' RFC 5280 verifier")
    func chainVerifiesWithSwiftCertificates() async throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let project = try sampleProject()
        _ = try Provisioner(project: project, output: folder.path).run()
        let ca = try certificate(at: folder.appending("ca/ca.pem"))
        for participant in project.participants {
            let leaf = try certificate(at: folder.appending("\(participant.name)/cert.pem"))
            var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
                RFC5280Policy()
            }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate(let chain) = result else {
                Issue.record("\(participant.name): \(result)")
                continue
            }
            #expect(Array(chain).count == 2)
        }
        // The server certificate also passes hostname checks for the loopback names clients dial.
        let server = try certificate(at: folder.appending("server/cert.pem"))
        for (host, ip) in [("localhost", nil), (nil, "127.0.0.1")] as [(String?, String?)] {
            var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
                RFC5280Policy()
                ServerIdentityPolicy(serverHostname: host, serverIP: ip)
            }
            let result = await verifier.validate(leaf: server, intermediates: CertificateStore())
            guard case .validCertificate = result else {
                Issue.record("server identity \(host ?? ip ?? ""): \(result)")
                continue
            }
        }
    }

    @Test("every kit's certificate verifies with `openssl verify -CAfile ca.pem cert.pem`, for its TLS purpose")
    func chainVerifiesWithOpenSSL() throws {
        guard let openssl = opensslPath else {
            print("SKIPPED openssl cross-check: no openssl binary found (install Debian's `openssl` to run it)")
            return
        }
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let project = try sampleProject()
        _ = try Provisioner(project: project, output: folder.path).run()
        for participant in project.participants {
            let kit = folder.appending(participant.name)
            let plain = try runOpenSSL(openssl, ["verify", "-CAfile", "\(kit)/ca.pem", "\(kit)/cert.pem"])
            #expect(plain.status == 0, "\(participant.name): \(plain.output)")
            #expect(plain.output.contains("cert.pem: OK"))
            let purpose = participant.role == .server ? "sslserver" : "sslclient"
            let typed = try runOpenSSL(
                openssl, ["verify", "-purpose", purpose, "-CAfile", "\(kit)/ca.pem", "\(kit)/cert.pem"])
            #expect(typed.status == 0, "\(participant.name) as \(purpose): \(typed.output)")
            // And not for the other purpose: a site certificate cannot serve, the server cannot be a client.
            let other = participant.role == .server ? "sslclient" : "sslserver"
            let wrong = try runOpenSSL(
                openssl, ["verify", "-purpose", other, "-CAfile", "\(kit)/ca.pem", "\(kit)/cert.pem"])
            #expect(wrong.status != 0, "\(participant.name) should fail as \(other)")
            // openssl also reads the PKCS#8 key and agrees it is the certificate's.
            let keyText = try runOpenSSL(openssl, ["pkey", "-in", "\(kit)/key.pem", "-pubout"])
            let certText = try runOpenSSL(openssl, ["x509", "-in", "\(kit)/cert.pem", "-noout", "-pubkey"])
            #expect(keyText.status == 0 && keyText.output == certText.output)
        }
    }

    @Test("key files are mode 0600, the CA key is only in <output>/ca, kits hold exactly their five files")
    func keyFilesArePrivate() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let project = try sampleProject()
        _ = try Provisioner(project: project, output: folder.path).run()
        #expect(try permissions(folder.appending("ca/ca-key.pem")) == 0o600)
        #expect(try permissions(folder.appending("ca")) == 0o700)
        let caKey = try Data(contentsOf: URL(fileURLWithPath: folder.appending("ca/ca-key.pem")))
        let caKeyText = String(decoding: caKey, as: UTF8.self)
        #expect(caKeyText.hasPrefix("-----BEGIN PRIVATE KEY-----"))  // PKCS#8
        for participant in project.participants {
            let kit = folder.appending(participant.name)
            #expect(try permissions("\(kit)/key.pem") == 0o600, "\(participant.name)/key.pem")
            let keyText = try String(contentsOfFile: "\(kit)/key.pem", encoding: .utf8)
            #expect(keyText.hasPrefix("-----BEGIN PRIVATE KEY-----"))
            let files = try FileManager.default.contentsOfDirectory(atPath: kit).sorted()
            #expect(files == ["README.txt", "ca.pem", "cert.pem", "key.pem", "kit.yaml"])
            for (name, data) in try snapshot(kit) {
                #expect(data != caKey, "\(participant.name)/\(name) is the CA key")
            }
        }
    }

    @Test("re-provisioning with an added site keeps every old file byte-identical and issues only the new kit")
    func reprovisioningAddsASite() async throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let first = try Provisioner(project: try sampleProject(), output: folder.path).run()
        #expect(first.caCreated)
        #expect(first.entries(.created).count == 5)
        let before = try snapshot(folder.path)

        let grown = try sampleProject(sites: ["community-hospital", "research-center", "treatment-center", "new-site"])
        let second = try Provisioner(project: grown, output: folder.path).run()
        #expect(!second.caCreated)
        #expect(second.entries(.created).map(\.name) == ["new-site"])
        #expect(second.entries(.kept).count == 5)
        let after = try snapshot(folder.path)
        for (path, data) in before {
            #expect(after[path] == data, "\(path) changed")
        }
        #expect(
            Set(after.keys).subtracting(before.keys)
                == Set(
                    ["ca.pem", "cert.pem", "key.pem", "kit.yaml", "README.txt"].map { "new-site/\($0)" }))

        let ca = try certificate(at: folder.appending("ca/ca.pem"))
        let leaf = try certificate(at: folder.appending("new-site/cert.pem"))
        var verifier = Verifier(rootCertificates: CertificateStore([ca])) { RFC5280Policy() }
        guard case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("the new site's certificate does not verify against the old CA")
            return
        }
        let kit = try Kit.load(from: folder.appending("new-site"))
        #expect(kit.name == "new-site" && kit.role == .site)
        if let openssl = opensslPath {
            let kitFolder = folder.appending("new-site")
            let result = try runOpenSSL(
                openssl, ["verify", "-CAfile", folder.appending("ca/ca.pem"), "\(kitFolder)/cert.pem"])
            #expect(result.status == 0, "\(result.output)")
        }

        // A third run with the same file changes nothing at all.
        let third = try Provisioner(project: grown, output: folder.path).run()
        #expect(third.entries(.created).isEmpty)
        #expect(try snapshot(folder.path) == after)
    }

    @Test("a participant removed from the project file keeps its kit, and the run says so")
    func removedParticipantIsLeftInPlace() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        let before = try snapshot(folder.appending("treatment-center"))
        let shrunk = try sampleProject(sites: ["community-hospital", "research-center"])
        let report = try Provisioner(project: shrunk, output: folder.path).run()
        let left = report.entries(.leftInPlace)
        #expect(left.map(\.name) == ["treatment-center"])
        #expect(left.first?.note?.contains("not deleted") == true)
        #expect("\(report)".contains("treatment-center"))
        #expect("\(report)".contains("left in place"))
        #expect(try snapshot(folder.appending("treatment-center")) == before)
    }

    @Test("roles, subjects, extensions and serials are as specified")
    func certificateContents() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let project = try sampleProject()
        _ = try Provisioner(project: project, output: folder.path).run()

        let ca = try certificate(at: folder.appending("ca/ca.pem"))
        #expect(ca.subject == ca.issuer)
        #expect(ca.publicKey.description.contains("P256"))
        #expect(ca.signatureAlgorithm == .ecdsaWithSHA256)
        guard case .isCertificateAuthority = try ca.extensions.basicConstraints else {
            Issue.record("CA lacks basicConstraints CA:TRUE")
            return
        }
        #expect(ca.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let caUsage = try #require(try ca.extensions.keyUsage)
        #expect(caUsage.keyCertSign && caUsage.cRLSign && !caUsage.digitalSignature)
        #expect(ca.serialNumber.bytes.count == 16)

        for participant in project.participants {
            let leaf = try certificate(at: folder.appending("\(participant.name)/cert.pem"))
            #expect(Kit.attributeValues(.RDNAttributeType.commonName, in: leaf.subject) == [participant.name])
            #expect(
                Kit.attributeValues(.RDNAttributeType.organizationalUnitName, in: leaf.subject)
                    == [participant.role.rawValue])
            #expect(Kit.attributeValues(.RDNAttributeType.organizationName, in: leaf.subject) == ["tessera-test"])
            #expect(leaf.issuer == ca.subject)
            #expect(leaf.serialNumber.bytes.count == 16)
            #expect(leaf.serialNumber != ca.serialNumber)
            #expect(leaf.publicKey.description.contains("P256"))
            guard case .notCertificateAuthority = try leaf.extensions.basicConstraints else {
                Issue.record("\(participant.name) is not CA:FALSE")
                continue
            }
            let usage = try #require(try leaf.extensions.keyUsage)
            #expect(usage.digitalSignature && !usage.keyCertSign)
            let eku = try #require(try leaf.extensions.extendedKeyUsage)
            let purposes = Array(eku)
            switch participant.role {
            case .server:
                #expect(purposes == [.serverAuth])
                let san = try #require(try leaf.extensions.subjectAlternativeNames)
                let names = Array(san)
                #expect(names.contains(.dnsName("localhost")))
                #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
            case .site:
                #expect(purposes == [.clientAuth])
                #expect(try leaf.extensions.subjectAlternativeNames == nil)
            case .admin:
                #expect(purposes == [.clientAuth])
                let san = try #require(try leaf.extensions.subjectAlternativeNames)
                #expect(Array(san) == [.rfc822Name("lead@example.org")])
            case .member, .siteAdmin:
                Issue.record("the sample project has no \(participant.role.rawValue)")
            }
            let validity = leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore)
            #expect(abs(validity - (365 * 86_400 + 300)) < 5)
        }
        let serials = try project.participants.map {
            try certificate(at: folder.appending("\($0.name)/cert.pem")).serialNumber
        }
        #expect(Set(serials.map { $0.bytes }).count == serials.count)
    }

    @Test(
        "a server with a DNS host names it; an IP host is an IP SAN",
        arguments: [
            ("fl.example.org", false), ("10.1.2.3", true), ("127.0.0.1", true),
        ])
    func serverSubjectAlternativeNames(host: String, isIP: Bool) throws {
        let names = CertificateAuthority.subjectAlternativeNames(for: ServerAddress(host: host, port: 443))
        if isIP {
            let bytes = host.split(separator: ".").compactMap { UInt8($0) }
            #expect(names.first == .ipAddress(ASN1OctetString(contentBytes: bytes[...])))
            #expect(!names.contains(.dnsName(host)))
        } else {
            #expect(names == [.dnsName(host)])
        }
        #expect(names.contains(.dnsName("localhost")) == (host == "127.0.0.1"))
    }
}

@Suite("Provisioner: conflicts leave the output untouched")
struct ProvisionerConflictTests {
    /// Provisions the sample project, applies `change`, re-runs with `project`, and expects a conflict naming `text`
    /// with no file added, removed or changed.
    func expectConflict(
        _ project: Project, mentioning text: String, change: (TemporaryFolder) throws -> Void = { _ in }
    ) throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        try change(folder)
        let before = try snapshot(folder.path)
        let error = #expect(throws: ProvisioningError.self) {
            try Provisioner(project: project, output: folder.path).run()
        }
        #expect(error?.code == .conflict)
        #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
        #expect(try snapshot(folder.path) == before)
    }

    @Test("a participant whose role changed is refused until its old kit is deleted")
    func roleChange() throws {
        var project = try sampleProject(sites: ["community-hospital", "research-center", "treatment-center", "new"])
        project.admins = [.init(name: "treatment-center")]
        project.sites.removeAll { $0 == "treatment-center" }
        try expectConflict(project, mentioning: "has role admin in the project file but its kit")
    }

    @Test("a folder in the way that is not a kit is refused")
    func folderInTheWay() throws {
        let project = try sampleProject(sites: ["community-hospital", "research-center", "treatment-center", "new"])
        try expectConflict(project, mentioning: "is not a kit") { folder in
            try FileManager.default.createDirectory(atPath: folder.appending("new"), withIntermediateDirectories: true)
        }
    }

    @Test("another project's name against an existing CA is refused")
    func projectRenamed() throws {
        var project = try sampleProject()
        project.name = "other-project"
        try expectConflict(project, mentioning: "is the CA of project 'tessera-test'")
    }

    @Test("kits without their CA are refused (a new CA would not trust them)")
    func missingAuthority() throws {
        try expectConflict(try sampleProject(), mentioning: "but no CA") { folder in
            try FileManager.default.removeItem(atPath: folder.appending("ca"))
        }
    }

    @Test("a CA certificate without its key is refused")
    func missingAuthorityKey() throws {
        try expectConflict(try sampleProject(), mentioning: "has only") { folder in
            try FileManager.default.removeItem(atPath: folder.appending("ca/ca-key.pem"))
        }
    }

    @Test("a changed server address keeps old kits and says they name the old address")
    func serverMoved() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try sampleProject(), output: folder.path).run()
        var moved = try sampleProject()
        moved.server.address = ServerAddress(host: "fl.example.org", port: 443)
        let report = try Provisioner(project: moved, output: folder.path).run()
        #expect(report.entries(.created).isEmpty)
        #expect(report.entries(.kept).allSatisfy { $0.note?.contains("still names server localhost:8443") == true })
    }
}
