import FederationCore
import FederationJobs
import FederationServer
import Foundation
import Testing
import Training

@Suite("federation.robust_aggregation in the pipeline: parsing, validation, the job factory's memory limit")
struct RobustAggregationConfigurationTests {
    static let shipped: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return (try? String(contentsOfFile: url.path + "/pipelines/segmentation-unet2d.yaml", encoding: .utf8)) ?? ""
    }()

    /// The shipped pipeline with min_clients 3 and its commented `robust_aggregation` example switched on.
    static var shippedWithExample: String { uncommenting("robust_aggregation", in: shipped) }

    /// `pipeline` with min_clients 3 and the commented example of `federation.<key>` switched on: the
    /// `#   key: value` lines right under `  # <key>:` (the `#   # …` lines stay comments).
    static func uncommenting(_ key: String, in pipeline: String) -> String {
        var lines: [String] = []
        var inExample = false
        for line in pipeline.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "  # \(key):" {
                inExample = true
                lines.append("  \(key):")
            } else if inExample, line.hasPrefix("  #   "), !line.hasPrefix("  #   #") {
                lines.append("    " + line.dropFirst(6))
            } else {
                if !line.hasPrefix("  #   ") { inExample = false }
                lines.append(String(line))
            }
        }
        return lines.joined(separator: "\n").replacingOccurrences(of: "min_clients: 2", with: "min_clients: 3")
    }

    func parse(_ body: String, minClients: Int = 5) throws(FederationError) -> FederationConfiguration {
        try FederationConfiguration(
            yaml: "federation:\n  min_clients: \(minClients)\n  sites: [a, b, c, d, e, f]\n"
                + "  robust_aggregation:\n" + body)
    }

    @Test("The shipped pipeline: plain FedAvg by default; its documented example parses to median with max_norm 10")
    func shippedExample() throws {
        #expect(try FederationConfiguration(yaml: Self.shipped).robustAggregation == RobustAggregation())
        let example = try FederationConfiguration(yaml: Self.shippedWithExample)
        #expect(example.robustAggregation == RobustAggregation(rule: .median, normBound: .fixed(10)))
        #expect(example.jobConfiguration(jobID: "j", sites: example.sites).robustAggregation.ruleName == "median")
    }

    @Test("Every rule and key parses to its settings")
    func parses() throws {
        #expect(try parse("    rule: median\n").robustAggregation.rule == .median)
        #expect(
            try parse("    rule: trimmed_mean\n    trim_fraction: 0.2\n").robustAggregation.rule
                == .trimmedMean(trimFraction: 0.2))
        #expect(
            try parse("    rule: krum\n    byzantine_sites: 1\n    selected: 3\n").robustAggregation.rule
                == .krum(byzantineSites: 1, selected: 3))
        #expect(
            try parse("    rule: krum\n    byzantine_sites: 1\n").robustAggregation.rule
                == .krum(byzantineSites: 1, selected: 1))
        #expect(try parse("    median_norm_factor: 2.5\n").robustAggregation.normBound == .medianFactor(2.5))
        let mean = try parse("    weighting: samples\n    max_norm: 4\n    declared_sample_counts: {a: 120, c: 40}\n")
        #expect(
            mean.robustAggregation
                == RobustAggregation(normBound: .fixed(4), declaredSampleCounts: ["a": 120, "c": 40]))
        #expect(try parse("    weighting: equal\n").robustAggregation.weighting == .equal)
    }

    @Test(
        "Bad values and combinations are refused, naming the key",
        arguments: [
            ("    rule: mode\n", "robust_aggregation.rule"),
            ("    rule: [median]\n", "robust_aggregation.rule"),
            ("    rules: median\n", "robust_aggregation.rules"),
            ("    rule: trimmed_mean\n", "robust_aggregation.trim_fraction"),
            ("    rule: trimmed_mean\n    trim_fraction: 0.5\n", "robust_aggregation.trim_fraction"),
            ("    rule: trimmed_mean\n    trim_fraction: .nan\n", "robust_aggregation.trim_fraction"),
            ("    rule: trimmed_mean\n    trim_fraction: 0.1\n", "robust_aggregation.trim_fraction"),
            ("    rule: median\n    trim_fraction: 0.2\n", "robust_aggregation.trim_fraction"),
            ("    rule: krum\n", "robust_aggregation.byzantine_sites"),
            ("    rule: krum\n    byzantine_sites: 2\n", "robust_aggregation.byzantine_sites"),
            ("    rule: krum\n    byzantine_sites: -1\n", "robust_aggregation.byzantine_sites"),
            ("    rule: krum\n    byzantine_sites: 1\n    selected: 5\n", "robust_aggregation.selected"),
            ("    rule: krum\n    byzantine_sites: 1\n    selected: 0\n", "robust_aggregation.selected"),
            ("    selected: 2\n", "robust_aggregation.selected"),
            ("    max_norm: 0\n", "robust_aggregation.max_norm"),
            ("    max_norm: 1e13\n", "robust_aggregation.max_norm"),
            ("    max_norm: 1\n    median_norm_factor: 2\n", "robust_aggregation.max_norm"),
            ("    median_norm_factor: 0.5\n", "robust_aggregation.median_norm_factor"),
            ("    weighting: by_size\n", "robust_aggregation.weighting"),
            ("    rule: median\n    weighting: equal\n", "robust_aggregation.weighting"),
            ("    declared_sample_counts: [a, 3]\n", "robust_aggregation.declared_sample_counts"),
            ("    declared_sample_counts: {a: 0}\n", "robust_aggregation.declared_sample_counts.a"),
            ("    declared_sample_counts: {z: 10}\n", "robust_aggregation.declared_sample_counts.z"),
            ("    declared_sample_counts: {'-x': 10}\n", "robust_aggregation.declared_sample_counts.-x"),
            (
                "    weighting: equal\n    declared_sample_counts: {a: 10}\n",
                "robust_aggregation.declared_sample_counts"
            ),
        ])
    func refused(body: String, key: String) {
        do {
            _ = try parse(body)
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("`federation.\(key)"), "\(error.message)")
        }
    }

    @Test(
        "Too few results per round for the rule or the median norm: min_clients 2 is refused",
        arguments: [
            ("    rule: median\n", "robust_aggregation.rule"),
            ("    median_norm_factor: 2\n", "robust_aggregation.median_norm_factor"),
            ("    rule: krum\n    byzantine_sites: 0\n", "robust_aggregation.byzantine_sites"),
        ])
    func tooFewResults(body: String, key: String) {
        let minClients = 2
        do {
            _ = try parse(body, minClients: minClients)
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("`federation.\(key)"), "\(error.message)")
        }
    }

    @Test("Not with client_dp, nor (rules over several diffs) with the cyclic strategy")
    func combinations() {
        let clientDP = "  client_dp: {clip_norm: 1, noise_multiplier: 1}\n"
        for (extra, body) in [
            (clientDP, "    max_norm: 3\n"), (clientDP, "    rule: median\n"),
            ("  strategy: cyclic\n", "    rule: median\n"),
        ] {
            #expect(throws: FederationError.self) {
                try FederationConfiguration(
                    yaml: "federation:\n  min_clients: 3\n  sites: [a, b, c]\n" + extra + "  robust_aggregation:\n"
                        + body)
            }
        }
    }

    @Test("The job factory refuses a held rule above max_held_update_bytes at submission, naming the limit")
    func heldLimit() throws {
        let pipeline =
            Self.shipped.replacingOccurrences(of: "min_clients: 2", with: "min_clients: 3")
            + "  robust_aggregation:\n    rule: median\n"
        _ = try StudyJobFactory().plan(pipeline: pipeline)
        var limits = PipelineLimits()
        limits.maxHeldUpdateBytes = 1 << 20
        do {
            _ = try StudyJobFactory(limits: limits).plan(pipeline: pipeline)
            Issue.record("a median over 3 sites of the shipped U-Net fits in 1 MiB?")
        } catch {
            #expect(error.message.contains("max_held_update_bytes"), "\(error.message)")
            #expect(error.message.contains("federation.robust_aggregation.rule"), "\(error.message)")
        }
        // Norm bounding with rule mean streams: no held memory, whatever the limit.
        _ = try StudyJobFactory(limits: limits).plan(
            pipeline: Self.shipped + "  robust_aggregation:\n    max_norm: 5\n")
    }

    @Test("limits.yaml sets max_held_update_bytes")
    func limitsKey() throws {
        let limits = try PipelineLimits(yaml: "pipeline:\n  max_held_update_bytes: 1048576\n")
        #expect(limits.maxHeldUpdateBytes == 1 << 20)
    }
}
