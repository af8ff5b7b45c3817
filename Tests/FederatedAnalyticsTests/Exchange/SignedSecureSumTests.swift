import DifferentialPrivacy
import FederatedAnalytics
import FederationTestSupport
import Foundation
import SecureAggregation
import TestSupport
import Testing

@Suite("Statistics secure sums with keys signed by each site's certificate", .computeBound)
struct SignedSecureSumTests {
    func credentials(_ pki: TemporaryPKI, minimum: Int = 2) throws -> [String: SecureSumCredentials] {
        var out: [String: SecureSumCredentials] = [:]
        for name in siteNames {
            out[name] = SecureSumCredentials(
                identity: try pki.identity(name), verifier: pki.verifier, minimumParticipants: minimum)
        }
        return out
    }

    func exchange(_ pki: TemporaryPKI, minimum: Int = 2) throws -> JSONExchange {
        try JSONExchange(
            query: try #require(smallQuery), sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)),
            mechanism: NoiseMechanism.none, credentials: try credentials(pki, minimum: minimum))
    }

    @Test("Signed keys: the exchange gives the exact in-process figures; every relayed key carries its endorsement")
    func signedKeysWork() throws {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        var signed = try exchange(pki)
        let got = try signed.run()
        let expected = try CohortStatistics(query: try #require(smallQuery), mechanism: NoiseMechanism.none).run(
            sites: sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)))
        #expect(try reportJSON(got) == reportJSON(expected))
        let firstPasses = signed.log.compactMap { request -> StatisticsRequest.FirstPass? in
            if case .firstPass(let pass) = request.payload { return pass }
            return nil
        }
        #expect(firstPasses.count == 3)
        #expect(firstPasses.allSatisfy { $0.endorsements?.keys.sorted() == siteNames.sorted() })
    }

    @Test("A server that substitutes a key, drops an endorsement or invents a participant is refused")
    func tamperedKeysRefused() throws {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        let rogue = try TemporaryPKI(name: "rogue")
        defer { rogue.remove() }
        let intruder = try rogue.identity("intruder")
        let invented = try KeyEndorsement.sign(Data(repeating: 9, count: 32), session: "x", purpose: "p", by: intruder)
        let attacks: [(String, (inout StatisticsRequest) -> Void)] = [
            (
                "substituted key",
                { request in
                    guard case .firstPass(var pass) = request.payload, request.site == "research-center" else { return }
                    pass.publicKeys["treatment-center"] = Data(repeating: 7, count: 32)
                    request.payload = .firstPass(pass)
                }
            ),
            (
                "missing endorsement",
                { request in
                    guard case .firstPass(var pass) = request.payload, request.site == "research-center" else { return }
                    pass.endorsements?["community-hospital"] = nil
                    request.payload = .firstPass(pass)
                }
            ),
            (
                "invented participant",
                { request in
                    guard case .firstPass(var pass) = request.payload, request.site == "research-center" else { return }
                    pass.publicKeys["intruder"] = Data(repeating: 9, count: 32)
                    pass.endorsements?["intruder"] = KeyEndorsementData(
                        certificate: Data(intruder.certificate), signature: invented)
                    request.payload = .firstPass(pass)
                }
            ),
        ]
        for (name, attack) in attacks {
            var tampered = try exchange(pki)
            tampered.tamper = attack
            do {
                _ = try tampered.run()
                Issue.record("\(name): the site masked with a key it could not check")
            } catch let error as AnalyticsError {
                #expect(error.code == .secureAggregation, "\(name): \(error)")
            }
        }
    }

    @Test("A recovery claim leaving fewer sites than a site's minimum is refused: nothing is unmasked")
    func recoveryBelowMinimum() throws {
        let pki = try TemporaryPKI()
        defer { pki.remove() }
        var exchange = try exchange(pki, minimum: 3)
        do {
            _ = try exchange.run { !($0.phase == .firstPass && $0.site == "research-center") }
            Issue.record("a site revealed masks with only two sites left")
        } catch let error as AnalyticsError {
            #expect(error.code == .policyViolation, "\(error)")
            #expect(error.message.contains("at least 3"))
        }
    }
}
