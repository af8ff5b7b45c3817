import DifferentialPrivacy
import FederatedAnalytics
import Foundation
import TestSupport
import Testing

/// Drives a `StatisticsAggregator` and one `StatisticsSiteSession` per site the way the federation runtime does:
/// every request and response crosses as JSON bytes. `answers` decides, per request, whether the site answers
/// (false: the runtime declares it as not answering).
struct JSONExchange {
    var aggregator: StatisticsAggregator
    var sessions: [String: StatisticsSiteSession] = [:]
    var log: [StatisticsRequest] = []
    /// What the server does to a request before the site sees it (a tampering server in tests).
    var tamper: (inout StatisticsRequest) -> Void = { _ in }

    init(
        query: StatisticsQuery, sites: [StatisticsSite], mechanism: NoiseMechanism? = nil, seed: UInt64? = nil,
        secureSum: Bool = true, minimumSites: Int = 1, credentials: [String: SecureSumCredentials] = [:]
    ) throws {
        aggregator = try StatisticsAggregator(
            query: query, sites: sites.map(\.name),
            options: .init(
                mechanism: mechanism, secureSum: secureSum, session: "job-\(UUID().uuidString)",
                minimumSites: minimumSites))
        for site in sites {
            let noise: any NoiseSource =
                seed.map { SeededNoiseSource(seed: $0, site: site.name) } ?? SystemNoiseSource()
            // serverIsLocal only to compare with the in-process path, whose sites accept clear uploads.
            sessions[site.name] = StatisticsSiteSession(
                site: site, noise: noise, mechanism: mechanism,
                serverIsLocal: !secureSum, credentials: credentials[site.name])
        }
    }

    /// One site's answer to one request, as bytes.
    mutating func answer(_ request: StatisticsRequest) throws -> Data {
        var sent = request
        tamper(&sent)
        let wire = try StatisticsRequest(decoding: sent.encoded())
        #expect(wire == sent)
        guard var session = sessions[wire.site] else {
            throw AnalyticsError(.unexpectedMessage, "no site \(wire.site)")
        }
        let response = try session.respond(to: wire)
        sessions[wire.site] = session
        return try response.encoded()
    }

    /// - Parameter restarts: the server checkpoints and restores its aggregator after every message.
    mutating func run(restarts: Bool = false, answers: (StatisticsRequest) -> Bool = { _ in true }) throws
        -> StatisticsResult
    {
        var requests = try aggregator.nextRequests()
        while !requests.isEmpty {
            for request in requests {
                log.append(request)
                if answers(request) {
                    try aggregator.receive(try answer(request), from: request.site)
                } else {
                    try aggregator.siteDidNotAnswer(request.site, reason: "timed out")
                }
                if restarts { aggregator = try StatisticsAggregator(restoring: aggregator.checkpoint()) }
            }
            requests = try aggregator.nextRequests()
        }
        return try aggregator.result()
    }
}

func reportJSON(_ r: StatisticsResult) throws -> String { try StatisticsReport.json(r) }

let referenceQuery: StatisticsQuery? = try? StatisticsQuery.load(
    path: repositoryRoot + "/Tests/FederatedAnalyticsTests/Golden/reference-query.yaml")

let smallQuery: StatisticsQuery? = try? StatisticsQuery.parse(
    """
    name: small
    features:
      - {feature: PatientAge, statistics: [count, mean, stddev], bounds: [0, 100]}
      - {feature: Manufacturer, statistics: [frequencies]}
    privacy: {minimum_count: 1}
    """)

@Suite("Statistics exchange: aggregator and site sessions over JSON messages", .computeBound)
struct StatisticsExchangeTests {
    @Test(
        "Over JSON the exchange gives the in-process result exactly (exact mode and seeded noise, masked and clear)",
        arguments: [(NoiseMechanism.none, true), (NoiseMechanism.none, false), (nil, true), (nil, false)]
            as [(NoiseMechanism?, Bool)])
    func sameAsInProcess(mechanism: NoiseMechanism?, secureSum: Bool) throws {
        let query = try #require(referenceQuery)
        var direct = CohortStatistics(query: query, mechanism: mechanism, seed: 7)
        direct.secureSum = secureSum
        let expected = try direct.run(sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)))
        var exchange = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: mechanism, seed: 7, secureSum: secureSum)
        let got = try exchange.run()
        #expect(try reportJSON(got) == reportJSON(expected))
        #expect(got.perSite.count == 3 && got.sites == siteNames)
        #expect(Set(exchange.log.map(\.phase)) == [.plan, .firstPass, .secondPass, .reveal])
        if mechanism == nil { #expect(got.privacy.values.allSatisfy { $0.epsilonSpent > 0 }) }
    }

    @Test("With secure sums the server gets only masked vectors, and no per-site figures from sites that do not reveal")
    func serverView() throws {
        let query = try #require(smallQuery)
        var policy = openPolicy()
        policy.revealPerSite = false
        let ledger = try PrivacyLedger(path: nil)
        var exchange = try JSONExchange(query: query, sites: sites(policy: policy, ledger: ledger), seed: 3)
        var uploads: [StatisticsResponse.Upload] = []
        var requests = try exchange.aggregator.nextRequests()
        while !requests.isEmpty {
            for request in requests {
                let data = try exchange.answer(request)
                let response = try StatisticsResponse(decoding: data)
                if case .firstPass(let u) = response.payload { uploads.append(u) }
                if case .secondPass(let u) = response.payload { uploads.append(u) }
                try exchange.aggregator.receive(data)
            }
            requests = try exchange.aggregator.nextRequests()
        }
        let result = try exchange.aggregator.result()
        #expect(uploads.count == 6)
        #expect(uploads.allSatisfy { if case .masked = $0 { return true } else { return false } })
        #expect(!exchange.log.contains { $0.phase == .reveal })
        #expect(result.perSite.isEmpty)
        #expect(result.global[0].count != nil)
    }

    @Test(
        "Malformed, truncated, stale, misrouted or duplicate responses are refused with a clear error; the run goes on")
    func badResponses() throws {
        let query = try #require(smallQuery)
        var exchange = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        var reference = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        let expected = try reference.run()

        func refused(
            _ code: AnalyticsError.Code, _ words: String, _ body: () throws -> Void,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            do {
                try body()
                Issue.record("accepted", sourceLocation: sourceLocation)
            } catch let error as AnalyticsError {
                #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
                #expect(error.message.contains(words), "\(error)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(error)", sourceLocation: sourceLocation)
            }
        }

        // Before any phase is open.
        refused(.unexpectedMessage, "no phase is open") {
            try exchange.aggregator.siteDidNotAnswer("research-center", reason: "x")
        }
        var requests = try exchange.aggregator.nextRequests()
        var planAnswer = Data()
        for request in requests {
            let data = try exchange.answer(request)
            if request.site == "research-center" { planAnswer = data }
            try exchange.aggregator.receive(data, from: request.site)
        }
        requests = try exchange.aggregator.nextRequests()
        #expect(exchange.aggregator.phase == .firstPass)
        let request = try #require(requests.first { $0.site == "research-center" })
        let good = try exchange.answer(request)
        let response = try StatisticsResponse(decoding: good)

        refused(.malformedMessage, "truncated") { try exchange.aggregator.receive(good.prefix(good.count / 2)) }
        refused(.malformedMessage, "cannot decode") { try exchange.aggregator.receive(Data("not json".utf8)) }
        refused(.malformedMessage, "cannot decode") { try exchange.aggregator.receive(Data()) }
        var other = response
        other.version = 99
        refused(.malformedMessage, "version") { try exchange.aggregator.receive(try other.encoded()) }
        other = response
        other.session = "another-job"
        refused(.unexpectedMessage, "session") { try exchange.aggregator.receive(try other.encoded()) }
        other = response
        other.site = "mallory"
        refused(.unexpectedMessage, "unknown site 'mallory'") { try exchange.aggregator.receive(try other.encoded()) }
        refused(.unexpectedMessage, "in the name of") {
            try exchange.aggregator.receive(good, from: "treatment-center")
        }
        refused(.unexpectedMessage, "answered phase plan") { try exchange.aggregator.receive(planAnswer) }
        guard case .firstPass(.masked(let words)) = response.payload else {
            Issue.record("the first pass was not masked")
            return
        }
        other = response
        other.payload = .firstPass(.masked(Array(words.dropLast())))
        refused(.unexpectedMessage, "values, the query's layout has") {
            try exchange.aggregator.receive(try other.encoded())
        }
        other.payload = .firstPass(.clear([Double](repeating: 0, count: words.count)))
        refused(.unexpectedMessage, "in the clear") { try exchange.aggregator.receive(try other.encoded()) }
        // Not finished yet.
        refused(.unexpectedMessage, "still awaits") { _ = try exchange.aggregator.nextRequests() }
        refused(.unexpectedMessage, "not finished") { _ = try exchange.aggregator.result() }

        // The good response is still welcome, once.
        try exchange.aggregator.receive(good, from: "research-center")
        refused(.unexpectedMessage, "not awaited") { try exchange.aggregator.receive(good) }
        for request in requests where request.site != "research-center" {
            try exchange.aggregator.receive(try exchange.answer(request))
        }
        let result = try exchange.run()
        #expect(try reportJSON(result) == reportJSON(expected))
        refused(.unexpectedMessage, "finished") { try exchange.aggregator.receive(good) }
    }

    @Test("A site answers only its own session, in order; a retried request gets the same answer and no new charge")
    func siteSession() throws {
        let query = try #require(smallQuery)
        let ledger = try PrivacyLedger(path: nil)
        let site = try #require(sites(policy: openPolicy(), ledger: ledger, names: ["research-center"]).first)
        var session = StatisticsSiteSession(site: site, noise: SeededNoiseSource(seed: 1))
        let plan = StatisticsRequest(session: "s1", site: "research-center", payload: .plan(.init(query: query)))
        let firstPass = StatisticsRequest(
            session: "s1", site: "research-center",
            payload: .firstPass(
                .init(
                    categoryLists: [:], secureSum: true, publicKeys: ["research-center": session.publicKey])))

        #expect(throws: AnalyticsError.self) { try session.respond(to: firstPass) }  // before the plan
        var wrongSite = plan
        wrongSite.site = "treatment-center"
        #expect(throws: AnalyticsError.self) { try session.respond(to: wrongSite) }

        let answer = try session.respond(to: plan)
        guard case .plan(.accepted(let acceptance)) = answer.payload else {
            Issue.record("refused")
            return
        }
        #expect(acceptance.publicKey == session.publicKey)
        let spent = try ledger.spent(site: "research-center").epsilon
        #expect(spent > 0)
        let retried = try session.respond(to: plan)
        #expect(retried == answer)
        #expect(try ledger.spent(site: "research-center").epsilon == spent)

        var otherSession = firstPass
        otherSession.session = "s2"
        #expect(throws: AnalyticsError.self) { try session.respond(to: otherSession) }
        // The server swapped this site's key: no upload.
        var swapped = firstPass
        swapped.payload = .firstPass(
            .init(
                categoryLists: [:], secureSum: true,
                publicKeys: ["research-center": Data(repeating: 9, count: 32)]))
        do {
            _ = try session.respond(to: swapped)
            Issue.record("uploaded against a foreign key")
        } catch {
            #expect(error.code == .secureAggregation)
        }
        let upload = try session.respond(to: firstPass)
        let again = try session.respond(to: firstPass)
        #expect(again == upload)
        var different = firstPass
        different.payload = .firstPass(
            .init(
                categoryLists: ["3/ManufacturerModelName": ["X"]], secureSum: true,
                publicKeys: ["research-center": session.publicKey]))
        #expect(throws: AnalyticsError.self) { try session.respond(to: different) }
        // A centre outside the bounds would break the squared deviations' sensitivity.
        let outside = StatisticsRequest(
            session: "s1", site: "research-center",
            payload: .secondPass(
                .init(
                    centres: ["0/PatientAge": 250], participants: ["research-center"])))
        do {
            _ = try session.respond(to: outside)
            Issue.record("accepted a centre outside the bounds")
        } catch {
            #expect(error.code == .policyViolation)
        }
    }

    @Test("A site whose policy does not reveal per-site figures refuses clear uploads and lone secure sums")
    func policyHoldsAgainstTheServer() throws {
        let query = try #require(smallQuery)
        var policy = openPolicy()
        policy.revealPerSite = false
        let site = try #require(
            sites(policy: policy, ledger: PrivacyLedger(path: nil), names: ["research-center"]).first)
        var session = StatisticsSiteSession(site: site)
        _ = try session.respond(to: .init(session: "s", site: site.name, payload: .plan(.init(query: query))))
        for pass in [
            StatisticsRequest.FirstPass(categoryLists: [:], secureSum: false, publicKeys: [:]),
            .init(categoryLists: [:], secureSum: true, publicKeys: [site.name: session.publicKey]),
        ] {
            do {
                _ = try session.respond(to: .init(session: "s", site: site.name, payload: .firstPass(pass)))
                Issue.record("revealed its figures")
            } catch {
                #expect(error.code == .policyViolation)
                #expect(error.message.contains("reveal"))
            }
        }
        do {
            _ = try session.respond(to: .init(session: "s", site: site.name, payload: .reveal(.init())))
            Issue.record("revealed")
        } catch {
            #expect(error.code != .data)
        }
    }

    @Test("A query cannot switch a site's noise off: mechanism none is refused unless the site's policy allows it")
    func queryCannotTurnNoiseOff() throws {
        var query = try #require(smallQuery)
        query.privacy.mechanism = .none
        let ledger = try PrivacyLedger(path: nil)
        do {
            _ = try CohortStatistics(query: query).run(
                sites: sites(
                    policy: openPolicy(), ledger: ledger,
                    names: ["research-center"]))
            Issue.record("noise switched off by the query")
        } catch {
            #expect(error.code == .policyViolation)
        }
    }

    @Test("Dropout after masking: the survivors' recovery masks give the exact sum of the others, over JSON")
    func dropoutRecovers() throws {
        let query = try #require(smallQuery)
        var exchange = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        let r = try exchange.run { !($0.phase == .firstPass && $0.site == "research-center") }
        #expect(r.dropped == ["research-center"])
        #expect(r.sites == ["community-hospital", "treatment-center"])
        let recovery = exchange.log.filter { $0.phase == .recovery }
        #expect(recovery.map(\.site) == ["community-hospital", "treatment-center"])
        #expect(!exchange.log.contains { $0.phase == .secondPass && $0.site == "research-center" })
        let both = try CohortStatistics(query: query, mechanism: NoiseMechanism.none).run(
            sites: sites(
                policy: openPolicy(), ledger: PrivacyLedger(path: nil),
                names: ["community-hospital", "treatment-center"]))
        #expect(r.global[0].count == both.global[0].count)
        #expect(abs((r.global[0].mean ?? 0) - (both.global[0].mean ?? 1)) < 1e-5)
        #expect(abs((r.global[0].stddev ?? 0) - (both.global[0].stddev ?? 1)) < 1e-5)
        // The category list also holds the dropped site's names (it revealed them in the plan): 0 for the others.
        for (name, value) in r.global[1].frequencies ?? [:] {
            let expected: Double? = both.global[1].frequencies?[name] ?? nil
            #expect(value == expected, "\(name)")
        }
        #expect(r.perSite["research-center"] == nil && r.perSite["treatment-center"] != nil)
    }

    @Test("A server restarted from its checkpoint after every message finishes with the same result")
    func checkpoints() throws {
        let query = try #require(referenceQuery)
        let drop: (StatisticsRequest) -> Bool = { !($0.phase == .firstPass && $0.site == "treatment-center") }
        var plain = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            seed: 11)
        var restarted = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            seed: 11)
        let expected = try plain.run(answers: drop)
        let got = try restarted.run(restarts: true, answers: drop)
        #expect(got.dropped == ["treatment-center"])
        #expect(try reportJSON(got) == reportJSON(expected))
        #expect(throws: AnalyticsError.self) { try StatisticsAggregator(restoring: Data("{".utf8)) }
    }

    @Test("Dropouts that leave fewer sites than minimum_sites fail clearly, before any recovery mask is asked")
    func tooFewSites() throws {
        var query = try #require(smallQuery)
        query.minimumSites = 3
        var exchange = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        do {
            _ = try exchange.run { !($0.phase == .firstPass && $0.site == "treatment-center") }
            Issue.record("released with too few sites")
        } catch let error as AnalyticsError {
            #expect(error.code == .tooFewSites)
            #expect(error.message.contains("minimum_sites"))
        }
        #expect(!exchange.log.contains { $0.phase == .recovery })
        #expect(throws: AnalyticsError.self) { try exchange.aggregator.result() }
        #expect(throws: AnalyticsError.self) { try exchange.aggregator.nextRequests() }

        // A site that does not answer the plan is left out with the reason; below the minimum the query fails.
        query.minimumSites = 1
        var exchange2 = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none, minimumSites: 2)
        let r = try exchange2.run { !($0.phase == .plan && $0.site == "research-center") }
        #expect(r.refused["research-center"]?.contains("did not answer") == true)
        #expect(r.sites == ["community-hospital", "treatment-center"] && r.dropped.isEmpty)
        var exchange3 = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none, minimumSites: 3)
        #expect(throws: AnalyticsError.self) {
            _ = try exchange3.run { !($0.phase == .plan && $0.site == "research-center") }
        }
    }

    @Test("A survivor missing in recovery aborts the query; a site missing in the second pass withholds the variance")
    func laterDropouts() throws {
        let query = try #require(smallQuery)
        var exchange = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        do {
            _ = try exchange.run {
                !($0.phase == .firstPass && $0.site == "research-center")
                    && !($0.phase == .recovery && $0.site == "treatment-center")
            }
            Issue.record("released without recovery")
        } catch let error as AnalyticsError {
            #expect(error.code == .secureAggregation)
            #expect(error.message.contains("aborted"))
        }

        var exchange2 = try JSONExchange(
            query: query, sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none)
        let r = try exchange2.run { !($0.phase == .secondPass && $0.site == "research-center") }
        let full = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)))
        #expect(r.global[0].count == full.global[0].count)
        #expect(abs((r.global[0].mean ?? 0) - (full.global[0].mean ?? 1)) < 1e-5)
        #expect(r.global[0].stddev == nil && full.global[0].stddev != nil)
        #expect(r.global[0].suppressed.contains { $0.contains("research-center") })
        #expect(r.perSite["research-center"] == nil)
    }

    @Test("Requests and responses survive JSON unchanged; bad aggregator inputs are refused")
    func messagesAndInputs() throws {
        let query = try #require(smallQuery)
        let request = StatisticsRequest(
            session: "s", site: "a",
            payload: .firstPass(
                .init(
                    categoryLists: ["1/Manufacturer": ["GE", "SIEMENS"]], secureSum: true,
                    publicKeys: ["a": Data(repeating: 1, count: 32)])))
        #expect(try StatisticsRequest(decoding: request.encoded()) == request)
        let plan = StatisticsRequest(session: "s", site: "a", payload: .plan(.init(query: query)))
        #expect(try StatisticsRequest(decoding: plan.encoded()) == plan)
        for upload in [StatisticsResponse.Upload.masked([0, 1, .max, 1 << 63]), .clear([0, -1.5, 1e300, .pi])] {
            let response = StatisticsResponse(session: "s", site: "a", payload: .firstPass(upload))
            #expect(try StatisticsResponse(decoding: response.encoded()) == response)
        }
        let recovery = StatisticsResponse(
            session: "s", site: "a", payload: .recovery(.init(masks: ["b": [1, 2, .max]])))
        #expect(try StatisticsResponse(decoding: recovery.encoded()) == recovery)
        do {
            _ = try StatisticsRequest(
                decoding: Data(#"{"version":1,"session":"s","site":"a","payload":{"nope":{}}}"#.utf8))
            Issue.record("decoded an unknown phase")
        } catch {
            #expect(error.code == .malformedMessage)
        }
        #expect(throws: AnalyticsError.self) { try StatisticsAggregator(query: query, sites: []) }
        #expect(throws: AnalyticsError.self) { try StatisticsAggregator(query: query, sites: ["a", "a"]) }
        #expect(throws: AnalyticsError.self) {
            try StatisticsAggregator(query: query, sites: ["a"], options: .init(session: ""))
        }
    }

    /// One site's clear first-pass upload (seeded noise) and what its ledger was charged.
    private func release(
        query: StatisticsQuery, categoryLists: [String: [String]] = [:],
        seed: UInt64 = 11
    ) throws -> (values: [Double], epsilon: Double) {
        let ledger = try PrivacyLedger(path: nil)
        let site = try #require(sites(policy: openPolicy(), ledger: ledger, names: ["research-center"]).first)
        var session = StatisticsSiteSession(site: site, noise: SeededNoiseSource(seed: seed), serverIsLocal: true)
        let plan = try session.respond(to: .init(session: "d", site: site.name, payload: .plan(.init(query: query))))
        guard case .plan(.accepted(_)) = plan.payload else {
            throw AnalyticsError(.policyViolation, "refused: \(plan)")
        }
        let upload = try session.respond(
            to: .init(
                session: "d", site: site.name,
                payload: .firstPass(
                    .init(
                        categoryLists: categoryLists, secureSum: false, publicKeys: [:]))))
        guard case .firstPass(.clear(let values)) = upload.payload else {
            throw AnalyticsError(.unexpectedMessage, "not a clear upload: \(upload)")
        }
        return (values, try ledger.spent(site: site.name).epsilon)
    }

    @Test("A site noises and charges a category the server repeats once: one value per distinct category")
    func duplicatedCategoriesAtTheSite() throws {
        let query = try #require(smallQuery)  // 0/PatientAge (counts 2 + sum), 1/Manufacturer (counts 2 + sum slot)
        let once = try release(query: query, categoryLists: ["1/Manufacturer": ["GE", "SIEMENS"]])
        let repeated = try release(query: query, categoryLists: ["1/Manufacturer": ["GE", "SIEMENS", "GE", "GE"]])
        #expect(once.values.count == 3 + 3 + 3)  // ... + frequencies GE, SIEMENS, other
        #expect(repeated.values == once.values)
        #expect(repeated.epsilon == once.epsilon && once.epsilon > 0)

        // The same through the plan: a query (not validated by the server) listing a category three times.
        func manufacturer(_ categories: [String]) -> StatisticsQuery {
            StatisticsQuery(
                name: "dup",
                features: [
                    FeatureQuery(feature: "Manufacturer", statistics: [.frequencies], categories: categories)
                ],
                privacy: smallQuery?.privacy ?? QueryPrivacy())
        }
        let planned = try release(query: manufacturer(["GE", "GE", "SIEMENS", "GE"]))
        let plannedOnce = try release(query: manufacturer(["GE", "SIEMENS"]))
        #expect(planned.values.count == 2 + 1 + 3)
        #expect(planned.values == plannedOnce.values)
        #expect(planned.epsilon == plannedOnce.epsilon && planned.epsilon > 0)
    }

    @Test(
        "A site refuses first-pass category names that could collide after trimming, or name the rest",
        arguments: [" GE", "GE ", "", "other"])
    func collidingCategoryNames(name: String) throws {
        let query = try #require(smallQuery)
        do {
            _ = try release(query: query, categoryLists: ["1/Manufacturer": ["GE", name]])
            Issue.record("released with category '\(name)'")
        } catch let error as AnalyticsError {
            #expect(error.code == .policyViolation)
            #expect(error.message.contains("1/Manufacturer"), "\(error)")
        }
    }
}
