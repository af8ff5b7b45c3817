import Foundation

/// The server's side of a statistics query, as a state machine over the exchange with the sites: it hands out the
/// requests of each phase, takes the sites' responses (or their absence), sums masked uploads and derives the
/// global figures. It never sees a site's unmasked vector when secure sums are on, only the per-site figures a
/// site's policy reveals. Transport-agnostic: `CohortStatistics` drives it in-process, the federation runtime over
/// the network.
///
/// ```
/// var aggregator = try StatisticsAggregator(query: query, sites: names, options: .init(session: jobID))
/// var requests = try aggregator.nextRequests()          // plan
/// while !requests.isEmpty {
///     for request in requests { … send; then aggregator.receive(response) or aggregator.siteDidNotAnswer(…) }
///     requests = try aggregator.nextRequests()          // first-pass, [recovery], [second-pass], [reveal]
/// }
/// let result = try aggregator.result()
/// ```
///
/// Dropouts: a site that does not answer the plan is left out (listed in `refused` with the reason); one that does
/// not answer the first pass has been masked against, so the survivors return their masks with it (`recovery`);
/// a survivor missing in recovery aborts the query (nothing is released). One missing in the second pass leaves
/// its first-pass figures in, and variance and stddev are withheld (named in each feature's `suppressed`). Fewer
/// sites than the query's `minimum_sites` after the plan or the first pass is a `.tooFewSites` failure. A
/// failure is final: every later call throws it again.
///
/// The whole state is `Codable`: the server checkpoints it after every phase (`checkpoint()`) and, restarted,
/// resumes with `init(restoring:)` (sites keep their sessions; a site that lost its own is a dropout).
public struct StatisticsAggregator: Sendable, Codable {
    public struct Options: Sendable, Codable {
        /// The mechanism reported in the result when the sites run an override (exact tests); nil: the query's.
        public var mechanism: NoiseMechanism?
        /// Mask uploads (secure sum). Off, sites whose policy does not reveal per-site figures refuse to answer.
        public var secureSum: Bool
        /// Unique id of this run: it salts the pairwise masks and ties every message to the run.
        public var session: String
        /// Raises the query's `minimum_sites` (e.g. the job's minimum number of clients); never lowers it.
        public var minimumSites: Int

        public init(
            mechanism: NoiseMechanism? = nil, secureSum: Bool = true, session: String = UUID().uuidString,
            minimumSites: Int = 1
        ) {
            self.mechanism = mechanism
            self.secureSum = secureSum
            self.session = session
            self.minimumSites = minimumSites
        }
    }

    public let query: StatisticsQuery
    /// The sites asked, in the order the result lists them.
    public let sites: [String]
    public let options: Options
    /// The phase whose answers are awaited; nil before the first `nextRequests()` and once finished.
    public private(set) var phase: StatisticsPhase?
    public private(set) var isFinished = false

    private var started = false
    private var failure: AnalyticsError?
    private var awaiting: Set<String> = []
    private var acceptances: [String: StatisticsResponse.Acceptance] = [:]
    private var refused: [String: String] = [:]
    private var refusalErrors: [String: AnalyticsError] = [:]
    private var categoryLists: [String: [String]] = [:]
    /// First pass: participants (accepted sites, in site order), their layout, uploads, dropouts, recovery.
    private var participants: [String] = []
    private var template: [FeaturePrimitives] = []
    private var firstUploads: [String: StatisticsResponse.Upload] = [:]
    private var dropped: [String] = []
    private var recovery: [String: [String: [UInt64]]] = [:]
    private var missingRecovery: [String: String] = [:]
    /// Global primitives once the first pass is summed; the centres of the second pass.
    private var summed: [FeaturePrimitives] = []
    private var centres: [String: Double] = [:]
    private var secondParticipants: [String] = []
    private var secondTemplate: [FeaturePrimitives] = []
    private var secondUploads: [String: StatisticsResponse.Upload] = [:]
    private var secondDropped: [String] = []
    private var perSite: [String: [FeatureResult]] = [:]
    private var outcome: StatisticsResult?

    /// - Parameter limits: the server's query limits (the sites check again with theirs).
    /// - Throws: `.invalidQuery` for an invalid query, no site, duplicate or empty site names, an empty session.
    public init(
        query: StatisticsQuery, sites: [String], options: Options = Options(),
        limits: QueryLimits = .default
    ) throws(AnalyticsError) {
        try query.validate(limits: limits)
        guard !sites.isEmpty else { throw AnalyticsError(.invalidQuery, "a statistics query needs at least one site") }
        guard !sites.contains(where: \.isEmpty), Set(sites).count == sites.count else {
            throw AnalyticsError(
                .invalidQuery,
                "site names must be non-empty and distinct, got "
                    + sites.map { "'\($0)'" }.joined(separator: ", "))
        }
        guard !options.session.isEmpty else {
            throw AnalyticsError(
                .invalidQuery, "the statistics session id must not be empty (use the job id or a UUID)")
        }
        guard options.minimumSites >= 1 else {
            throw AnalyticsError(.invalidQuery, "minimumSites must be at least 1, is \(options.minimumSites)")
        }
        self.query = query
        self.sites = sites
        self.options = options
    }

    /// The state as JSON bytes, to persist after each phase.
    public func checkpoint() throws(AnalyticsError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf",
            nan: "nan")
        do { return try encoder.encode(self) } catch {
            throw AnalyticsError(.io, "cannot encode the statistics aggregator's state", cause: "\(error)")
        }
    }

    /// Resumes from a `checkpoint()`.
    /// - Throws: `.malformedMessage` when the bytes are not a checkpoint of this version.
    public init(restoring data: Data) throws(AnalyticsError) {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf",
            nan: "nan")
        do { self = try decoder.decode(StatisticsAggregator.self, from: data) } catch {
            throw AnalyticsError(
                .malformedMessage,
                "cannot restore the statistics aggregator from \(data.count) bytes: "
                    + "\(describe(error)); the checkpoint is corrupt or from another Tessera version",
                cause: "\(error)")
        }
    }

    /// Sites whose answer to the current phase is still awaited, in site order.
    public var awaitedSites: [String] { sites.filter(awaiting.contains) }

    private var minimumSites: Int { max(query.minimumSites, options.minimumSites) }

    // MARK: - Responses

    /// Decodes and takes one site's response (JSON bytes from the runtime).
    public mutating func receive(_ data: Data, from sender: String? = nil) throws(AnalyticsError) {
        try receive(try StatisticsResponse(decoding: data), from: sender)
    }

    /// Takes one site's response to the current phase. A rejected response changes nothing: the site stays awaited
    /// (it may answer again, or be declared with `siteDidNotAnswer`).
    /// - Parameter sender: the authenticated sender (certificate name), checked against `response.site` if given.
    /// - Throws: `.unexpectedMessage` for another session, an unknown site, a site not awaited (duplicate, dropped,
    ///   not asked), another phase, a vector of the wrong length or kind; `.malformedMessage` for non-finite values
    ///   or a bad key.
    public mutating func receive(_ response: StatisticsResponse, from sender: String? = nil) throws(AnalyticsError) {
        if let failure { throw failure }
        guard let phase else {
            throw AnalyticsError(
                .unexpectedMessage,
                isFinished
                    ? "the query '\(query.name)' is finished; response from \(response.site) ignored"
                    : "no phase is open yet: call nextRequests() and send the plan requests first")
        }
        guard response.version == StatisticsRequest.protocolVersion else {
            throw AnalyticsError(
                .malformedMessage,
                "response of protocol version \(response.version) from "
                    + "\(response.site), expected \(StatisticsRequest.protocolVersion)")
        }
        guard response.session == options.session else {
            throw AnalyticsError(
                .unexpectedMessage,
                "response for session '\(response.session)' from \(response.site), "
                    + "this query runs as session '\(options.session)': a stale or misrouted message")
        }
        if let sender, sender != response.site {
            throw AnalyticsError(.unexpectedMessage, "site \(sender) sent a response in the name of '\(response.site)'")
        }
        let site = response.site
        guard sites.contains(site) else {
            throw AnalyticsError(
                .unexpectedMessage,
                "response from unknown site '\(site)'; this query runs at "
                    + sites.joined(separator: ", "))
        }
        guard response.phase == phase else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site) answered phase \(response.phase.rawValue) while the "
                    + "query is in phase \(phase.rawValue)")
        }
        guard awaiting.contains(site) else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site) is not awaited in phase \(phase.rawValue): it already "
                    + "answered, was declared as not answering, or was not asked")
        }
        switch response.payload {
        case .plan(.accepted(let acceptance)):
            if options.secureSum && acceptance.publicKey.count != 32 {
                throw AnalyticsError(
                    .malformedMessage,
                    "site \(site)'s public key has \(acceptance.publicKey.count) "
                        + "bytes; an X25519 key has 32")
            }
            acceptances[site] = acceptance
        case .plan(.refused(let refusal)):
            refused[site] = refusal.message
            refusalErrors[site] = refusal.error
        case .firstPass(let upload):
            try check(upload, from: site, length: template.flattened(secondPass: false).count)
            firstUploads[site] = upload
        case .secondPass(let upload):
            try check(upload, from: site, length: secondTemplate.flattened(secondPass: true).count)
            secondUploads[site] = upload
        case .recovery(let answer):
            let length = template.flattened(secondPass: false).count
            guard Set(answer.masks.keys) == Set(dropped), answer.masks.values.allSatisfy({ $0.count == length }) else {
                throw AnalyticsError(
                    .unexpectedMessage,
                    "site \(site)'s recovery answer must hold one mask of "
                        + "\(length) words for each dropped site (\(dropped.joined(separator: ", ")))")
            }
            for (d, mask) in answer.masks { recovery[d, default: [:]][site] = mask }
        case .reveal(let reveal):
            guard reveal.figures.map(\.feature) == query.features.map(\.feature) else {
                throw AnalyticsError(
                    .unexpectedMessage,
                    "site \(site) revealed figures for features "
                        + "[\(reveal.figures.map(\.feature).joined(separator: ", "))], the query asks for "
                        + "[\(query.features.map(\.feature).joined(separator: ", "))]")
            }
            perSite[site] = reveal.figures
        }
        awaiting.remove(site)
    }

    /// Declares that `site` will not answer the current phase (timeout, disconnect, error at the site).
    /// - Throws: `.unexpectedMessage` when the site is unknown or not awaited.
    public mutating func siteDidNotAnswer(_ site: String, reason: String) throws(AnalyticsError) {
        if let failure { throw failure }
        guard let phase, sites.contains(site), awaiting.contains(site) else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site '\(site)' is not awaited"
                    + (phase.map { " in phase \($0.rawValue)" } ?? ": no phase is open"))
        }
        switch phase {
        case .plan: refused[site] = "did not answer the plan request (\(reason)); left out before masking"
        case .firstPass: dropped.append(site)
        case .recovery: missingRecovery[site] = reason
        case .secondPass: secondDropped.append(site)
        case .reveal: break
        }
        awaiting.remove(site)
    }

    // MARK: - Phases

    /// Closes the current phase and returns the requests of the next one (one per site asked); empty when the
    /// query is finished (then call `result()`).
    /// - Throws: `.unexpectedMessage` while sites are still awaited; `.tooFewSites`, `.policyViolation` (every site
    ///   refused) or `.secureAggregation` (recovery incomplete) when the query fails; the single site's own refusal
    ///   when a one-site query is refused.
    public mutating func nextRequests() throws(AnalyticsError) -> [StatisticsRequest] {
        if let failure { throw failure }
        guard awaiting.isEmpty else {
            throw AnalyticsError(
                .unexpectedMessage,
                "phase \(phase?.rawValue ?? "?") still awaits "
                    + awaitedSites.joined(separator: ", ")
                    + ": deliver their responses or declare them with siteDidNotAnswer(_:reason:)")
        }
        do {
            return try advance()
        } catch {
            failure = error
            throw error
        }
    }

    /// The global (and revealed per-site) figures.
    /// - Throws: the failure that ended the query, or `.unexpectedMessage` when it is not finished.
    public func result() throws(AnalyticsError) -> StatisticsResult {
        if let failure { throw failure }
        guard let outcome else {
            throw AnalyticsError(
                .unexpectedMessage,
                "the query '\(query.name)' is not finished (phase "
                    + "\(phase?.rawValue ?? "not started")): call nextRequests() until it returns no request")
        }
        return outcome
    }

    private mutating func advance() throws(AnalyticsError) -> [StatisticsRequest] {
        guard let phase else {
            if started { return [] }
            started = true
            return open(.plan, sites, .plan(.init(query: query)))
        }
        switch phase {
        case .plan: return try closePlan()
        case .firstPass:
            dropped.sort()
            let survivors = participants.filter { firstUploads[$0] != nil }
            try requireSites(survivors, after: "the first pass")
            if options.secureSum && !dropped.isEmpty {
                return open(.recovery, survivors, .recovery(.init(dropped: dropped)))
            }
            return try closeFirstPass()
        case .recovery: return try closeFirstPass()
        case .secondPass: return try closeSecondPass()
        case .reveal: return try finish()
        }
    }

    private mutating func open(
        _ phase: StatisticsPhase, _ asked: [String],
        _ payload: StatisticsRequest.Payload
    ) -> [StatisticsRequest] {
        self.phase = phase
        awaiting = Set(asked)
        return asked.map { StatisticsRequest(session: options.session, site: $0, payload: payload) }
    }

    private mutating func closePlan() throws(AnalyticsError) -> [StatisticsRequest] {
        participants = sites.filter { acceptances[$0] != nil }
        if participants.isEmpty {
            if sites.count == 1, let error = refusalErrors[sites[0]] { throw error }
            throw AnalyticsError(
                .policyViolation,
                "every site refused the query: "
                    + refused.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; "))
        }
        try requireSites(participants, after: "the plan")
        // Category lists: only sites whose policy reveals category names contribute names; the others count
        // everything under "other". A name sites would refuse (untrimmed, empty, "other") is left out: it would
        // only stop the query at every site.
        for site in participants {
            for (key, names) in acceptances[site]?.categoryNames ?? [:] {
                let usable = names.filter { CategoryName.isNormalised($0) && $0 != CategoryName.rest }
                categoryLists[key] = Array(Set(categoryLists[key] ?? []).union(usable)).sorted()
            }
        }
        template = try LocalStatistics(query: query, cohort: .empty).primitives(categoryLists: categoryLists)
        var keys: [String: Data] = [:]
        var endorsements: [String: KeyEndorsementData] = [:]
        if options.secureSum {
            for site in participants {
                keys[site] = acceptances[site]?.publicKey
                endorsements[site] = acceptances[site]?.endorsement
            }
        }
        return open(
            .firstPass, participants,
            .firstPass(
                .init(
                    categoryLists: categoryLists, secureSum: options.secureSum,
                    publicKeys: keys, endorsements: endorsements.isEmpty ? nil : endorsements)))
    }

    private mutating func closeFirstPass() throws(AnalyticsError) -> [StatisticsRequest] {
        let survivors = participants.filter { firstUploads[$0] != nil }
        let total = try sum(
            firstUploads, expected: participants, recovery: recovery,
            length: template.flattened(secondPass: false).count)
        summed = template.unflattened(total, secondPass: false)
        for (fq, p) in zip(query.features, summed) where !Set(fq.statistics).isDisjoint(with: [.variance, .stddev]) {
            if let s = p.sum, p.counts[0] > 0, let b = fq.bounds {
                centres[p.feature] = min(max((b[0] + b[1]) / 2 + s / p.counts[0], b[0]), b[1])
            }
        }
        guard !centres.isEmpty else { return try openReveal() }
        secondParticipants = survivors
        secondTemplate = try LocalStatistics(query: query, cohort: .empty).primitives(
            centres: centres,
            categoryLists: categoryLists)
        return open(.secondPass, survivors, .secondPass(.init(centres: centres, participants: survivors)))
    }

    private mutating func closeSecondPass() throws(AnalyticsError) -> [StatisticsRequest] {
        // A site missing here is in the first-pass sums but not in the squared deviations: the variance would mix
        // two cohorts, so it is withheld (in `finish`) rather than recovered.
        if secondDropped.isEmpty {
            let total = try sum(
                secondUploads, expected: secondParticipants, recovery: [:],
                length: secondTemplate.flattened(secondPass: true).count)
            let second = secondTemplate.unflattened(total, secondPass: true)
            for i in summed.indices { summed[i].squaredDeviations = second[i].squaredDeviations }
        }
        return try openReveal()
    }

    private mutating func openReveal() throws(AnalyticsError) -> [StatisticsRequest] {
        let revealing = participants.filter {
            firstUploads[$0] != nil && !secondDropped.contains($0) && acceptances[$0]?.privacy.revealed == true
        }
        guard !revealing.isEmpty else { return try finish() }
        return open(.reveal, revealing, .reveal(.init()))
    }

    private mutating func finish() throws(AnalyticsError) -> [StatisticsRequest] {
        // The largest minimum count in force at any participant (never below the query's).
        let k = participants.compactMap { acceptances[$0]?.privacy.minimumCount }.reduce(
            query.privacy.minimumCount, max)
        var global = try FeatureResult.results(query: query, primitives: summed, minimumCount: k)
        if !secondDropped.isEmpty {
            let names = secondDropped.sorted().joined(separator: ", ")
            for i in global.indices where centres[summed[i].feature] != nil {
                global[i].variance = nil
                global[i].stddev = nil
                global[i].suppressed.append("variance and stddev: \(names) dropped out of the second pass")
            }
        }
        outcome = StatisticsResult(
            query: query.name, mechanism: options.mechanism ?? query.privacy.mechanism,
            sites: participants.filter { !dropped.contains($0) }, refused: refused, dropped: dropped,
            secureSum: options.secureSum, global: global, perSite: perSite,
            privacy: acceptances.mapValues(\.privacy))
        phase = nil
        isFinished = true
        return []
    }

    // MARK: - Sums

    private func requireSites(_ remaining: [String], after step: String) throws(AnalyticsError) {
        guard remaining.count >= minimumSites, !remaining.isEmpty else {
            var why = refused.map { "\($0.key): \($0.value)" }.sorted()
            if !dropped.isEmpty { why.append("dropped out: " + dropped.joined(separator: ", ")) }
            throw AnalyticsError(
                .tooFewSites,
                "after \(step) \(remaining.count) site(s) remain "
                    + "(\(remaining.joined(separator: ", "))), fewer than the \(minimumSites) the query needs "
                    + "(minimum_sites); nothing is released"
                    + (why.isEmpty ? "" : " [" + why.joined(separator: "; ") + "]"))
        }
    }

    private func check(_ upload: StatisticsResponse.Upload, from site: String, length: Int) throws(AnalyticsError) {
        guard upload.count == length else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site) uploaded \(upload.count) values, the query's layout has "
                    + "\(length): the site ran another query or category list")
        }
        switch (upload, options.secureSum) {
        case (.masked, true): return
        case (.clear(let values), false):
            guard values.allSatisfy(\.isFinite) else {
                throw AnalyticsError(.malformedMessage, "site \(site) uploaded NaN or infinite values")
            }
        case (.clear, true):
            throw AnalyticsError(
                .unexpectedMessage, "site \(site) uploaded in the clear, but the query runs with secure sums")
        case (.masked, false):
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site) uploaded a masked vector, but the query runs without "
                    + "secure sums")
        }
    }

    /// The sum of the uploads: unmasked by the pairwise masks' cancellation (and recovery), or in the clear.
    private func sum(
        _ uploads: [String: StatisticsResponse.Upload], expected: [String],
        recovery: [String: [String: [UInt64]]], length: Int
    ) throws(AnalyticsError) -> [Double] {
        guard options.secureSum else {
            // In site order: floating-point sums then do not depend on the order responses arrived in.
            var total = [Double](repeating: 0, count: length)
            for site in expected {
                guard case .clear(let v)? = uploads[site] else { continue }
                for i in 0..<length { total[i] += v[i] }
            }
            return total
        }
        var masked: [String: [UInt64]] = [:]
        for (site, upload) in uploads { if case .masked(let w) = upload { masked[site] = w } }
        do {
            return try SecureSumServer.sum(uploads: masked, expected: Set(expected), recovery: recovery)
        } catch {
            guard !missingRecovery.isEmpty else { throw error }
            let why = missingRecovery.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")
            throw AnalyticsError(error.code, error.message, cause: "did not answer the recovery request: " + why)
        }
    }
}
