import FederationCore
import FederationGRPC
import FederationServer
import FederationTestSupport
import Foundation
import Testing

/// Plans `sites=<a,b,...>` as a one-round training job; never runs one (the tests keep their jobs queued).
struct QueuedOnlyFactory: JobFactory {
    func plan(pipeline: String) throws(FederationError) -> JobPlan {
        let sites = pipeline.split(separator: "=").last.map { $0.split(separator: ",").map(String.init) } ?? []
        guard pipeline.hasPrefix("sites="), !sites.isEmpty else {
            throw FederationError(.invalidConfiguration, "pipeline needs sites=<a,b>")
        }
        return JobPlan(kind: .training, rounds: 1, sites: sites)
    }

    func makeRunner(jobID: String, pipeline: String, submittedBy: String, store: SQLiteCheckpointStore)
        async throws(FederationError) -> any JobRunner
    {
        throw FederationError(.invalidConfiguration, "this factory never runs a job")
    }
}

extension Federation {
    /// A server whose job manager (and admin service) keeps its state in a temporary folder and never starts a job
    /// (`QueuedOnlyFactory`): `body` gets the federation and the store, whose folder is removed afterwards.
    static func withQueuedJobs<T: Sendable>(
        checksRevocation: Bool = false, _ body: (Federation, SQLiteCheckpointStore) async throws -> T
    ) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-admin-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try SQLiteCheckpointStore(folder: folder)
        let manager = JobManager(store: store, factory: QueuedOnlyFactory())
        return try await Federation.with(manager, admin: manager, checksRevocation: checksRevocation) {
            try await body($0, store)
        }
    }
}

/// Each admin role against each admin action over the real gRPC + mutual-TLS transport, with the audit log checked.
@Suite("Admin roles over gRPC + mTLS: what each may do, refusals and the audit log")
struct AdminAccessTests {
    /// The outcome of one call: nil when allowed (it may still fail, e.g. a queued job has no files), else the
    /// refusal's message.
    func refusal(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let error as FederationError {
            return error.code == .permissionDenied ? error.message : nil
        } catch {
            Issue.record("not a FederationError: \(error)")
            return "?"
        }
    }

    @Test(
        "Project lead, member, site admin and a site certificate: each action allowed or refused",
        .timeLimit(.minutes(2)))
    func rolesPerAction() async throws {
        // Not started: submitted jobs stay queued, which every action can work on.
        try await Federation.withQueuedJobs { federation, store in
            let folder = store.folder
            let lead = try federation.admin(try federation.pki.issue("lead", role: "admin"))
            let member = try federation.admin(try federation.pki.issue("mia", role: "member"))
            let siteAdminA = try federation.admin(try federation.pki.issue("it-a", role: "site-admin", site: "a"))
            let siteAdminC = try federation.admin(try federation.pki.issue("it-c", role: "site-admin", site: "c"))
            let site = try federation.admin(try federation.pki.issue("a", role: "site"))
            // Site a calls in: `sites` has something to show.
            let siteA = try federation.site("a")
            _ = try await siteA.register(site: "a")
            await siteA.close()

            let job = try await lead.submit(pipeline: "sites=a,b", name: "lead's")
            let mine = try await member.submit(pipeline: "sites=a,b", name: "mia's")
            #expect(job == "job-0001" && mine == "job-0002")

            typealias Call = (GRPCAdminConnection) async throws -> Void
            let actions: [(AdminAction, Call)] = [
                (.submit, { _ = try await $0.submit(pipeline: "sites=a", name: "x") }),
                (.status, { _ = try await $0.status(jobID: job) }),
                (.download, { _ = try await $0.download(jobID: job, to: folder + "/download") }),
                (.logs, { _ = try await $0.log(jobID: job) }),
                (.sites, { _ = try await $0.sites() }),
                (.abort, { try await $0.abort(jobID: job) }),
            ]
            // Expected: allowed (true) per caller, in `actions` order. The lead aborts last (job-0001 ends).
            let table: [(String, GRPCAdminConnection, [Bool])] = [
                ("site", site, [false, false, false, false, false, false]),
                ("site admin of c", siteAdminC, [false, false, false, false, true, false]),
                ("site admin of a", siteAdminA, [false, true, false, true, true, false]),
                ("member", member, [true, true, true, true, true, false]),
                ("lead", lead, [true, true, true, true, true, true]),
            ]
            var expectedEntries: [(actor: String, action: AdminAction, allowed: Bool)] = [
                ("lead", .submit, true), ("mia", .submit, true),
            ]
            let names = [
                "site": "a", "site admin of c": "it-c", "site admin of a": "it-a", "member": "mia", "lead": "lead",
            ]
            for (who, connection, allowed) in table {
                for ((action, call), expected) in zip(actions, allowed) {
                    let refused = await refusal { try await call(connection) }
                    #expect((refused == nil) == expected, "\(who) \(action.rawValue): \(refused ?? "allowed")")
                    expectedEntries.append((names[who] ?? "?", action, expected))
                }
            }
            // A member aborts its own job.
            #expect(await refusal { try await member.abort(jobID: mine) } == nil)
            expectedEntries.append(("mia", .abort, true))

            // The refusal says why.
            let why = await refusal { try await siteAdminA.abort(jobID: job) }
            #expect(why?.contains("read-only") == true)
            expectedEntries.append(("it-a", .abort, false))
            let member2 = await refusal { try await member.abort(jobID: "job-0004") }
            #expect(member2?.contains("only the jobs it submitted") == true)
            expectedEntries.append(("mia", .abort, false))

            // What a site admin sees: its site's jobs, its own site.
            let visible = try await siteAdminA.status()
            #expect(visible.map(\.jobID) == ["job-0001", "job-0002", "job-0003", "job-0004"])
            #expect(try await siteAdminC.status().isEmpty)
            #expect(try await siteAdminC.sites().isEmpty)
            let sites = try await siteAdminA.sites()
            #expect(sites.map(\.site) == ["a"])
            #expect(sites.first?.version == TesseraVersion.current)
            expectedEntries += [
                ("it-a", .status, true), ("it-c", .status, true), ("it-c", .sites, true), ("it-a", .sites, true),
            ]

            // The audit log: every call, in order, with who, role and outcome; the job states.
            let entries = try await store.auditEntries()
            let calls = entries.filter { $0.kind == .admin }
            #expect(calls.count == expectedEntries.count)
            for (entry, expected) in zip(calls, expectedEntries) {
                #expect(entry.actor == expected.actor && entry.action == expected.action.rawValue)
                #expect((entry.outcome != .refused) == expected.allowed, "\(entry)")
            }
            let refusedSite = calls.first { $0.actor == "a" }
            #expect(refusedSite?.role == "site" && refusedSite?.outcome == .refused)
            #expect(refusedSite?.detail.contains("not an admin role") == true)
            let download = calls.first { $0.actor == "lead" && $0.action == "download" }
            #expect(download?.outcome == .failed && download?.detail.contains("no files yet") == true)
            let states = entries.filter { $0.kind == .jobState && $0.jobID == job }.map(\.detail)
            #expect(states == ["queued", "aborted: aborted by lead"])
            #expect(entries.map(\.sequence) == Array(1...entries.count))

            // `logs` returns the job's entries.
            let log = try await lead.log(jobID: job)
            #expect(log.map(\.sequence) == entries.filter { $0.jobID == job }.map(\.sequence))
            for connection in [lead, member, siteAdminA, siteAdminC, site] { await connection.close() }
        }
    }
}
