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
        let model = ParameterSet(["enc.0.bn.running_mean", "head.weight", "enc.1.norm.weight", "bias", "enc.0.conv.weight"].map {
            ParameterTensor(name: $0, shape: [1], values: [1])
        })
        let out = try await chain.process(ModelUpdate(jobID: "j", round: 1, site: "a", sampleCount: 1, diff: model),
                                          context: FilterContext(site: "a", jobID: "j", round: 1))
        #expect(out.diff.names == ["enc.0.conv.weight"])

        let kit = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-kit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: kit, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: kit) }
        #expect(try SiteFilterPolicy.sharesLocalModel(kitFolder: kit), "no filters.yaml: the site shares")
        try yaml.write(toFile: kit + "/filters.yaml", atomically: true, encoding: .utf8)
        #expect(try SiteFilterPolicy.sharesLocalModel(kitFolder: kit) == false)
    }

    @Test("Mistakes are named", arguments: [
        ("exclude_variable: [a]", "unknown key"),
        ("exclude_variables: a", "must be a list"),
        ("exclude_variables: [\"*\"]", "other than *"),
        ("exclude_variables: [\"a*b\"]", "only at its start and end"),
        ("share_local_model: perhaps", "true or false"),
    ])
    func mistakes(yaml: String, words: String) {
        do { _ = try SiteFilterPolicy.parse(yaml); Issue.record("accepted \(yaml)") } catch {
            #expect(error.message.contains(words), "\(error)")
        }
    }
}
