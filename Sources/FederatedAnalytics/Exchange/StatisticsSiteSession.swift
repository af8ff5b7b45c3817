import DifferentialPrivacy
import Foundation
import SecureAggregation
import Volumes

/// What a site signs its secure-sum key with and checks the others' against: its certificate and key, the project
/// CA, and the fewest participants it masks and unmasks among.
public struct SecureSumCredentials: Sendable {
    public var identity: SigningIdentity
    public var verifier: PeerVerifier
    public var minimumParticipants: Int

    public init(identity: SigningIdentity, verifier: PeerVerifier, minimumParticipants: Int = 2) {
        self.identity = identity
        self.verifier = verifier
        self.minimumParticipants = max(2, minimumParticipants)
    }
}

/// One site's side of one statistics query run: answers the server's requests phase by phase, from the site's own
/// data, policy and ledger. Create one per query run (session); it keeps the site's X25519 private key and what it
/// released, so that every value is noised once and a repeated request gets the same answer.
///
/// The policy is the site's: the query cannot weaken it (`SiteRelease` holds the mechanism to the policy, the
/// minimum count is the larger of both, the ledger refuses over-budget queries). The session also refuses what
/// would show the server its figures when the policy does not reveal them: an upload in the clear, or a secure sum
/// (or dropout recovery) that would leave this site as the only participant.
///
/// Repeats are the site's business, whatever the server sends: the plan's query is `deduplicated()` (statistics,
/// category names, quantile levels) before it is validated, planned or charged, and a first-pass category list
/// keeps each name once (first occurrence). So each category is one cell, noised once, its suppression decided
/// once, and the ledger's charge (one per feature and primitive) covers it. Names that are not in the normal form
/// sites count with (`CategoryName.isNormalised`, so that they could collide after trimming), the reserved
/// "other", lists longer than the site's `maxCategories` or names longer than its `maxNameLength` are refused with
/// `.policyViolation` before anything is noised.
///
/// Keys: with `credentials`, the site signs its X25519 key for the session with its certificate key, and masks only
/// when every participant's key arrives with a valid endorsement (certificate issued by the project CA for that
/// site): a server cannot substitute a key or invent a participant. It masks and answers recovery only among at
/// least `credentials.minimumParticipants` sites.
///
/// Limitation (as in `SecureSumParticipant`, no secret sharing): the server is trusted to ask for recovery masks
/// only for sites that really dropped out; a server lying about a dropout could unmask that site's upload down to
/// the site's minimum number of participants. Model updates use `SecureAggregation`'s secret-shared protocol, which
/// does not have this limitation.
public struct StatisticsSiteSession: Sendable {
    public let site: StatisticsSite
    /// The site's own override of the query's mechanism: `.none` for exact reference comparisons only.
    public let mechanism: NoiseMechanism?
    /// True when the "server" runs in the site's own process (`tessera stats`): it may then see the site's noised
    /// vector in the clear. False for the federation runtime.
    public let serverIsLocal: Bool
    /// Signing and checking secure-sum keys; nil: keys are neither signed nor checked (in-process runs and tests).
    public let credentials: SecureSumCredentials?

    private var noise: any NoiseSource
    private let participant: SecureSumParticipant
    private var session: String?
    private var query: StatisticsQuery?
    private var release: SiteRelease?
    private var specs: [String: [String: NoiseSpec]] = [:]
    private var categoryLists: [String: [String]] = [:]
    private var secureSum = true
    private var publicKeys: [String: Data] = [:]
    /// Noised primitives as released (before masking).
    private var firstPass: [FeaturePrimitives]?
    private var secondPass: [FeaturePrimitives]?
    private var centres: [String: Double] = [:]
    /// Sites whose pairwise masks with this one were given to the server.
    private var recovered: Set<String> = []
    private var answered: [StatisticsPhase: Answer] = [:]

    private struct Answer: Sendable {
        var request: StatisticsRequest
        var response: StatisticsResponse
    }

    /// - Parameters:
    ///   - site: name (as the server knows it), cohort, policy and ledger.
    ///   - noise: the noise generator (`SystemNoiseSource` in production; seeded only in tests and demos).
    ///   - mechanism: the site's own override (`.none` for exact comparisons); nil follows the query and policy.
    ///   - serverIsLocal: the aggregator runs in this process (see `serverIsLocal`).
    public init(
        site: StatisticsSite, noise: any NoiseSource = SystemNoiseSource(), mechanism: NoiseMechanism? = nil,
        serverIsLocal: Bool = false, credentials: SecureSumCredentials? = nil
    ) {
        self.site = site
        self.noise = noise
        self.mechanism = mechanism
        self.serverIsLocal = serverIsLocal
        self.credentials = credentials
        self.participant = SecureSumParticipant(siteID: site.name)
    }

    /// The site's raw X25519 public key for this session.
    public var publicKey: Data { participant.publicKey }

    /// What key endorsements of statistics sessions say they are for.
    static let keyPurpose = "statistics-secure-sum"

    /// Whether the server may see this site's own figures.
    private var mayShowOwnFigures: Bool { site.policy.revealPerSite || serverIsLocal }

    /// Answers one request. A request repeated verbatim (a retry) gets the first answer again: nothing is noised
    /// or charged twice.
    /// - Throws: `.unexpectedMessage` for a request addressed to another site or session, out of order, or
    ///   contradicting an earlier one; `.policyViolation` when answering would break the site's policy;
    ///   `.secureAggregation` for bad keys; `.data` when the site's data cannot be read. A refusal of the query
    ///   itself (budget, policy) is not thrown: it is the plan answer.
    public mutating func respond(to request: StatisticsRequest) throws(AnalyticsError) -> StatisticsResponse {
        guard request.version == StatisticsRequest.protocolVersion else {
            throw AnalyticsError(
                .malformedMessage,
                "request of protocol version \(request.version), this site speaks "
                    + "\(StatisticsRequest.protocolVersion); run the same Tessera version everywhere")
        }
        guard request.site == site.name else {
            throw AnalyticsError(
                .unexpectedMessage,
                "a request for site '\(request.site)' reached site '\(site.name)'; "
                    + "check the runtime's routing")
        }
        if let session, request.session != session {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site.name) is in session '\(session)' and got a request for "
                    + "session '\(request.session)'; use one StatisticsSiteSession per query run")
        }
        if let prior = answered[request.phase] {
            guard prior.request == request else {
                throw AnalyticsError(
                    .unexpectedMessage,
                    "site \(site.name) already answered phase \(request.phase.rawValue) "
                        + "of session '\(request.session)' to a different request; a phase is answered once")
            }
            return prior.response
        }
        let payload: StatisticsResponse.Payload
        switch request.payload {
        case .plan(let plan): payload = .plan(self.plan(plan.query, session: request.session))
        case .firstPass(let pass): payload = .firstPass(try firstPass(pass))
        case .recovery(let recovery): payload = .recovery(try self.recovery(recovery))
        case .secondPass(let pass): payload = .secondPass(try secondPass(pass))
        case .reveal: payload = .reveal(try reveal())
        }
        let response = StatisticsResponse(session: request.session, site: site.name, payload: payload)
        answered[request.phase] = Answer(request: request, response: response)
        return response
    }

    // MARK: - Phases

    private mutating func plan(_ asked: StatisticsQuery, session: String) -> StatisticsResponse.Plan {
        self.session = session
        let query = asked.deduplicated()
        do throws(AnalyticsError) {
            try query.validate(limits: site.limits)
            let release = try SiteRelease(query: query, policy: site.policy, mechanism: mechanism)
            let (specs, charges) = try release.plan()
            try checkEncodingRange(query, specs: specs)
            let names =
                site.policy.revealCategoryNames
                ? try LocalStatistics(query: query, cohort: site.cohort).categoryNames() : nil
            var endorsement: KeyEndorsementData?
            if let credentials {
                do throws(SecureAggregationError) {
                    endorsement = KeyEndorsementData(
                        certificate: Data(credentials.identity.certificate),
                        signature: try KeyEndorsement.sign(
                            participant.publicKey, session: session, purpose: Self.keyPurpose,
                            by: credentials.identity))
                } catch {
                    throw AnalyticsError(.secureAggregation, "the site cannot sign its key: \(error.message)")
                }
            }
            try site.ledger.charge(site: site.name, query: query.name, charges: charges, policy: site.policy)
            let spent = try site.ledger.spent(site: site.name, policy: site.policy)
            self.query = query
            self.release = release
            self.specs = specs
            return .accepted(
                .init(
                    publicKey: participant.publicKey, endorsement: endorsement, categoryNames: names,
                    privacy: .init(
                        epsilonSpent: spent.epsilon, deltaSpent: spent.delta,
                        epsilonRemaining: site.policy.totalEpsilon - spent.epsilon,
                        minimumCount: release.minimumCount, revealed: site.policy.revealPerSite)))
        } catch {
            return .refused(.init(error))
        }
    }

    private mutating func firstPass(_ pass: StatisticsRequest.FirstPass) throws(AnalyticsError)
        -> StatisticsResponse.Upload
    {
        let (query, release, session) = try accepted(.firstPass)
        if pass.secureSum {
            guard pass.publicKeys[site.name] == participant.publicKey else {
                throw AnalyticsError(
                    .secureAggregation,
                    "the first-pass request does not carry site \(site.name)'s own "
                        + "public key: keys were mixed up or tampered with, so the site does not upload")
            }
            if let credentials {
                guard pass.publicKeys.count >= credentials.minimumParticipants else {
                    throw AnalyticsError(
                        .policyViolation,
                        "site \(site.name) masks only among at least \(credentials.minimumParticipants) sites; the "
                            + "first pass has \(pass.publicKeys.count)")
                }
                for (peer, key) in pass.publicKeys where peer != site.name {
                    guard let endorsement = pass.endorsements?[peer] else {
                        throw AnalyticsError(
                            .secureAggregation,
                            "the key of site \(peer) comes without its signature: site \(site.name) masks only with "
                                + "keys it can check against the project CA")
                    }
                    do throws(SecureAggregationError) {
                        try KeyEndorsement.verify(
                            key, site: peer, session: session, purpose: Self.keyPurpose,
                            certificate: endorsement.certificate, signature: endorsement.signature,
                            verifier: credentials.verifier)
                    } catch {
                        throw AnalyticsError(
                            .secureAggregation, "the key relayed for site \(peer) fails its check: \(error.message)")
                    }
                }
            }
            guard pass.publicKeys.count >= 2 || mayShowOwnFigures else {
                throw AnalyticsError(
                    .policyViolation,
                    "a secure sum with site \(site.name) as its only participant would "
                        + "show the server the site's own figures, which its policy does not reveal "
                        + "(reveal_per_site: false); run the query over more sites")
            }
        } else {
            guard mayShowOwnFigures else {
                throw AnalyticsError(
                    .policyViolation,
                    "the server asks site \(site.name) for its figures in the clear, but "
                        + "its policy does not reveal per-site figures (reveal_per_site: false); run the "
                        + "query with secure sums")
            }
        }
        let lists = try checkedCategoryLists(pass.categoryLists, query: query)
        let exact = try LocalStatistics(query: query, cohort: site.cohort).primitives(categoryLists: lists)
        var source = noise
        let noised = release.noised(exact, specs: specs, secondPass: false, using: &source)
        noise = source
        categoryLists = lists
        secureSum = pass.secureSum
        publicKeys = pass.publicKeys
        firstPass = noised
        let vector = noised.flattened(secondPass: false)
        guard pass.secureSum else { return .clear(vector) }
        return .masked(try participant.mask(vector, publicKeys: pass.publicKeys, session: session + "/first-pass"))
    }

    private mutating func recovery(_ request: StatisticsRequest.Recovery) throws(AnalyticsError)
        -> StatisticsResponse.Recovery
    {
        let (_, _, session) = try accepted(.recovery)
        guard let firstPass, secureSum else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site.name) got a recovery request before a masked first pass; "
                    + "recovery follows a secure-sum first pass only")
        }
        for d in request.dropped {
            guard d != site.name, publicKeys[d] != nil else {
                throw AnalyticsError(
                    .unexpectedMessage,
                    "recovery asked for site '\(d)', which was not another participant "
                        + "of the first pass (\(publicKeys.keys.sorted().joined(separator: ", ")))")
            }
        }
        let survivors = Set(publicKeys.keys).subtracting(request.dropped).subtracting(recovered)
        if let credentials, survivors.count < credentials.minimumParticipants {
            throw AnalyticsError(
                .policyViolation,
                "after the dropouts the server claims, \(survivors.count) sites would remain in the secure sum; site "
                    + "\(site.name) reveals masks only while at least \(credentials.minimumParticipants) remain")
        }
        guard survivors.count >= 2 || mayShowOwnFigures else {
            throw AnalyticsError(
                .policyViolation,
                "after the dropouts site \(site.name) would be the only one left in the "
                    + "secure sum: removing the masks would show the server its figures, which its policy does "
                    + "not reveal; the query is aborted")
        }
        let length = firstPass.flattened(secondPass: false).count
        var masks: [String: [UInt64]] = [:]
        for d in Set(request.dropped) {
            guard let key = publicKeys[d] else { continue }
            masks[d] = try participant.recoveryMask(
                dropped: d, droppedKey: key, session: session + "/first-pass",
                length: length)
        }
        recovered.formUnion(request.dropped)
        return .init(masks: masks)
    }

    private mutating func secondPass(_ pass: StatisticsRequest.SecondPass) throws(AnalyticsError)
        -> StatisticsResponse.Upload
    {
        let (query, release, session) = try accepted(.secondPass)
        guard firstPass != nil, answered[.reveal] == nil else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site.name) got a second-pass request out of order: it comes "
                    + "after the first pass and before the reveal")
        }
        let participants = Set(pass.participants)
        guard participants.contains(site.name) else {
            throw AnalyticsError(.unexpectedMessage, "the second-pass participants do not include site \(site.name)")
        }
        if secureSum {
            guard participants.isSubset(of: publicKeys.keys), participants.isDisjoint(with: recovered) else {
                throw AnalyticsError(
                    .secureAggregation,
                    "the second-pass participants must be first-pass participants that "
                        + "did not drop out; got \(pass.participants.sorted().joined(separator: ", "))")
            }
            guard participants.count >= 2 || mayShowOwnFigures else {
                throw AnalyticsError(
                    .policyViolation,
                    "a secure sum with site \(site.name) as its only participant would "
                        + "show the server the site's own figures, which its policy does not reveal")
            }
        } else if !mayShowOwnFigures {
            throw AnalyticsError(
                .policyViolation,
                "the server asks site \(site.name) for its figures in the clear, but its "
                    + "policy does not reveal per-site figures (reveal_per_site: false)")
        }
        // Squared deviations have sensitivity cap·(U − L)² only around a centre inside [L, U].
        for (key, centre) in pass.centres {
            guard let index = query.features.indices.first(where: { featureKey($0, query.features[$0]) == key }),
                let b = query.features[index].bounds, centre.isFinite, centre >= b[0], centre <= b[1]
            else {
                throw AnalyticsError(
                    .policyViolation,
                    "second-pass centre \(centre) for '\(key)' is not inside that "
                        + "feature's bounds: the noise calibration would not hold, so site \(site.name) "
                        + "refuses it")
            }
        }
        let exact = try LocalStatistics(query: query, cohort: site.cohort).primitives(
            centres: pass.centres,
            categoryLists: categoryLists)
        var source = noise
        let noised = release.noised(exact, specs: specs, secondPass: true, using: &source)
        noise = source
        centres = pass.centres
        secondPass = noised
        let vector = noised.flattened(secondPass: true)
        guard secureSum else { return .clear(vector) }
        let keys = publicKeys.filter { participants.contains($0.key) }
        return .masked(try participant.mask(vector, publicKeys: keys, session: session + "/second-pass"))
    }

    private mutating func reveal() throws(AnalyticsError) -> StatisticsResponse.Reveal {
        let (query, release, _) = try accepted(.reveal)
        guard site.policy.revealPerSite else {
            throw AnalyticsError(
                .policyViolation,
                "site \(site.name)'s policy does not reveal per-site figures "
                    + "(reveal_per_site: false); only secure sums leave it")
        }
        guard var mine = firstPass else {
            throw AnalyticsError(.unexpectedMessage, "site \(site.name) got a reveal request before its first pass")
        }
        if let second = secondPass {
            for i in mine.indices { mine[i].squaredDeviations = second[i].squaredDeviations }
            // The released squared deviations are centred on the global mean: re-centre on the site's own mean
            // (post-processing of released values, no extra budget).
            for i in mine.indices {
                if let d = mine[i].squaredDeviations, let s = mine[i].sum, let c = centres[mine[i].feature],
                    mine[i].counts[0] > 0, let b = query.features[i].bounds
                {
                    let n = mine[i].counts[0]
                    let m = (b[0] + b[1]) / 2 + s / n
                    mine[i].squaredDeviations = d - n * (m - c) * (m - c)
                }
            }
        }
        return .init(
            figures: try FeatureResult.results(query: query, primitives: mine, minimumCount: release.minimumCount))
    }

    /// Refuses, before the ledger is charged, a query whose values could leave the fixed-point range of the secure
    /// sums at this site: its own record count, the query's bounds and the noise the plan would add.
    private func checkEncodingRange(_ query: StatisticsQuery, specs: [String: [String: NoiseSpec]])
        throws(AnalyticsError)
    {
        for (index, fq) in query.features.enumerated() {
            let feature = try Feature(parsing: fq.feature)
            let unit = fq.unit ?? query.unit
            let records = site.cohort.records(unit: unit, maxPerPatient: query.maxRecordsPerPatient).count
            let names = SiteRelease.primitiveNames(fq, feature: feature, unit: unit)
            let spec = specs[featureKey(index, fq)] ?? [:]
            let worst = QueryLimits.worstMagnitude(
                bounds: fq.bounds ?? [0, 1], records: records, primitives: names,
                noise: { spec[$0] })
            guard worst <= QueryLimits.largestEncodedMagnitude else {
                throw AnalyticsError(
                    .invalidQuery,
                    "`query.features[\(index)]` ('\(fq.feature)'): with \(records) "
                        + "records at site \(site.name), its bounds and noise could give values up to "
                        + "\(String(format: "%.3g", worst)), beyond the secure sums' fixed-point range; "
                        + "narrow the bounds or raise epsilon")
            }
        }
    }

    /// The first pass's category lists as this site counts them: only the lists of categorical features the query
    /// does not enumerate, each name once (first occurrence kept).
    /// - Throws: `.policyViolation` naming the feature and the name for a list longer than the site's
    ///   `maxCategories`, a name longer than its `maxNameLength`, not trimmed or empty, or the reserved "other".
    private func checkedCategoryLists(
        _ lists: [String: [String]],
        query: StatisticsQuery
    ) throws(AnalyticsError) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (index, fq) in query.features.enumerated() where fq.categories == nil {
            let key = featureKey(index, fq)
            guard let names = lists[key] else { continue }
            let unique = names.uniqued()
            guard unique.count <= site.limits.maxCategories else {
                throw AnalyticsError(
                    .policyViolation,
                    "the first pass lists \(unique.count) categories for "
                        + "'\(key)', more than site \(site.name)'s max_categories \(site.limits.maxCategories)")
            }
            for name in unique {
                let problem: String?
                if name == CategoryName.rest {
                    problem = "is reserved for the rest"
                } else if name.count > site.limits.maxNameLength {
                    problem = "is \(name.count) characters, more than max_name_length \(site.limits.maxNameLength)"
                } else if !CategoryName.isNormalised(name) {
                    problem = "is empty or not trimmed, so it could stand for the same records as another name"
                } else {
                    problem = nil
                }
                if let problem {
                    throw AnalyticsError(
                        .policyViolation,
                        "the first pass's category "
                            + "\(CheckedConversion.quoted(name)) for '\(key)' \(problem); site \(site.name) "
                            + "does not answer it"
                    )
                }
            }
            out[key] = unique
        }
        return out
    }

    /// The accepted plan, or why `phase` cannot be answered yet.
    private func accepted(_ phase: StatisticsPhase) throws(AnalyticsError) -> (StatisticsQuery, SiteRelease, String) {
        guard let session, let planned = answered[.plan] else {
            throw AnalyticsError(
                .unexpectedMessage,
                "site \(site.name) got a \(phase.rawValue) request before the plan; "
                    + "every query run starts with the plan phase")
        }
        guard let query, let release else {
            var reason = "it refused the query"
            if case .plan(.refused(let refusal)) = planned.response.payload { reason += ": " + refusal.message }
            throw AnalyticsError(.unexpectedMessage, "site \(site.name) got a \(phase.rawValue) request but \(reason)")
        }
        return (query, release, session)
    }
}
