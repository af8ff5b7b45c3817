import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import Provisioning

/// `Golden/crl/`: a test CA (`ca.pem`, `ca-key.pem`: a throw-away key made for this fixture), a CRL our encoder made
/// with `GoldenCRL.list` (`crl.der`), and what OpenSSL reads in it (`crl.openssl.txt`, written by
/// `scripts/reference/crl_openssl.sh`).
enum GoldenCRL {
    static var folder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/crl")
    }

    static func date(_ text: String) -> Date {
        ISO8601DateFormatter().date(from: text) ?? Date(timeIntervalSince1970: 0)
    }

    /// Two revoked serials (one with its top bit set, which DER must pad with a zero byte), CRL number 2, dates in
    /// the UTCTime range, nextUpdate in the GeneralizedTime range (2050).
    static func list(issuer: DistinguishedName) -> CertificateRevocationList {
        CertificateRevocationList(
            issuer: issuer, thisUpdate: date("2026-12-07T06:00:00Z"), nextUpdate: date("2050-01-02T03:04:05Z"),
            number: 2,
            entries: [
                .init(serialNumber: [0x40, 0x01, 0x02, 0x03], revocationDate: date("2026-12-01T12:00:00Z")),
                .init(serialNumber: [0xF0, 0x0D], revocationDate: date("2026-12-06T23:59:59Z")),
            ])
    }

    static func authority() throws -> CertificateAuthority {
        try CertificateAuthority(
            certificatePEM: String(contentsOf: folder.appendingPathComponent("ca.pem"), encoding: .utf8),
            keyPEM: String(contentsOf: folder.appendingPathComponent("ca-key.pem"), encoding: .utf8))
    }

    /// The TBSCertList bytes of a DER CRL (what the signature covers).
    static func tbs(_ der: [UInt8]) throws -> [UInt8] {
        try DER.sequence(DER.parse(der), identifier: .sequence) { nodes in
            guard let tbs = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "empty") }
            while nodes.next() != nil {}
            return Array(tbs.encodedBytes)
        }
    }
}

@Suite("Certificate revocation list: RFC 5280 encoding, OpenSSL's reading, signature checks")
struct RevocationListTests {
    @Test("The encoder reproduces the golden CRL's signed part byte for byte, and parsing it gives the list back")
    func golden() throws {
        if ProcessInfo.processInfo.environment["TESSERA_WRITE_GOLDEN_CRL"] == "1" {
            let ca = try CertificateAuthority.create(project: "tessera-golden", validityDays: 36500)
            try FileManager.default.createDirectory(at: GoldenCRL.folder, withIntermediateDirectories: true)
            try PEMFiles.pem(ca.certificate).write(
                to: GoldenCRL.folder.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
            try PEMFiles.pem(ca.privateKey).write(
                to: GoldenCRL.folder.appendingPathComponent("ca-key.pem"), atomically: true, encoding: .utf8)
            try Data(GoldenCRL.list(issuer: ca.certificate.subject).signed(by: ca)).write(
                to: GoldenCRL.folder.appendingPathComponent("crl.der"))
        }
        let ca = try GoldenCRL.authority()
        let fixture = try [UInt8](Data(contentsOf: GoldenCRL.folder.appendingPathComponent("crl.der")))
        let expected = GoldenCRL.list(issuer: ca.certificate.subject)
        // ECDSA signatures are randomised; the signed part is not.
        #expect(try GoldenCRL.tbs(expected.signed(by: ca)) == GoldenCRL.tbs(fixture))
        let parsed = try CertificateRevocationList(derEncoded: fixture, issuedBy: ca.certificate)
        #expect(parsed == expected)
        #expect(parsed.entries.map(\.serialNumber) == [[0x40, 0x01, 0x02, 0x03], [0xF0, 0x0D]])
        #expect(parsed.number == 2)
    }

    @Test("OpenSSL's reading of the golden CRL (crl.openssl.txt) names the same version, issuer, dates, serials")
    func openSSLGolden() throws {
        let text = try String(
            contentsOf: GoldenCRL.folder.appendingPathComponent("crl.openssl.txt"), encoding: .utf8)
        for line in [
            "Version 2 (0x1)", "Signature Algorithm: ecdsa-with-SHA256",
            "Issuer: O = tessera-golden, CN = tessera-golden CA",
            "Last Update: Dec  7 06:00:00 2026 GMT", "Next Update: Jan  2 03:04:05 2050 GMT",
            "X509v3 Authority Key Identifier", "X509v3 CRL Number", "Serial Number: 40010203",
            "Revocation Date: Dec  1 12:00:00 2026 GMT", "Serial Number: F00D",
            "Revocation Date: Dec  6 23:59:59 2026 GMT", "verify OK",
        ] {
            #expect(text.contains(line), "\(line)")
        }
    }

    @Test(
        "A fresh CRL read by the openssl command: v2, verifies with the CA, lists the serial",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func openSSLLive() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let ca = try CertificateAuthority.create(project: "live", validityDays: 10)
        let now = Date()
        let list = CertificateRevocationList(
            issuer: ca.certificate.subject, thisUpdate: now, nextUpdate: now.addingTimeInterval(86_400), number: 7,
            entries: [.init(serialNumber: [0x41, 0x42], revocationDate: now)])
        try Data(list.signed(by: ca)).write(to: URL(fileURLWithPath: folder.appending("crl.der")))
        try PEMFiles.pem(ca.certificate).write(toFile: folder.appending("ca.pem"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "crl", "-inform", "DER", "-in", folder.appending("crl.der"), "-noout", "-text", "-CAfile",
            folder.appending("ca.pem"),
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        for line in ["Version 2 (0x1)", "verify OK", "Serial Number: 4142", "X509v3 CRL Number", "7"] {
            #expect(text.contains(line), "\(line) in \(text)")
        }
    }

    @Test("A CRL of another CA, a tampered CRL and garbage are refused")
    func refusals() throws {
        let ca = try CertificateAuthority.create(project: "p", validityDays: 10)
        let other = try CertificateAuthority.create(project: "p", validityDays: 10)
        let now = Date()
        let list = CertificateRevocationList(
            issuer: ca.certificate.subject, thisUpdate: now, nextUpdate: now, number: 1,
            entries: [.init(serialNumber: [0x41], revocationDate: now)])
        let good = try list.signed(by: ca)
        #expect(try CertificateRevocationList(derEncoded: good, issuedBy: ca.certificate).entries.count == 1)
        // Same subject, other key: the signature does not verify.
        #expect(throws: ProvisioningError.self) {
            try CertificateRevocationList(derEncoded: good, issuedBy: other.certificate)
        }
        var tampered = good
        // The serial 0x41 (last entry's INTEGER content) becomes 0x42: the signature no longer covers it.
        if let index = tampered.firstIndex(of: 0x41) { tampered[index] = 0x42 }
        #expect(throws: ProvisioningError.self) {
            try CertificateRevocationList(derEncoded: tampered, issuedBy: ca.certificate)
        }
        #expect(throws: ProvisioningError.self) {
            try CertificateRevocationList(derEncoded: [0x30, 0x03, 0x02, 0x01], issuedBy: ca.certificate)
        }
        #expect(throws: ProvisioningError.self) {
            try CertificateRevocationList(
                derEncoded: [UInt8](repeating: 0x30, count: CertificateRevocationList.maxBytes + 1),
                issuedBy: ca.certificate)
        }
    }
}

@Suite("Provisioner: revoke, renew, admin roles in certificates")
struct ProvisionerLifecycleTests {
    func project() throws -> Project {
        try Project(
            name: "tessera-test", server: .init(name: "server", address: ServerAddress(host: "localhost", port: 8443)),
            sites: ["site-a", "site-b"],
            admins: [
                .init(name: "lead"), .init(name: "mia", role: .member),
                .init(name: "it-a", role: .siteAdmin, site: "site-a"),
            ])
    }

    @Test("--revoke adds the kit's serial to ca/crl.der, numbered up; other kits are untouched")
    func revoke() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let provisioner = Provisioner(project: try project(), output: folder.path)
        _ = try provisioner.run()
        let before = try snapshot(folder.path)
        let first = try provisioner.revoke("site-b")
        #expect(first.number == 1 && first.count == 1 && !first.alreadyRevoked)
        let second = try provisioner.revoke("mia")
        #expect(second.number == 2 && second.count == 2)
        let again = try provisioner.revoke("site-b")
        #expect(again.alreadyRevoked && again.count == 2 && again.number == 3)

        let ca = try certificate(at: folder.appending("ca/ca.pem"))
        let list = try CertificateRevocationList(
            derEncoded: [UInt8](Data(contentsOf: URL(fileURLWithPath: first.path))), issuedBy: ca)
        #expect(list.isRevoked(try certificate(at: folder.appending("site-b/cert.pem"))))
        #expect(list.isRevoked(try certificate(at: folder.appending("mia/cert.pem"))))
        #expect(!list.isRevoked(try certificate(at: folder.appending("site-a/cert.pem"))))
        var after = try snapshot(folder.path)
        after["ca/crl.der"] = nil
        #expect(after == before)
        #expect(throws: ProvisioningError.self) { try provisioner.revoke("nobody") }
        // A later run notes the revoked kits; a renewed kit (here the server's) carries the current list.
        let report = try provisioner.run()
        #expect(report.entries.first { $0.name == "site-b" }?.note?.contains("revoked") == true)
        #expect(report.entries.first { $0.name == "site-a" }?.note == nil)
        _ = try provisioner.renew("server")
        #expect(
            FileManager.default.contents(atPath: folder.appending("server/crl.der"))
                == FileManager.default.contents(atPath: first.path))
    }

    @Test("--renew issues a new key and certificate with the same name, role and site; the old kit is retired")
    func renew() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        let later = Date().addingTimeInterval(3600)
        _ = try Provisioner(project: try project(), output: folder.path).run()
        let before = try snapshot(folder.path)
        let old = try certificate(at: folder.appending("it-a/cert.pem"))
        let entry = try Provisioner(project: try project(), output: folder.path, now: later).renew("it-a")
        #expect(entry.action == .renewed)
        let new = try certificate(at: folder.appending("it-a/cert.pem"))
        #expect(new.serialNumber != old.serialNumber && new.publicKey != old.publicKey)
        #expect(new.notValidAfter > old.notValidAfter)
        let kit = try Kit.load(from: folder.appending("it-a"), expectedRoles: [.siteAdmin], now: later)
        #expect(kit.name == "it-a" && kit.role == .siteAdmin)
        #expect(Participant.site(of: new) == "site-a")
        // The others are byte-identical; the old kit sits in .retired/.
        let after = try snapshot(folder.path)
        for (path, bytes) in before where !path.hasPrefix("it-a/") { #expect(after[path] == bytes, "\(path)") }
        let retired = try FileManager.default.contentsOfDirectory(atPath: folder.appending(".retired"))
        #expect(retired.count == 1 && retired.first?.hasPrefix("it-a-") == true)
        // A later plain run keeps the renewed kit.
        let report = try Provisioner(project: try project(), output: folder.path, now: later).run()
        #expect(report.entries(.kept).count == 6 && report.entries(.created).isEmpty)
    }

    @Test("Roles from project.yaml: lead/admin, member, site-admin with its site; checks of role and site")
    func roles() throws {
        let yaml = """
            name: p
            server: {name: server, host: localhost, port: 8443}
            sites: [site-a]
            admins:
              - lead
              - {name: boss, role: lead}
              - {name: mia, role: member}
              - {name: it-a, role: site-admin, site: site-a}
            """
        let project = try Project.parse(yaml: yaml)
        #expect(project.admins.map(\.role) == [.admin, .admin, .member, .siteAdmin])
        #expect(project.admins.map(\.site) == [nil, nil, nil, "site-a"])
        for bad in [
            "{name: x, role: king}", "{name: x, role: site-admin}", "{name: x, role: site-admin, site: nowhere}",
            "{name: x, role: member, site: site-a}", "{name: x, role: site}",
        ] {
            let text = yaml.replacingOccurrences(of: "  - lead\n", with: "  - \(bad)\n")
            #expect(throws: ProvisioningError.self, "\(bad)") { try Project.parse(yaml: text) }
        }
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: project, output: folder.path).run()
        let siteAdmin = try certificate(at: folder.appending("it-a/cert.pem"))
        #expect(try Kit.participantIdentity(of: siteAdmin).role == .siteAdmin)
        #expect(Participant.site(of: siteAdmin) == "site-a")
        #expect(Participant.site(of: try certificate(at: folder.appending("mia/cert.pem"))) == nil)
        // Every admin role loads as an admin kit; a site kit does not.
        for name in ["lead", "mia", "it-a"] {
            _ = try Kit.load(from: folder.appending(name), expectedRoles: ParticipantRole.administrators)
        }
        #expect(throws: ProvisioningError.self) {
            try Kit.load(from: folder.appending("site-a"), expectedRoles: ParticipantRole.administrators)
        }
    }

    @Test("A kit warns when its certificate ends within the warning window, not before")
    func expiryWarning() throws {
        let folder = try TemporaryFolder()
        defer { folder.cleanUp() }
        _ = try Provisioner(project: try project(), output: folder.path).run()
        let kit = try Kit.load(from: folder.appending("site-a"))
        #expect(kit.expiryWarning(now: kit.notValidAfter.addingTimeInterval(-31 * 86_400), withinDays: 30) == nil)
        let warning = kit.expiryWarning(now: kit.notValidAfter.addingTimeInterval(-10.5 * 86_400), withinDays: 30)
        #expect(warning?.contains("in 10 day(s)") == true)
        #expect(warning?.contains("--renew site-a") == true)
    }
}
