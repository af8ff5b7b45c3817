import DifferentialPrivacy
import FederatedAnalytics
import FederationClient
import FederationCore
import FederationServer
import Foundation

/// A site's side of statistics jobs (`tessera client`): the query's phases answered from the site's own DICOM
/// folder under the site's policy and privacy ledger (both the site's, never the job's). One session per query.
public actor StatisticsSiteHandler: PayloadTaskHandler {
    public let site: String
    public let dataFolder: String
    public let policy: SitePolicy
    /// The site's own query limits.
    public let limits: QueryLimits
    private let ledger: PrivacyLedger
    private let log: @Sendable (String) -> Void
    /// Signing this site's secure-sum keys and checking the others'; nil: unsigned keys (in-process runs).
    private let secureSum: SecureSumCredentials?
    private var cohort: SiteCohort?
    private var sessions: [String: StatisticsSiteSession] = [:]
    /// Sessions by last use, oldest first: only the `maximumSessions` most recent are kept (a server asks again
    /// within a query; a finished query's session is not needed again).
    private var recent: [String] = []
    static var maximumSessions: Int { 16 }

    /// - Parameters:
    ///   - ledgerPath: the site's privacy ledger (SQLite), kept across queries and restarts.
    ///   - limits: the site's own query limits, checked before its ledger is charged.
    public init(
        site: String, dataFolder: String, policy: SitePolicy, ledgerPath: String,
        limits: QueryLimits = .default,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(FederationError) {
        self.site = site
        self.dataFolder = dataFolder
        self.policy = policy
        self.limits = limits
        do { ledger = try PrivacyLedger(path: ledgerPath) } catch {
            throw FederationError(
                .invalidConfiguration, "cannot open the privacy ledger \(ledgerPath): \(error.message)")
        }
        self.log = log
        self.secureSum = nil
    }

    /// The same, with a ledger the site shares with its model updates (`SitePrivacyGatekeeper`).
    public init(
        site: String, dataFolder: String, policy: SitePolicy, ledger: PrivacyLedger,
        limits: QueryLimits = .default, secureSum: SecureSumCredentials? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.site = site
        self.dataFolder = dataFolder
        self.policy = policy
        self.limits = limits
        self.ledger = ledger
        self.secureSum = secureSum
        self.log = log
    }

    public func respond(to task: TaskAssignment) async throws(FederationError) -> (
        payload: [UInt8], metrics: [String: Double]
    ) {
        do throws(AnalyticsError) {
            let request = try StatisticsRequest(decoding: Data(task.payload))
            if sessions[request.session] == nil {
                guard request.phase == .plan else {
                    throw AnalyticsError(
                        .unexpectedMessage,
                        "phase \(request.phase.rawValue) of query session "
                            + "\(request.session), which this site does not know (it restarted?)")
                }
                if cohort == nil {
                    log("reading the cohort in \(dataFolder)")
                    cohort = try SiteCohort(folder: dataFolder)
                }
                guard let cohort else { throw AnalyticsError(.io, "no cohort") }
                sessions[request.session] = StatisticsSiteSession(
                    site: StatisticsSite(
                        name: site, cohort: cohort, policy: policy, ledger: ledger,
                        limits: limits), credentials: secureSum)
            }
            guard var session = sessions[request.session] else { throw AnalyticsError(.io, "no session") }
            let before = try ledger.spent(site: site, policy: policy)
            let response = try session.respond(to: request)
            // What this answer cost the site's budget travels with it (public parameters, not data): the site's
            // egress log records it beside the answer's hash.
            var metrics: [String: Double] = [:]
            let after = try ledger.spent(site: site, policy: policy)
            if after.epsilon > before.epsilon {
                metrics["dp_epsilon_charged"] = after.epsilon - before.epsilon
                metrics["dp_delta"] = after.delta - before.delta
            }
            sessions[request.session] = session
            recent.removeAll { $0 == request.session }
            recent.append(request.session)
            while recent.count > Self.maximumSessions { sessions[recent.removeFirst()] = nil }
            log("statistics \(request.phase.rawValue) of \(request.session) answered")
            return ([UInt8](try response.encoded()), metrics)
        } catch {
            throw FederationError(
                .invalidConfiguration, "statistics task of \(task.jobID) failed at \(site): \(error.message)")
        }
    }
}
