import FederationCore
import FederationJobs
import FederationServer
import Foundation
import Testing

@Suite("federation.secure_aggregation in the pipeline: parsing, validation, what it cannot be combined with")
struct SecureAggregationConfigurationTests {
    func parse(_ body: String, minClients: Int = 3, extra: String = "") throws(FederationError)
        -> FederationConfiguration
    {
        try FederationConfiguration(
            yaml: "federation:\n  min_clients: \(minClients)\n  sites: [a, b, c]\n" + extra
                + "  secure_aggregation:" + body)
    }

    @Test("The shipped pipeline's documented example parses; `true` takes the defaults; the job carries it")
    func shippedExample() throws {
        let shipped = RobustAggregationConfigurationTests.shipped
        #expect(try FederationConfiguration(yaml: shipped).secureAggregation == nil)
        let example = try FederationConfiguration(
            yaml: RobustAggregationConfigurationTests.uncommenting("secure_aggregation", in: shipped))
        #expect(
            example.secureAggregation
                == (try SecureAggregationSettings(
                    threshold: 2, neighbours: 0, clipRange: 1, normBound: 5, weighting: .samples,
                    maxWeightSamples: 1000, stageTimeout: .seconds(120))))
        #expect(try parse(" true\n").secureAggregation == (try SecureAggregationSettings()))
        #expect(try parse(" false\n").secureAggregation == nil)
        let job = try parse(" {clip_range: 0.5}\n").jobConfiguration(jobID: "j", sites: ["a", "b", "c"])
        #expect(job.secureAggregation?.clipRange == 0.5)
        try job.validate()
    }

    @Test(
        "Bad values and combinations are refused, naming the key",
        arguments: [
            (" {threshold: 1}\n", "", "threshold"),
            (" {neighbours: 3}\n", "", "neighbours"),
            (" {clip_range: 0}\n", "", "clip_range"),
            (" {weighting: median}\n", "", "weighting"),
            (" {max_weight_samples: 0}\n", "", "max_weight_samples"),
            (" {shares: 3}\n", "", "not a key"),
            (" [1]\n", "", "mapping"),
            (" true\n", "  strategy: cyclic\n", "cyclic"),
            (" true\n", "  client_dp: {clip_norm: 1, noise_multiplier: 1, noise: server}\n", "noise: sites"),
            (" true\n", "  robust_aggregation: {rule: median}\n", "choose one"),
            (" true\n", "  robust_aggregation: {max_norm: 3}\n", "choose one"),
        ])
    func refused(body: String, extra: String, mentions: String) {
        do {
            _ = try parse(body, extra: extra)
            Issue.record("accepted: \(body) \(extra)")
        } catch {
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }

    @Test("A threshold that does not fit the sites is refused when the job is configured")
    func thresholdFitsSites() throws {
        var job = JobConfiguration(jobID: "j", rounds: 1, sites: ["a", "b", "c", "d", "e"], minClients: 3)
        job.secureAggregation = try SecureAggregationSettings(threshold: 2)
        #expect(throws: FederationError.self) { try job.validate() }
        job.secureAggregation = try SecureAggregationSettings(threshold: 3)
        try job.validate()
        job.minClients = 1
        #expect(throws: FederationError.self) { try job.validate() }
    }
}
