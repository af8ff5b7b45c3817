/// What an administrator's certificate lets its holder do, as carried in its `OU` (organizationalUnitName).
///
/// The raw values are the `OU` spellings `tessera provision` writes. `admin` is the project lead: kits issued before
/// roles existed carry it and keep every right they had.
public enum AdminRole: String, Sendable, Hashable, CaseIterable, Codable {
    /// Runs the study: every action on every job.
    case projectLead = "admin"
    /// A consortium researcher: submits jobs and reads everything; aborts only the jobs they submitted.
    case member
    /// A hospital's IT: read-only, and only on its own site (the jobs that list it, its own connection).
    case siteAdmin = "site-admin"
}

/// One thing the admin API does (`tessera admin <command>`).
public enum AdminAction: String, Sendable, Hashable, CaseIterable, Codable {
    /// Queue a job (`submit`).
    case submit
    /// Read one job's or every job's summary (`status`).
    case status
    /// Stop a queued or running job (`abort`).
    case abort
    /// Fetch a job's files: models, metrics (`download`).
    case download
    /// Read a job's event log, or follow it live (`logs`, `watch`).
    case logs
    /// List the sites the server has heard from (`sites`).
    case sites
}

/// Who calls the admin API: the certificate's CN, its role and, for a site admin, the site it administers.
public struct AdminCaller: Sendable, Hashable {
    /// The certificate's single CN.
    public var name: String
    /// The certificate's single OU, as written (`site` and `server` are not admin roles and are refused).
    public var roleName: String
    /// For a site admin: the site named in its certificate (subjectAltName `urn:tessera:site:<name>`).
    public var site: String?

    public init(name: String, roleName: String, site: String? = nil) {
        self.name = name
        self.roleName = roleName
        self.site = site
    }

    /// The admin role, or nil when the certificate's OU is not one.
    public var role: AdminRole? { AdminRole(rawValue: roleName) }
}

/// The answer to "may this caller do this?".
public enum AdminDecision: Sendable, Hashable {
    case allowed
    /// Refused, with a sentence saying why (sent to the caller as PERMISSION_DENIED).
    case refused(String)
}

/// Who may do what on the admin API: the one place the rule is written (the gRPC admin service applies it to every
/// call, `docs/operations-access.md` tabulates it).
///
/// | action   | project lead (`admin`) | member                 | site admin (`site-admin`)        |
/// |----------|------------------------|------------------------|----------------------------------|
/// | submit   | yes                    | yes                    | no                               |
/// | status   | every job              | every job              | jobs that list its site          |
/// | abort    | every job              | jobs it submitted      | no                               |
/// | download | yes                    | yes                    | no                               |
/// | logs     | every job              | every job              | jobs that list its site          |
/// | sites    | every site             | every site             | its own site                     |
public enum AdminPolicy {
    /// Whether `caller` may do `action`, on `job` when the action concerns one.
    ///
    /// `job` is nil for actions on no job in particular (`submit`, `sites`, `status` of every job), and for a job
    /// the server does not know (the action then fails with "unknown job" if it is allowed at all).
    public static func decide(_ caller: AdminCaller, _ action: AdminAction, job: JobSummary?) -> AdminDecision {
        guard let role = caller.role else {
            return .refused(
                "certificate '\(caller.name)' has role '\(caller.roleName)', not an admin role "
                    + "(\(AdminRole.allCases.map(\.rawValue).joined(separator: ", "))): it may not use the admin API")
        }
        switch (role, action) {
        case (.projectLead, _):
            return .allowed
        case (.member, .abort):
            guard let job, job.submittedBy != caller.name else { return .allowed }
            return .refused(
                "member '\(caller.name)' may abort only the jobs it submitted; \(job.jobID) was submitted by "
                    + "'\(job.submittedBy)' (ask them or the project lead)")
        case (.member, _):
            return .allowed
        case (.siteAdmin, .status), (.siteAdmin, .logs), (.siteAdmin, .sites):
            guard let site = caller.site else {
                return .refused("site admin '\(caller.name)' has no site in its certificate: re-provision it")
            }
            // `sites` concerns no job: the list is cut to the caller's site instead (`mayView(site:by:)`).
            guard action != .sites, let job, !job.sites.contains(site) else { return .allowed }
            return .refused(
                "site admin '\(caller.name)' of site '\(site)' may not read \(job.jobID): the job does not list "
                    + "that site")
        case (.siteAdmin, _):
            return .refused(
                "site admin '\(caller.name)' is read-only: it may not \(action.rawValue) (ask the project lead)")
        }
    }

    /// Whether `caller` sees `job` in a list of every job (`status` without a job id): a site admin sees the jobs
    /// that list its site; other admin roles see all.
    public static func mayView(_ job: JobSummary, by caller: AdminCaller) -> Bool {
        decide(caller, .status, job: job) == .allowed
    }

    /// Whether `caller` sees `site` in the list of sites: a site admin sees only its own.
    public static func mayView(site: String, by caller: AdminCaller) -> Bool {
        caller.role != .siteAdmin || caller.site == site
    }

    /// Whether a site admin may see a job-log entry about `site` (nil: about the whole job): entries about another
    /// site (its results, its metrics) stay hidden from it.
    public static func mayView(entryAbout site: String?, by caller: AdminCaller) -> Bool {
        caller.role != .siteAdmin || site == nil || site == caller.site
    }
}

extension JobEvent {
    /// The one site the event is about (its result, its decline, its model), or nil for the whole job.
    public var site: String? {
        switch self {
        case .resultAccepted(_, let site, _, _), .resultRejected(_, let site, _), .siteDeclined(_, let site, _),
            .localModelReceived(let site), .crossSiteEvaluated(_, let site, _):
            site
        default: nil
        }
    }
}

extension FederationError.Code {
    /// The caller's certificate does not allow what it asked (PERMISSION_DENIED on the wire, with the reason).
    public static let permissionDenied = FederationError.Code("permission-denied")
}
