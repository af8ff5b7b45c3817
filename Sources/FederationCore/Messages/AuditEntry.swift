/// One line of the server's append-only audit log: an admin call (allowed, refused or failed), a job's change of
/// state, or one of a job's events. `tessera admin logs <job>` prints a job's entries.
public struct AuditEntry: Sendable, Hashable, Codable {
    /// What the entry records.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// An admin API call; `action` names it.
        case admin
        /// A job moved to `detail` (`queued`, `running`, `finished`, `failed`, `aborted`).
        case jobState = "job-state"
        /// A job's event (round started, result accepted, ...), in `detail`.
        case jobEvent = "job-event"
    }

    /// How an admin call ended (job entries are `ok`).
    public enum Outcome: String, Sendable, Hashable, Codable {
        case ok
        /// The caller's role does not allow it (`AdminPolicy`); `detail` says why.
        case refused
        /// Allowed, but it failed (unknown job, invalid pipeline, ...); `detail` says why.
        case failed
    }

    /// Position in the log, from 1; assigned when the entry is stored (0 before).
    public var sequence: Int
    /// When, ISO 8601 UTC with milliseconds; stamped when the entry is stored (empty before).
    public var time: String
    public var kind: Kind
    /// Who: the caller's certificate CN, or `server` for job entries.
    public var actor: String
    /// The caller's certificate OU (`admin`, `member`, `site-admin`, or a refused `site`/`server`).
    public var role: String
    /// The admin action (`AdminAction` raw value); empty for job entries.
    public var action: String
    /// The job concerned, or empty.
    public var jobID: String
    /// The site an entry is about (a site's result, a site admin's site), or empty.
    public var site: String
    public var outcome: Outcome
    /// The reason of a refusal or failure, the new state, or the event in words.
    public var detail: String

    public init(
        sequence: Int = 0, time: String = "", kind: Kind, actor: String, role: String, action: String = "",
        jobID: String = "", site: String = "", outcome: Outcome = .ok, detail: String = ""
    ) {
        self.sequence = sequence
        self.time = time
        self.kind = kind
        self.actor = actor
        self.role = role
        self.action = action
        self.jobID = jobID
        self.site = site
        self.outcome = outcome
        self.detail = detail
    }
}

/// A site as the server last heard from it (`tessera admin sites`).
public struct SiteStatus: Sendable, Hashable, Codable {
    /// The site's certificate CN.
    public var site: String
    /// When the server last received a call from it, ISO 8601 UTC.
    public var lastContact: String
    /// Seconds from that call to the making of this answer.
    public var secondsSinceContact: Double
    /// The Tessera version the site's client reports (`tessera-version` call metadata), or empty.
    public var version: String
    /// What the site is doing: `<job> round <n>` when it takes part in the running job, else empty (idle).
    public var currentTask: String

    public init(site: String, lastContact: String, secondsSinceContact: Double, version: String, currentTask: String) {
        self.site = site
        self.lastContact = lastContact
        self.secondsSinceContact = secondsSinceContact
        self.version = version
        self.currentTask = currentTask
    }
}

/// The version of this build of Tessera, which a site's client sends with every call; `tessera --version` prints it
/// and `make deb` names the package after it.
public enum TesseraVersion {
    public static let current = "0.1.0"
}
