import FederationCore
import FederationGRPC
import Foundation
import Testing

/// Roles, revocation and the audit log with real `tessera` processes: `tessera provision --revoke`, a `crl.der`
/// copied into the running server's kit, `tessera admin sites` / `logs` as a site admin and as the project lead.
@Suite("Access over real processes: roles, revocation, audit log", .serialized)
struct AccessProcessTests {
    @Test(
        "A revoked site is refused by the running server once crl.der is in its kit; a site admin reads only",
        .timeLimit(.minutes(3)))
    func revokeAndRoles() async throws {
        let cluster = try ProcessCluster(admins: "[lead, {name: it-ch, role: site-admin, site: community-hospital}]")
        try await cluster.startServer()

        // Before any revocation both sites get through.
        for site in ["community-hospital", "research-center"] {
            let connection = try cluster.site(site)
            #expect(try await connection.register(site: site) == nil)
            await connection.close()
        }

        // The project admin revokes research-center's kit and copies the list into the server's kit.
        let project = cluster.path("project.yaml")
        let revoke = try await cluster.tessera(
            ["provision", project, "--output", cluster.kit(""), "--revoke", "research-center"])
        #expect(revoke.status == 0, "\(revoke.output)")
        #expect(revoke.output.contains("revoked certificate"))
        try FileManager.default.copyItem(
            atPath: cluster.kit("ca") + "/crl.der", toPath: cluster.kit("server") + "/crl.der")

        let revoked = try cluster.site("research-center")
        var refusal: FederationError?
        do { _ = try await revoked.register(site: "research-center") } catch { refusal = error }
        await revoked.close()
        #expect(refusal?.code == .unknownSite)
        #expect(refusal?.message.contains("TLS handshake failed") == true, "\(String(describing: refusal))")
        #expect(cluster.logText("server").contains("is revoked"))
        let kept = try cluster.site("community-hospital")
        #expect(try await kept.register(site: "community-hospital") == nil)
        await kept.close()

        // The site admin of community-hospital: its own site in `sites`, no submit (read-only).
        let server = "localhost:\(cluster.port)"
        let kit = ["admin", "--kit", cluster.kit("it-ch"), "--server", server]
        let sites = try await cluster.tessera(kit + ["sites"])
        #expect(sites.status == 0, "\(sites.output)")
        #expect(
            sites.output.contains("community-hospital") && sites.output.contains("version \(TesseraVersion.current)"))
        #expect(!sites.output.contains("research-center"))
        let pipelinePath = cluster.path("pipeline.yaml")
        try cluster.pipeline(rounds: 1, sites: ["community-hospital", "treatment-center"]).write(
            toFile: pipelinePath, atomically: true, encoding: .utf8)
        let submit = try await cluster.tessera(kit + ["submit", pipelinePath])
        #expect(submit.status != 0)
        #expect(submit.output.contains("read-only"), "\(submit.output)")

        // The lead submits and aborts; the job's log has both calls and the states; the lead is warned of its
        // certificate's end when the window is wider than its lifetime.
        let lead = ["admin", "--kit", cluster.kit("lead"), "--server", server, "--expiry-warning-days", "400"]
        let submitted = try await cluster.tessera(lead + ["submit", pipelinePath])
        #expect(submitted.status == 0, "\(submitted.output)")
        #expect(submitted.output.contains("job-0001"))
        #expect(submitted.output.contains("warning: the certificate of admin 'lead'"))
        #expect(try await cluster.tessera(lead + ["abort", "job-0001"]).status == 0)
        let log = try await cluster.tessera(kit + ["logs", "job-0001"])
        #expect(log.status == 0, "\(log.output)")
        for line in ["lead (admin) submit ok", "job-state: queued", "lead (admin) abort ok", "aborted by lead"] {
            #expect(log.output.contains(line), "\(line) in \(log.output)")
        }
    }
}
