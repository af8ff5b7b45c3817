import FederationCore
import Foundation

// Conversions between the admin API's value types and the generated messages.

extension JobSummary {
    var wire: Tessera_Federation_V1_JobSummary {
        var w = Tessera_Federation_V1_JobSummary()
        w.jobID = jobID
        w.name = name
        w.kind = kind.rawValue
        w.status = state.rawValue
        w.rounds = Int64(rounds)
        w.completedRounds = Int64(completedRounds)
        w.sites = sites
        w.reason = reason
        w.submittedBy = submittedBy
        w.submittedAt = submittedAt
        w.finishedAt = finishedAt
        w.siteStates = siteStates.map { s in
            var ws = Tessera_Federation_V1_SiteState()
            ws.site = s.site
            ws.secondsSinceSeen = s.secondsSinceSeen ?? -1
            ws.lastRound = Int64(s.lastRound)
            ws.lastMetrics = s.lastMetrics
            return ws
        }
        return w
    }

    /// - Throws: `.invalidConfiguration` for a kind or state this build does not know.
    init(wire w: Tessera_Federation_V1_JobSummary) throws(FederationError) {
        guard let kind = JobKind(rawValue: w.kind), let state = JobState(rawValue: w.status) else {
            throw FederationError(
                .invalidConfiguration,
                "job \(w.jobID) has kind '\(w.kind)' and status '\(w.status)', "
                    + "which this tessera does not know: update it")
        }
        self.init(
            jobID: w.jobID, name: w.name, kind: kind, state: state, rounds: Int(w.rounds),
            completedRounds: Int(w.completedRounds), sites: w.sites, reason: w.reason, submittedBy: w.submittedBy,
            submittedAt: w.submittedAt, finishedAt: w.finishedAt,
            siteStates: w.siteStates.map {
                SiteState(
                    site: $0.site, secondsSinceSeen: $0.secondsSinceSeen < 0 ? nil : $0.secondsSinceSeen,
                    lastRound: Int($0.lastRound), lastMetrics: $0.lastMetrics)
            })
    }
}

extension JobEvent {
    var wire: Tessera_Federation_V1_JobEventMessage {
        var w = Tessera_Federation_V1_JobEventMessage()
        switch self {
        case .roundStarted(let round, let attempt, let sites):
            w.kind = "round_started"
            w.round = Int64(round)
            w.attempt = Int64(attempt)
            w.sites = sites
        case .resultAccepted(let round, let site, let n, let metrics):
            w.kind = "result_accepted"
            w.round = Int64(round)
            w.site = site
            w.sampleCount = Int64(n)
            w.metrics = metrics
        case .resultRejected(let round, let site, let reason):
            w.kind = "result_rejected"
            w.round = Int64(round)
            w.site = site
            w.reason = reason
        case .siteDeclined(let round, let site, let reason):
            w.kind = "site_declined"
            w.round = Int64(round)
            w.site = site
            w.reason = reason
        case .gracePeriodStarted(let round, let results):
            w.kind = "grace_period_started"
            w.round = Int64(round)
            w.results = Int64(results)
        case .roundClosed(let round, let participants, let reason):
            w.kind = "round_closed"
            w.round = Int64(round)
            w.sites = participants
            w.reason = reason
        case .roundRetried(let round, let attempt, let reason):
            w.kind = "round_retried"
            w.round = Int64(round)
            w.attempt = Int64(attempt)
            w.reason = reason
        case .crossSiteStarted(let sites):
            w.kind = "cross_site_started"
            w.sites = sites
        case .localModelReceived(let site):
            w.kind = "local_model_received"
            w.site = site
        case .crossSiteEvaluated(let model, let site, let metrics):
            w.kind = "cross_site_evaluated"
            w.model = model
            w.site = site
            w.metrics = metrics
        case .jobFinished:
            w.kind = "job_finished"
        case .jobFailed(let reason):
            w.kind = "job_failed"
            w.reason = reason
        }
        return w
    }

    /// - Throws: `.invalidConfiguration` for an event kind this build does not know.
    init(wire w: Tessera_Federation_V1_JobEventMessage) throws(FederationError) {
        let r = Int(w.round)
        switch w.kind {
        case "round_started": self = .roundStarted(round: r, attempt: Int(w.attempt), sites: w.sites)
        case "result_accepted":
            self = .resultAccepted(round: r, site: w.site, sampleCount: Int(w.sampleCount), metrics: w.metrics)
        case "result_rejected": self = .resultRejected(round: r, site: w.site, reason: w.reason)
        case "site_declined": self = .siteDeclined(round: r, site: w.site, reason: w.reason)
        case "grace_period_started": self = .gracePeriodStarted(round: r, results: Int(w.results))
        case "round_closed": self = .roundClosed(round: r, participants: w.sites, reason: w.reason)
        case "round_retried": self = .roundRetried(round: r, attempt: Int(w.attempt), reason: w.reason)
        case "cross_site_started": self = .crossSiteStarted(sites: w.sites)
        case "local_model_received": self = .localModelReceived(site: w.site)
        case "cross_site_evaluated": self = .crossSiteEvaluated(model: w.model, site: w.site, metrics: w.metrics)
        case "job_finished": self = .jobFinished
        case "job_failed": self = .jobFailed(reason: w.reason)
        default:
            throw FederationError(.invalidConfiguration, "unknown job event '\(w.kind)': update this tessera")
        }
    }
}

extension SiteStatus {
    var wire: Tessera_Federation_V1_SiteStatus {
        var w = Tessera_Federation_V1_SiteStatus()
        w.site = site
        w.lastContact = lastContact
        w.secondsSinceContact = secondsSinceContact
        w.version = version
        w.currentTask = currentTask
        return w
    }

    init(wire w: Tessera_Federation_V1_SiteStatus) {
        self.init(
            site: w.site, lastContact: w.lastContact, secondsSinceContact: w.secondsSinceContact, version: w.version,
            currentTask: w.currentTask)
    }
}

extension AuditEntry {
    var wire: Tessera_Federation_V1_AuditEntry {
        var w = Tessera_Federation_V1_AuditEntry()
        w.sequence = Int64(sequence)
        w.time = time
        w.kind = kind.rawValue
        w.actor = actor
        w.role = role
        w.action = action
        w.jobID = jobID
        w.site = site
        w.outcome = outcome.rawValue
        w.detail = detail
        return w
    }

    /// - Throws: `.invalidConfiguration` for a kind, outcome or sequence number this build does not know.
    init(wire w: Tessera_Federation_V1_AuditEntry) throws(FederationError) {
        guard let kind = Kind(rawValue: w.kind), let outcome = Outcome(rawValue: w.outcome),
            let sequence = Int(exactly: w.sequence)
        else {
            throw FederationError(
                .invalidConfiguration,
                "audit entry \(w.sequence) has kind '\(w.kind)' and outcome '\(w.outcome)', which this tessera does "
                    + "not know: update it")
        }
        self.init(
            sequence: sequence, time: w.time, kind: kind, actor: w.actor, role: w.role, action: w.action,
            jobID: w.jobID, site: w.site, outcome: outcome, detail: w.detail)
    }
}
