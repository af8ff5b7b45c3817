import FederationClient
import FederationCore
import Foundation
import Testing

@Suite("The site's filters.yaml: exclude_variables patterns and share_local_model")
struct SiteFilterPolicyTests {
    @Test("Patterns keep matching tensors at the site; share_local_model is read; the kit without a file shares")
    func parse() async throws {
        let yaml = "exclude_variables: [\"*.running_mean\", \"head.*\", \"*norm*\", bias]\nshare_local_model: false\n"
        let chain = try SiteFilterPolicy.parse(yaml)
        let model = ParameterSet(
            ["enc.0.bn.running_mean", "head.weight", "enc.1.norm.weight", "bias", "enc.0.conv.weight"].map {
                ParameterTensor(name: $0, shape: [1], values: [1])
            })
        let out = try await chain.process(
            ModelUpdate(jobID: "j", round: 1, site: "a", sampleCount: 1, diff: model),
            context: FilterContext(site: "a", jobID: "j", round: 1))
        #expect(out.diff.names == ["enc.0.conv.weight"])

        let kit = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-kit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: kit, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: kit) }
        #expect(try SiteFilterPolicy.sharesLocalModel(kitFolder: kit), "no filters.yaml: the site shares")
        try yaml.write(toFile: kit + "/filters.yaml", atomically: true, encoding: .utf8)
        #expect(try SiteFilterPolicy.sharesLocalModel(kitFolder: kit) == false)
    }

    @Test(
        "Mistakes are named",
        arguments: [
            ("exclude_variable: [a]", "unknown key"),
            ("exclude_variables: a", "must be a list"),
            ("exclude_variables: [\"*\"]", "other than *"),
            ("exclude_variables: [\"a*b\"]", "only at its start and end"),
            ("share_local_model: perhaps", "true or false"),
            ("percentile_privacy: 10", "percentile_privacy must be a mapping"),
            ("percentile_privacy: {percentile: 10}", "percentile_privacy.gamma is missing"),
            ("percentile_privacy: {gamma: 0.1}", "percentile_privacy.percentile is missing"),
            ("percentile_privacy: {percentile: 10, gamma: 0.1, gama: 1}", "percentile_privacy.gama"),
            ("percentile_privacy: {percentile: ten, gamma: 0.1}", "percentile_privacy.percentile must be a number"),
            ("percentile_privacy: {percentile: 100, gamma: 0.1}", "percentile_privacy.percentile is 100"),
            ("percentile_privacy: {percentile: 10, gamma: 0}", "percentile_privacy.gamma is 0"),
            ("percentile_privacy: {percentile: 10, gamma: .inf}", "percentile_privacy.gamma must be a number"),
        ])
    func mistakes(yaml: String, words: String) {
        do {
            _ = try SiteFilterPolicy.parse(yaml)
            Issue.record("accepted \(yaml)")
        } catch {
            #expect(error.message.contains(words), "\(error)")
        }
    }

    @Test("percentile_privacy runs after exclude_variables whatever the order of the keys")
    func percentilePrivacyOrder() async throws {
        let yaml = "percentile_privacy: {percentile: 50, gamma: 0.35}\nexclude_variables: [\"*.running_var\"]\n"
        let chain = try SiteFilterPolicy.parse(yaml)
        #expect(chain.filters.map(\.name) == ["exclude-variables", "percentile-privacy"])
        let diff = ParameterSet([
            ParameterTensor(name: "conv.weight", shape: [5], values: [0.5, -0.1, 0.3, -0.4, 0.2]),
            ParameterTensor(name: "bn.running_var", shape: [3], values: [9, 9, 9]),
        ])
        let out = try await chain.process(
            ModelUpdate(jobID: "j", round: 1, site: "a", sampleCount: 1, diff: diff),
            context: FilterContext(site: "a", jobID: "j", round: 1))
        // The percentile is over the five values that would leave, not the excluded running_var.
        #expect(out.diff.names == ["conv.weight"])
        #expect(out.diff["conv.weight"]?.values == [0.35, 0, 0.3, -0.35, 0])
    }
}
