import FederationCore
import FederationGRPC
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// Revocation at the TLS layer, over real handshakes on loopback: the server checks each client against the
/// project's CRL (`MutualTLSFiles.revocationList`), a site checks the server.
@Suite("Certificate revocation refuses revoked sites, admins and servers at the TLS handshake")
struct RevocationTests {
    @Test(
        "Revoked site and admin refused, others served; CRL re-read per handshake; a foreign CRL fails closed",
        .timeLimit(.minutes(2)))
    func serverRefusesRevokedClients() async throws {
        try await Federation.withQueuedJobs(checksRevocation: true) { federation, _ in
            let pki = federation.pki
            let good = try pki.issue("a", role: "site")
            let stolen = try pki.issue("b", role: "site")
            let lead = try pki.issue("lead", role: "admin")
            let lostLaptop = try pki.issue("old-lead", role: "admin")

            // No CRL file yet: nothing is revoked, and the chain is still checked (another CA's site is refused).
            let before = try federation.connect(stolen)
            #expect(try await before.register(site: "b") == nil)
            await before.close()
            let stranger = try TemporaryPKI()
            defer { stranger.remove() }
            let foreign = try federation.connect(try stranger.issue("a", role: "site"))
            #expect(await failure { _ = try await foreign.register(site: "a") } == .unknownSite)
            await foreign.close()

            // The CRL appears: the next handshakes of b and old-lead fail; a and lead go on.
            try pki.writeRevocationList(revoking: [stolen, lostLaptop])
            let revokedSite = try federation.connect(stolen)
            var message = ""
            do { _ = try await revokedSite.register(site: "b") } catch let error as FederationError {
                #expect(error.code == .unknownSite)
                message = error.message
            }
            #expect(message.contains("TLS handshake failed"), "\(message)")
            await revokedSite.close()
            let revokedAdmin = try federation.admin(lostLaptop)
            #expect(await failure { _ = try await revokedAdmin.status() } == .unknownSite)
            await revokedAdmin.close()

            let site = try federation.connect(good)
            #expect(try await site.register(site: "a") == nil)
            await site.close()
            let admin = try federation.admin(lead)
            #expect(try await admin.status().isEmpty)
            await admin.close()

            // A list signed by another CA (say, a CA folder mixed up) refuses everyone until it is replaced.
            try stranger.writeRevocationList(revoking: [])
            try FileManager.default.removeItem(atPath: pki.revocationListPath)
            try FileManager.default.copyItem(atPath: stranger.revocationListPath, toPath: pki.revocationListPath)
            let afterMixUp = try federation.connect(good)
            #expect(await failure { _ = try await afterMixUp.register(site: "a") } == .unknownSite)
            await afterMixUp.close()
        }
    }

    @Test(
        "A site with the CRL refuses a revoked server; with the server not revoked it connects", .timeLimit(.minutes(2))
    )
    func siteRefusesRevokedServer() async throws {
        try await Federation.withQueuedJobs { federation, _ in
            var files = try federation.pki.issue("a", role: "site")
            files.revocationList = federation.pki.revocationListPath
            // The site's own verification (host name localhost included) accepts the server.
            try federation.pki.writeRevocationList(revoking: [])
            let before = try federation.connect(files)
            #expect(try await before.register(site: "a") == nil)
            await before.close()

            // The host name is still checked when the verifier replaces BoringSSL's: the server is not "elsewhere".
            let misdirected = try GRPCFederationConnection(
                host: "127.0.0.1", port: federation.port, tls: files, serverName: "elsewhere.example")
            var refusal: FederationError?
            do { _ = try await misdirected.register(site: "a") } catch let error as FederationError { refusal = error }
            #expect(refusal?.code == .unknownSite)
            #expect(refusal?.message.contains("TLS handshake failed") == true, "\(String(describing: refusal))")
            await misdirected.close()

            try federation.pki.writeRevocationList(revoking: [federation.serverTLS], number: 2)
            let after = try federation.connect(files)
            #expect(await failure { _ = try await after.register(site: "a") } == .unknownSite)
            await after.close()
        }
    }
}
