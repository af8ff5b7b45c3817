import FederationCore
import Testing

@Suite("Admin policy: who may do what (the table of docs/operations-access.md)")
struct AdminPolicyTests {
    static let job = JobSummary(
        jobID: "job-0001", name: "j", kind: .training, state: .running, rounds: 3, completedRounds: 1,
        sites: ["a", "b"], submittedBy: "lead", submittedAt: "2026-12-07T06:00:00Z")

    static let lead = AdminCaller(name: "lead", roleName: "admin")
    static let member = AdminCaller(name: "mia", roleName: "member")
    static let siteAdminA = AdminCaller(name: "it-a", roleName: "site-admin", site: "a")
    static let siteAdminC = AdminCaller(name: "it-c", roleName: "site-admin", site: "c")
    static let noSite = AdminCaller(name: "it-?", roleName: "site-admin")
    static let site = AdminCaller(name: "a", roleName: "site")

    /// Allowed per action, on `job` (submitted by the lead, sites a and b), in `AdminAction.allCases` order:
    /// submit, status, abort, download, logs, sites.
    @Test(
        "Each role and action on a job of sites a, b submitted by the lead",
        arguments: [
            (lead, [true, true, true, true, true, true]),
            (member, [true, true, false, true, true, true]),
            (siteAdminA, [false, true, false, false, true, true]),
            (siteAdminC, [false, false, false, false, false, true]),
            (noSite, [false, false, false, false, false, false]),
            (site, [false, false, false, false, false, false]),
        ])
    func table(caller: AdminCaller, allowed: [Bool]) {
        #expect(AdminAction.allCases == [.submit, .status, .abort, .download, .logs, .sites])
        for (action, expected) in zip(AdminAction.allCases, allowed) {
            let decision = AdminPolicy.decide(caller, action, job: Self.job)
            #expect((decision == .allowed) == expected, "\(caller.name) \(action): \(decision)")
        }
    }

    @Test("A member aborts its own jobs; actions on no job in particular are decided by role alone")
    func ownershipAndNoJob() {
        var own = Self.job
        own.submittedBy = "mia"
        #expect(AdminPolicy.decide(Self.member, .abort, job: own) == .allowed)
        #expect(AdminPolicy.decide(Self.siteAdminC, .status, job: nil) == .allowed)
        #expect(AdminPolicy.decide(Self.siteAdminC, .submit, job: nil) != .allowed)
        guard case .refused(let reason) = AdminPolicy.decide(Self.site, .status, job: nil) else {
            Issue.record("a site certificate must be refused")
            return
        }
        #expect(reason.contains("has role 'site'"))
    }

    @Test("What a site admin sees: jobs and sites of its own site, log entries about the job or its site")
    func visibility() {
        #expect(AdminPolicy.mayView(Self.job, by: Self.siteAdminA))
        #expect(!AdminPolicy.mayView(Self.job, by: Self.siteAdminC))
        #expect(
            AdminPolicy.mayView(site: "a", by: Self.siteAdminA) && !AdminPolicy.mayView(site: "b", by: Self.siteAdminA))
        #expect(AdminPolicy.mayView(site: "b", by: Self.member))
        #expect(AdminPolicy.mayView(entryAbout: nil, by: Self.siteAdminA))
        #expect(AdminPolicy.mayView(entryAbout: "a", by: Self.siteAdminA))
        #expect(!AdminPolicy.mayView(entryAbout: "b", by: Self.siteAdminA))
        #expect(AdminPolicy.mayView(entryAbout: "b", by: Self.lead))
        #expect(JobEvent.resultAccepted(round: 1, site: "b", sampleCount: 1, metrics: [:]).site == "b")
        #expect(JobEvent.roundStarted(round: 1, attempt: 0, sites: ["a"]).site == nil)
    }
}
