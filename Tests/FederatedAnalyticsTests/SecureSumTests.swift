import DifferentialPrivacy
import Foundation
import TestSupport
import Testing

@testable import FederatedAnalytics

@Suite("Secure sums", .computeBound)
struct SecureSumTests {
    @Test("ChaCha20 block function matches RFC 8439 §2.3.2")
    func chacha20() {
        var c = ChaCha20(key: (0..<32).map(UInt8.init), nonce: [0, 0, 0, 0x09, 0, 0, 0, 0x4a, 0, 0, 0, 0], counter: 1)
        let block = c.nextBlock()
        #expect(
            block[0] == 0xe4e7_f110 && block[1] == 0x1559_3bd1 && block[2] == 0x1fdd_0f50 && block[3] == 0xc471_20a3)
        #expect(block[15] == 0x4e3c_50a2)
    }

    let sites = ["a", "b", "c", "d"]
    let values: [String: [Double]] = [
        "a": [1, 2.5, -3, 1000], "b": [10, 0, 0.125, -1], "c": [100, -7.75, 3, 0], "d": [0.5, 0.5, 0.5, 0.5],
    ]

    @Test("Masks cancel: the sum is exact; each upload looks unrelated to the site's value")
    func exactSum() throws {
        let participants = Dictionary(uniqueKeysWithValues: sites.map { ($0, SecureSumParticipant(siteID: $0)) })
        let keys = participants.mapValues(\.publicKey)
        var uploads: [String: [UInt64]] = [:]
        for s in sites { uploads[s] = try participants[s]!.mask(values[s]!, publicKeys: keys, session: "q1") }
        let sum = try SecureSumServer.sum(uploads: uploads, expected: Set(sites), recovery: [:])
        let truth = (0..<4).map { i in sites.reduce(0) { $0 + values[$1]![i] } }
        #expect(sum == truth)
        // The server's view of site a: far from the fixed-point encoding of its value, and different for another
        // session even with the same value.
        let plain = try values["a"]!.map(FixedPoint.encode)
        for (m, p) in zip(uploads["a"]!, plain) { #expect(m != p) }
        let again = try participants["a"]!.mask(values["a"]!, publicKeys: keys, session: "q2")
        #expect(again != uploads["a"]!)
    }

    @Test("Masked words are uniform whatever the values (the server learns nothing from one upload)")
    func uniformity() throws {
        let a = SecureSumParticipant(siteID: "a")
        let b = SecureSumParticipant(siteID: "b")
        let keys = ["a": a.publicKey, "b": b.publicKey]
        for constant in [0.0, 1e6] {
            let upload = try a.mask([Double](repeating: constant, count: 4096), publicKeys: keys, session: "u")
            // Each bit of a uniform word is 1 half of the time: check the top, middle and low bits.
            for bit in [63, 40, 20, 0] {
                let ones = upload.filter { ($0 >> UInt64(bit)) & 1 == 1 }.count
                #expect(abs(Double(ones) / 4096 - 0.5) < 0.04, "bit \(bit): \(ones)")
            }
        }
    }

    @Test("A site that drops after masking: survivors' recovery masks unmask the exact sum of the rest")
    func dropout() throws {
        let participants = Dictionary(uniqueKeysWithValues: sites.map { ($0, SecureSumParticipant(siteID: $0)) })
        let keys = participants.mapValues(\.publicKey)
        var uploads: [String: [UInt64]] = [:]
        for s in sites where s != "c" {
            uploads[s] = try participants[s]!.mask(values[s]!, publicKeys: keys, session: "q")
        }
        var recovery: [String: [String: [UInt64]]] = [:]
        for s in uploads.keys {
            recovery["c", default: [:]][s] = try participants[s]!.recoveryMask(
                dropped: "c", droppedKey: keys["c"]!, session: "q", length: 4)
        }
        let sum = try SecureSumServer.sum(uploads: uploads, expected: Set(sites), recovery: recovery)
        let truth = (0..<4).map { i in ["a", "b", "d"].reduce(0) { $0 + values[$1]![i] } }
        #expect(sum == truth)
        // A survivor that does not answer: the query is aborted, nothing partial is returned.
        recovery["c"]?["b"] = nil
        do {
            _ = try SecureSumServer.sum(uploads: uploads, expected: Set(sites), recovery: recovery)
            Issue.record("should abort")
        } catch {
            #expect(error.code == .secureAggregation)
            #expect(error.message.contains("aborted"))
        }
    }

    @Test("A whole query with a site dropping out after masking: global figures equal the other sites' sum")
    func queryDropout() throws {
        let query = try StatisticsQuery.parse(
            """
            name: drop
            features:
              - {feature: PatientAge, statistics: [count, mean], bounds: [0, 100]}
            privacy: {minimum_count: 1}
            """)
        var run = CohortStatistics(query: query, mechanism: NoiseMechanism.none)
        run.dropAfterMasking = ["research-center"]
        let r = try run.run(
            sites: FederatedAnalyticsTests.sites(policy: openPolicy(), ledger: PrivacyLedger(path: nil)))
        #expect(r.dropped == ["research-center"])
        #expect(r.sites == ["community-hospital", "treatment-center"])
        let both = try CohortStatistics(query: query, mechanism: NoiseMechanism.none)
            .run(
                sites: FederatedAnalyticsTests.sites(
                    policy: openPolicy(), ledger: PrivacyLedger(path: nil),
                    names: ["community-hospital", "treatment-center"]))
        #expect(r.global[0].count == both.global[0].count)
        #expect(abs((r.global[0].mean ?? 0) - (both.global[0].mean ?? 1)) < 1e-5)
    }
}
