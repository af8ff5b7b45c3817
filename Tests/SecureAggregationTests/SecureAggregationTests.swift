import Crypto
import FederationTestSupport
import Foundation
import Provisioning
import Testing

@testable import SecureAggregation

/// A project CA and site identities issued by it, as `tessera provision` makes them.
struct TestProject {
    let pki: TemporaryPKI
    var verifier: PeerVerifier { pki.verifier }

    init(project: String = "secagg-test") throws { pki = try TemporaryPKI(name: project) }

    func identity(_ name: String, role: ParticipantRole = .site) throws -> SigningIdentity {
        try pki.identity(name, role: role)
    }
}

/// The server's part of the five stages, run in memory against real site sessions: routes what the server routes,
/// sums what it sums, and lets a test tamper with any message on the way.
struct Round {
    var sessions: [String: SecAggSiteSession]
    let parameters: SecAggParameters
    /// Each site's values (vectorLength − 1 of them) and weight.
    let inputs: [String: (values: [Float], weight: Double)]

    init(project: TestProject, sites: [String], parameters: SecAggParameters, minimum: Int = 2, seed: UInt64 = 1)
        throws
    {
        self.parameters = parameters
        var sessions: [String: SecAggSiteSession] = [:]
        var inputs: [String: (values: [Float], weight: Double)] = [:]
        var state = seed
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Double(state >> 11) * 0x1p-53 * 2 - 1)
        }
        for (i, site) in sites.enumerated() {
            sessions[site] = try SecAggSiteSession(
                parameters: parameters, identity: try project.identity(site), verifier: project.verifier,
                minimumParticipants: minimum)
            let values = (0..<(parameters.vectorLength - 1)).map { _ in next() * 0.5 }
            inputs[site] = (values, 0.25 + 0.25 * Double(i % 3))
        }
        self.sessions = sessions
        self.inputs = inputs
    }

    func adverts() throws -> [KeyAdvert] {
        try sessions.keys.sorted().map { try sessions[$0]!.advertise() }
    }

    /// Stage 2 at every site in `adverts`: the shares each sent.
    mutating func share(_ adverts: [KeyAdvert], sites: [String]? = nil) async throws -> [String: [EncryptedShare]] {
        var out: [String: [EncryptedShare]] = [:]
        for site in sites ?? adverts.map(\.site) {
            out[site] = try sessions[site]!.share(.init(parameters: parameters, adverts: adverts)).shares
        }
        return out
    }

    mutating func prepare(_ shared: [String: [EncryptedShare]], sites: [String]) throws {
        let senders = shared.keys.sorted()
        for site in sites {
            let mine = shared.values.flatMap { $0 }.filter { $0.to == site }
            try sessions[site]!.prepareMasking(.init(session: parameters.session, senders: senders, shares: mine))
        }
    }

    /// Stage 3: the masked vectors of `sites`, masked in two chunks to exercise positions.
    mutating func upload(_ sites: [String]) throws -> [String: [UInt32]] {
        var out: [String: [UInt32]] = [:]
        for site in sites {
            let (values, weight) = inputs[site]!
            let half = values.count / 2
            var words = try sessions[site]!.mask(values[..<half], at: 0, weight: weight)
            words += try sessions[site]!.mask(values[half...], at: half, weight: weight)
            words.append(try sessions[site]!.maskedWeight(weight))
            out[site] = words
        }
        return out
    }

    mutating func confirm(_ survivors: [String]) throws -> [String: Data] {
        var signatures: [String: Data] = [:]
        for site in survivors {
            signatures[site] =
                try sessions[site]!.confirm(.init(session: parameters.session, survivors: survivors)).signature
        }
        return signatures
    }

    mutating func unmask(_ survivors: [String], signatures: [String: Data]) throws
        -> [String: SecAggMessage.UnmaskResponse]
    {
        var out: [String: SecAggMessage.UnmaskResponse] = [:]
        for site in survivors {
            out[site] = try sessions[site]!.unmask(
                .init(session: parameters.session, survivors: survivors, signatures: signatures))
        }
        return out
    }

    /// Runs every stage; `dropAfterSharing` sites share keys but never upload. Returns the decoded weighted sum and
    /// the sum of weights over the survivors.
    mutating func run(dropAfterSharing: Set<String> = []) async throws -> (sum: [Double], weights: Double) {
        let adverts = try adverts()
        let shared = try await share(adverts)
        let survivors = shared.keys.sorted().filter { !dropAfterSharing.contains($0) }
        try prepare(shared, sites: survivors)
        let uploads = try upload(survivors)
        var total = [UInt32](repeating: 0, count: parameters.vectorLength)
        for words in uploads.values { for i in total.indices { total[i] &+= words[i] } }
        let signatures = try confirm(survivors)
        let answers = try unmask(survivors, signatures: signatures)
        var unmasking = try SecAggUnmasking(
            parameters: parameters, adverts: adverts, senders: Set(shared.keys), survivors: Set(survivors))
        for (site, answer) in answers { try unmasking.add(answer, from: site) }
        var removal = try unmasking.masks()
        try total.withUnsafeMutableBufferPointer { try removal.apply(to: $0, at: 0) }
        let quantizer = try RingQuantizer(clipRange: parameters.clipRange, participants: adverts.count)
        let decoded = total.map(quantizer.decode)
        return (Array(decoded.dropLast()), decoded.last!)
    }

    /// Σ w·clip(x) and Σ w over `sites`, in Double.
    func plaintext(_ sites: [String]) -> (sum: [Double], weights: Double) {
        var sum = [Double](repeating: 0, count: parameters.vectorLength - 1)
        var weights = 0.0
        for site in sites {
            let (values, weight) = inputs[site]!
            for i in sum.indices {
                sum[i] += weight * min(max(Double(values[i]), -parameters.clipRange), parameters.clipRange)
            }
            weights += weight
        }
        return (sum, weights)
    }
}

/// The code of the `SecureAggregationError` `body` throws; nil when it does not throw.
func failure(_ body: () async throws -> Void) async -> SecureAggregationError.Code? {
    do {
        try await body()
        return nil
    } catch {
        return (error as? SecureAggregationError)?.code
    }
}

@Suite("Secure aggregation: Shamir sharing, masks, signed keys, five stages")
struct SecureAggregationTests {
    @Test("GF(2⁸) products equal carry-less multiplication reduced by x⁸+x⁴+x³+x+1, for every pair")
    func fieldArithmetic() {
        func naive(_ a: UInt8, _ b: UInt8) -> UInt8 {
            var a = a
            var b = b
            var p: UInt8 = 0
            while b != 0 {
                if b & 1 != 0 { p ^= a }
                a = (a << 1) ^ ((a & 0x80) != 0 ? 0x1B : 0)
                b >>= 1
            }
            return p
        }
        for a in 0...255 {
            for b in 0...255 { #expect(GF256.multiply(UInt8(a), UInt8(b)) == naive(UInt8(a), UInt8(b))) }
            if a != 0 { #expect(GF256.multiply(UInt8(a), GF256.inverse(UInt8(a))) == 1) }
        }
    }

    @Test("Any t of n Shamir shares give the secret back; t − 1 do not; bad parameters are refused")
    func shamir() throws {
        var secret = [UInt8](repeating: 0, count: 32)
        secureRandom(&secret)
        let shares = try Shamir.split(secret, threshold: 3, xs: [1, 2, 3, 4, 5], random: secureRandom)
        for i in 0..<5 {
            for j in (i + 1)..<5 {
                for k in (j + 1)..<5 { #expect(try Shamir.combine([shares[i], shares[j], shares[k]]) == secret) }
                #expect(try Shamir.combine([shares[i], shares[j]]) != secret)
            }
        }
        #expect(try Shamir.combine(shares) == secret)
        #expect(throws: SecureAggregationError.self) {
            try Shamir.split(secret, threshold: 4, xs: [1, 2, 3], random: secureRandom)
        }
        #expect(throws: SecureAggregationError.self) {
            try Shamir.split(secret, threshold: 2, xs: [1, 1, 3], random: secureRandom)
        }
        #expect(throws: SecureAggregationError.self) { try Shamir.combine([shares[0], shares[0]]) }
    }

    @Test("A mask range is the same however the vector is cut into chunks; adding then subtracting cancels")
    func maskPositions() throws {
        let seed = [UInt8](repeating: 7, count: 32)
        var whole = try MaskStream(seed: seed)
        let n = MaskStream.blockWords * 2 + 123
        let reference = try whole.words(at: 0, count: n)
        var pieces = try MaskStream(seed: seed)
        var joined: [UInt32] = []
        var p = 0
        for size in [5, MaskStream.blockWords - 5, 1, MaskStream.blockWords + 100, 17] {
            joined += try pieces.words(at: p, count: size)
            p += size
        }
        #expect(joined.count == p && joined == Array(reference[0..<p]))
        #expect(Set(reference).count > n - 10)  // a keystream, not a constant
        var other = try MaskStream(seed: [UInt8](repeating: 8, count: 32))
        #expect(try other.words(at: 0, count: 64) != Array(reference[0..<64]))
        var words = [UInt32](repeating: 42, count: 1000)
        var a = try MaskStream(seed: seed)
        try words.withUnsafeMutableBufferPointer { buffer in
            try a.apply(to: buffer, at: 70_000, negate: false)
            try a.apply(to: buffer, at: 70_000, negate: true)
        }
        #expect(words == [UInt32](repeating: 42, count: 1000))
        #expect(throws: SecureAggregationError.self) { try MaskStream(seed: [1, 2, 3]) }
    }

    @Test("Quantisation: each value within 1/(2·scale); n clipped values at the range never wrap")
    func quantizer() throws {
        let q = try RingQuantizer(clipRange: 0.5, participants: 7)
        #expect(q.scale == (Double(Int32.max) / 7).rounded(.down))
        for x: Float in [0, 0.1, -0.3, 0.5, -0.5, 2, -9, .infinity, -.infinity] {
            let clipped = min(max(Double(x), -0.5), 0.5)
            #expect(abs(q.decode(q.encode(x, weight: 0.8)) - 0.8 * clipped) <= 0.5 / q.scale)
        }
        #expect(q.decode(q.encode(.nan, weight: 1)) == 0)
        var sum: UInt32 = 0
        for _ in 0..<7 { sum &+= q.encode(100, weight: 1) }
        #expect(abs(q.decode(sum) - 3.5) <= q.sumError)
        sum = 0
        for _ in 0..<7 { sum &+= q.encode(-100, weight: 1) }
        #expect(abs(q.decode(sum) + 3.5) <= q.sumError)
        #expect(throws: SecureAggregationError.self) { try RingQuantizer(clipRange: 0, participants: 3) }
        #expect(throws: SecureAggregationError.self) { try RingQuantizer(clipRange: 1, participants: 256) }
    }

    static func parameters(
        threshold: Int = 2, neighbours: Int = 0, length: Int = 2_001, session: String = "job/1/abc"
    ) throws -> SecAggParameters {
        try SecAggParameters(
            session: session, purpose: "training", threshold: threshold, neighbours: neighbours, clipRange: 0.4,
            vectorLength: length)
    }

    @Test("Four sites: the unmasked sum equals the plaintext weighted sum within the quantisation bound")
    func fullRound() async throws {
        let project = try TestProject()
        let sites = ["a", "b", "c", "d"]
        var round = try Round(project: project, sites: sites, parameters: try Self.parameters(threshold: 3))
        let (sum, weights) = try await round.run()
        let expected = round.plaintext(sites)
        let bound = Double(sites.count) / (2 * (try RingQuantizer(clipRange: 0.4, participants: 4)).scale)
        #expect(abs(weights - expected.weights) <= bound)
        for i in sum.indices { #expect(abs(sum[i] - expected.sum[i]) <= bound) }
    }

    @Test("A site that shares its keys and then drops out is recovered: the sum is the survivors' (sparse graph too)")
    func dropout() async throws {
        let project = try TestProject()
        for (sites, neighbours, threshold) in [
            (["a", "b", "c"], 0, 2), (["s1", "s2", "s3", "s4", "s5", "s6", "s7"], 4, 3),
        ] {
            var round = try Round(
                project: project, sites: sites,
                parameters: try Self.parameters(threshold: threshold, neighbours: neighbours, length: 300))
            let dropped = sites[1]
            let (sum, weights) = try await round.run(dropAfterSharing: [dropped])
            let expected = round.plaintext(sites.filter { $0 != dropped })
            let bound = Double(sites.count) / (2 * (try RingQuantizer(clipRange: 0.4, participants: sites.count)).scale)
            #expect(abs(weights - expected.weights) <= bound)
            for i in sum.indices { #expect(abs(sum[i] - expected.sum[i]) <= bound) }
        }
    }

    @Test("A masked vector alone looks like noise: far from the site's quantised values")
    func maskedVectorHidesValues() async throws {
        let project = try TestProject()
        var round = try Round(project: project, sites: ["a", "b", "c"], parameters: try Self.parameters())
        let adverts = try round.adverts()
        let shared = try await round.share(adverts)
        try round.prepare(shared, sites: ["a", "b", "c"])
        let uploads = try round.upload(["a"])
        let q = try RingQuantizer(clipRange: 0.4, participants: 3)
        let decoded = uploads["a"]!.dropLast().map(q.decode)
        let plain = round.inputs["a"]!.values
        let close = zip(decoded, plain).filter { abs($0 - Double($1) * round.inputs["a"]!.weight) < 0.01 }.count
        // Masked words decode uniformly over ±3 (3 sites, range 1): by chance 2000 · 0.02 / 6 ≈ 7 land within 0.01.
        #expect(close < 40)
    }

    @Test("A server that substitutes a site's key, forges its certificate or drops its own advert is refused")
    func substitutedKeys() async throws {
        let project = try TestProject()
        let sites = ["a", "b", "c"]
        var round = try Round(project: project, sites: sites, parameters: try Self.parameters())
        let honest = try round.adverts()

        // The server swaps b's mask key for one of its own.
        var swapped = honest
        swapped[1].maskKey = Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation
        await #expect(throws: SecureAggregationError.self) { _ = try await round.share(swapped, sites: ["a"]) }

        // The server invents a participant "z" with a certificate of another CA, signed correctly by its key.
        let rogue = try TestProject(project: "rogue")
        let fake = try SecAggSiteSession(
            parameters: round.parameters, identity: try rogue.identity("z"), verifier: rogue.verifier,
            minimumParticipants: 2)
        let invented = honest + [try fake.advertise()]
        #expect(await failure { _ = try await round.share(invented, sites: ["c"]) } == .authentication)

        // An advert for "b" that carries a's certificate (the server replays a's keys under b's name).
        var replayed = honest
        replayed[1].certificate = honest[0].certificate
        await #expect(throws: SecureAggregationError.self) { _ = try await round.share(replayed, sites: ["c"]) }

        // An admin certificate may not take part as a site.
        let admin = try project.identity("b", role: .admin)
        let asAdmin = try SecAggSiteSession(
            parameters: round.parameters, identity: admin, verifier: project.verifier, minimumParticipants: 2)
        var withAdmin = honest
        withAdmin[1] = try asAdmin.advertise()
        await #expect(throws: SecureAggregationError.self) { _ = try await round.share(withAdmin, sites: ["a"]) }
    }

    @Test("A site refuses sets below its minimum, survivor sets it did not sign, and forged confirmations")
    func participantSets() async throws {
        let project = try TestProject()
        let sites = ["a", "b", "c", "d"]
        var round = try Round(
            project: project, sites: sites, parameters: try Self.parameters(threshold: 3), minimum: 3)
        let adverts = try round.adverts()
        // Two adverts only: below a's minimum of 3.
        var small = try Round(
            project: project, sites: ["a", "b"], parameters: try Self.parameters(threshold: 3), minimum: 3)
        let smallAdverts = try small.adverts()
        #expect(await failure { _ = try await small.share(smallAdverts, sites: ["a"]) } == .participantSet)
        let shared = try await round.share(adverts)
        // U2 naming a site that never advertised.
        var probe = round.sessions["a"]!
        #expect(throws: SecureAggregationError.self) {
            try probe.prepareMasking(.init(session: round.parameters.session, senders: ["a", "b", "x"], shares: []))
        }
        try round.prepare(shared, sites: sites)
        _ = try round.upload(sites)
        // a and b sign {a, b, c}; the server then claims c dropped (to unmask c) and asks for {a, b, d}'s shares.
        let signatures = try round.confirm(["a", "b", "c"])
        let session = round.parameters.session
        #expect(
            await failure {
                _ = try round.sessions["a"]!.unmask(
                    .init(session: session, survivors: ["a", "b", "d"], signatures: signatures))
            } == .participantSet)
        // A forged signature (b's replaced by c's) is refused.
        var forged = signatures
        forged["b"] = signatures["c"]
        #expect(throws: SecureAggregationError.self) {
            _ = try round.sessions["a"]!.unmask(
                .init(session: round.parameters.session, survivors: ["a", "b", "c"], signatures: forged))
        }
        // The honest request is answered once; asked again with another set after revealing: refused.
        let answer = try round.sessions["a"]!.unmask(
            .init(session: round.parameters.session, survivors: ["a", "b", "c"], signatures: signatures))
        #expect(answer.shares.filter { $0.secret == .maskKey }.map(\.owner) == ["d"])
        #expect(throws: SecureAggregationError.self) {
            _ = try round.sessions["a"]!.unmask(
                .init(session: round.parameters.session, survivors: ["a", "b", "d"], signatures: signatures))
        }
    }

    @Test("Wrong shares are outvoted by the seed commitment; too few shares fail the round")
    func reconstructionChecks() async throws {
        let project = try TestProject()
        let sites = ["a", "b", "c", "d", "e"]
        var round = try Round(project: project, sites: sites, parameters: try Self.parameters(threshold: 3, length: 10))
        let adverts = try round.adverts()
        let shared = try await round.share(adverts)
        try round.prepare(shared, sites: sites)
        _ = try round.upload(sites)
        let signatures = try round.confirm(sites)
        var answers = try round.unmask(sites, signatures: signatures)
        // e lies about a's seed share.
        if let i = answers["e"]?.shares.firstIndex(where: { $0.owner == "a" }) {
            answers["e"]!.shares[i].share.y[0] ^= 0xFF
        }
        var unmasking = try SecAggUnmasking(
            parameters: round.parameters, adverts: adverts, senders: Set(sites), survivors: Set(sites))
        for (site, answer) in answers { try unmasking.add(answer, from: site) }
        _ = try unmasking.masks()
        var starved = try SecAggUnmasking(
            parameters: round.parameters, adverts: adverts, senders: Set(sites), survivors: Set(sites))
        for site in ["a", "b"] { try starved.add(answers[site]!, from: site) }
        #expect(await failure { _ = try starved.masks() } == .reconstruction)
    }

    @Test("Parameters: thresholds that do not fit the holders, odd neighbour counts, huge vectors are refused")
    func parameterLimits() throws {
        #expect(throws: SecureAggregationError.self) { try Self.parameters(threshold: 1) }
        #expect(throws: SecureAggregationError.self) { try Self.parameters(neighbours: 3) }
        #expect(throws: SecureAggregationError.self) { try Self.parameters(length: 0) }
        // threshold 2 of 5 holders would let two colluders split the secrets: refused once the set is known.
        #expect(throws: SecureAggregationError.self) {
            try NeighbourGraph(participants: ["a", "b", "c", "d", "e"], parameters: try Self.parameters(threshold: 2))
        }
        let graph = try NeighbourGraph(
            participants: (0..<10).map { "s\($0)" }, parameters: try Self.parameters(threshold: 3, neighbours: 4))
        for site in graph.ring {
            #expect(graph.neighbours(of: site).count == 4)
            for peer in graph.neighbours(of: site) { #expect(graph.neighbours(of: peer).contains(site)) }
        }
    }
}
