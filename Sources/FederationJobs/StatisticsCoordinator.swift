import FederatedAnalytics
import FederationClient
import FederationCore
import FederationServer
import Foundation

/// A cohort-statistics query run by the server as a job: each phase of the query (`StatisticsAggregator`: plan,
/// first pass, recovery, second pass, reveal) is one round of statistics tasks; each site answers with a payload
/// (its `StatisticsResponse`), masked so the server learns only sums where the sites' policies say so.
///
/// A phase closes when every asked site answered or at the deadline (the missing sites are declared to the
/// aggregator: dropouts after masking are recovered from the survivors). The aggregator's state is saved after every
/// phase (`statistics.json` in the store's job folder), so a restarted server resumes the query; the sites keep
/// their sessions and answer a repeated request with the same response.
public actor StatisticsCoordinator<C: Clock>: JobRunner, RoundHost where C.Duration == Duration {
    public let jobID: String
    public nonisolated let participants: [String]
    private let phaseTimeout: Duration
    private let checkpointPath: String?
    private var aggregator: StatisticsAggregator
    private var round = 0
    package var driver: RoundDriver<C>
    private var inFlight: [String: ResultHeader] = [:]
    private var result: StatisticsResult?

    /// - Parameters:
    ///   - checkpointPath: where the aggregator's state is saved after every phase (and resumed from); nil: nowhere.
    ///   - limits: the server's query limits.
    public init(
        jobID: String, query: StatisticsQuery, sites: [String], minimumSites: Int, phaseTimeout: Duration,
        clock: C, checkpointPath: String?, limits: QueryLimits = .default
    ) throws(FederationError) {
        self.jobID = jobID
        self.participants = sites
        self.phaseTimeout = phaseTimeout
        self.checkpointPath = checkpointPath
        self.driver = RoundDriver(jobID: jobID, participants: sites, clock: clock)
        if let twice = Dictionary(grouping: sites, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw FederationError(.invalidConfiguration, "federation.sites lists '\(twice)' more than once")
        }
        do {
            if let checkpointPath, let saved = FileManager.default.contents(atPath: checkpointPath) {
                let state = try JSONDecoder().decode(Checkpoint.self, from: saved)
                aggregator = try StatisticsAggregator(restoring: state.aggregator)
                round = state.round
            } else {
                aggregator = try StatisticsAggregator(
                    query: query, sites: sites,
                    options: .init(session: jobID, minimumSites: minimumSites),
                    limits: limits)
            }
        } catch let error as AnalyticsError {
            throw FederationError(.invalidConfiguration, "the statistics query cannot start: \(error.message)")
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "the saved state of statistics job \(jobID) is damaged; remove "
                    + "\(checkpointPath ?? "it") to start the query again", cause: "\(error)")
        }
    }

    struct Checkpoint: Codable {
        var round: Int
        var aggregator: Data
    }

    public func observe() -> AsyncStream<JobEvent> { driver.observe() }

    public var isOver: Bool { driver.isOver }

    public func progress() -> JobProgress {
        let seen = driver.secondsSinceSeen()
        let open = driver.tasks.isEmpty ? 0 : 1
        return JobProgress(
            completedRounds: driver.round - open, currentRound: driver.isOver ? 0 : driver.round,
            siteStates: participants.map { site in
                SiteState(site: site, secondsSinceSeen: seen[site], lastRound: 0, lastMetrics: [:])
            })
    }

    public func abort(reason: String) { driver.abort(reason: reason) }

    /// Runs the query's phases, one round each: a phase closes when every asked site answered or at the deadline
    /// (the missing sites are declared to the aggregator).
    public func execute() async throws(FederationError) {
        try await runJob { () async throws(FederationError) in
            do {
                // The state is saved between phases: a resumed query asks the next phase again (the sites answer a
                // repeated request from their session).
                var requests = try aggregator.nextRequests()
                while !requests.isEmpty {
                    round += 1
                    try await runPhase(requests)
                    try save()
                    requests = try aggregator.nextRequests()
                }
                result = try aggregator.result()
            } catch let error as FederationError {
                throw error
            } catch {
                let message = (error as? AnalyticsError)?.message ?? "\(error)"
                throw FederationError(.jobFailed, "the statistics query failed: \(message)", cause: "\(error)")
            }
        }
    }

    private func runPhase(_ requests: [StatisticsRequest]) async throws {
        inFlight = [:]
        var tasks: [TaskAssignment] = []
        for request in requests {
            let payload = [UInt8](try request.encoded())
            tasks.append(
                TaskAssignment(
                    jobID: jobID, round: round, kind: .statistics, site: request.site,
                    config: ["phase": .string(request.phase.rawValue)], payload: payload))
        }
        let outcome = await runRoundUntilAnswered(round, tasks: tasks, timeout: phaseTimeout)
        let answered = driver.answered
        let asked = Set(tasks.map(\.site))
        inFlight = [:]
        switch outcome {
        case .closed(let closure):
            for site in asked.subtracting(answered).sorted() {
                try aggregator.siteDidNotAnswer(site, reason: "no answer within \(phaseTimeout)")
            }
            driver.emit(.roundClosed(round: round, participants: answered.sorted(), reason: closure.rawValue))
        case .retry: break
        case .failed(let reason), .aborted(let reason), .declined(let reason): throw FederationError(.jobFailed, reason)
        }
    }

    private func save() throws(FederationError) {
        guard let checkpointPath else { return }
        let data: Data
        do {
            data = try JSONEncoder().encode(Checkpoint(round: round, aggregator: try aggregator.checkpoint()))
            try FileManager.default.createDirectory(
                atPath: (checkpointPath as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true)
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot save the statistics job's state to \(checkpointPath)",
                cause: "\(error)")
        }
        try DurableFile.write(data, to: checkpointPath)
    }

    /// `result.json` and `report.html` (charts per site beside the global figures, the privacy cost).
    public func writeFiles(to folder: String) async throws(FederationError) -> [JobFile] {
        guard let result else { throw FederationError(.noResults, "statistics job \(jobID) has no result yet") }
        do {
            let (json, html) = try StatisticsReport.write(result, to: folder)
            return [
                JobFile(name: URL(fileURLWithPath: json).lastPathComponent, path: json),
                JobFile(name: URL(fileURLWithPath: html).lastPathComponent, path: html),
            ]
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot write the statistics report to \(folder): \(error.message)")
        }
    }

    // MARK: - Sites

    public func register(site: String) throws(FederationError) -> String {
        try driver.requireParticipant(site)
        return jobID
    }

    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await nextPendingTask(site: site)
    }

    public func model(for task: TaskAssignment, maxScalars: Int) throws(FederationError) -> [ParameterChunk] {
        throw FederationError(.invalidConfiguration, "statistics job \(jobID) has no model to download")
    }

    public func beginResult(_ header: ResultHeader) throws(FederationError) {
        guard header.jobID == jobID, header.round == driver.round, driver.isAsked(header.site),
            !driver.answered.contains(header.site)
        else {
            let error = FederationError(
                .staleRound,
                "answer from \(header.site) for phase \(header.round) of job "
                    + "\(header.jobID); current: phase \(driver.round) of \(jobID). Discarded")
            driver.emit(.resultRejected(round: header.round, site: header.site, reason: error.message))
            throw error
        }
        inFlight[header.site] = header
    }

    public func resultChunk(site: String, _ chunk: ParameterChunk) throws(FederationError) {
        inFlight[site] = nil
        let error = FederationError(.shapeMismatch, "statistics answers carry no model values; \(site)'s is discarded")
        driver.emit(.resultRejected(round: driver.round, site: site, reason: error.message))
        throw error
    }

    public func endResult(site: String) throws(FederationError) {
        guard let header = inFlight.removeValue(forKey: site) else {
            throw FederationError(.staleRound, "no answer open for \(site)")
        }
        do {
            try aggregator.receive(Data(header.payload), from: site)
        } catch {
            let rejected = FederationError(.invalidConfiguration, "answer from \(site) rejected: \(error.message)")
            driver.emit(.resultRejected(round: driver.round, site: site, reason: rejected.message))
            throw rejected
        }
        driver.emit(.resultAccepted(round: driver.round, site: site, sampleCount: header.sampleCount, metrics: [:]))
        driver.answer(site)
    }

    public func abandonResult(site: String, reason: String) {
        inFlight[site] = nil
        driver.emit(.resultRejected(round: driver.round, site: site, reason: reason))
    }

    public func heartbeat(site: String) { driver.seen(site) }
}
