import FederationCore
import Testing

@Suite("Strategies, validation and site filters")
struct StrategyAndFilterTests {
    let global = set([("enc.0.conv1.weight", [1, 1]), ("norm.running_mean", [0])])

    @Test("FedProx sends μ; cyclic weight transfer asks one site per round, in turn")
    func configure() {
        let prox = FedProx(mu: 0.01).configureTraining(round: 3, sites: ["a", "b"])
        #expect(prox["a"]?["proximal_mu"] == .double(0.01))
        let cyclic = CyclicWeightTransfer()
        #expect(Array(cyclic.configureTraining(round: 1, sites: ["b", "a", "c"]).keys) == ["a"])
        #expect(Array(cyclic.configureTraining(round: 2, sites: ["b", "a", "c"]).keys) == ["b"])
        #expect(Array(cyclic.configureTraining(round: 4, sites: ["b", "a", "c"]).keys) == ["a"])
    }

    @Test("Exclude-variables filter keeps matching tensors at the site; the chain names a refusing filter")
    func filters() async throws {
        let update = ModelUpdate(jobID: "j", round: 1, site: "a", sampleCount: 3, diff: global)
        let chain = FilterChain([ExcludeVariablesFilter(patterns: [.contains("running_")])])
        let out = try await chain.process(update, context: FilterContext(site: "a", jobID: "j", round: 1))
        #expect(out.diff.names == ["enc.0.conv1.weight"])
        struct Refuse: SiteFilter {
            var name: String { "refuse" }
            func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
                throw FederationError(.filter, "no")
            }
        }
        do {
            _ = try await FilterChain([Refuse()]).process(
                update, context: FilterContext(site: "a", jobID: "j", round: 1))
            Issue.record("should refuse")
        } catch {
            #expect(error.message.contains("'refuse'"))
        }
    }

    @Test("A round of FedAvg on weight diffs through the accumulator: global + Σnᵢ·Δᵢ/Σnᵢ")
    func fedAvgRound() throws {
        var strategy = FedAvg()
        var acc = StreamingAccumulator(structure: global)
        let updates = [
            ModelUpdate(
                jobID: "j", round: 1, site: "a", sampleCount: 1,
                diff: set([("enc.0.conv1.weight", [1, 0]), ("norm.running_mean", [3])])),
            ModelUpdate(jobID: "j", round: 1, site: "b", sampleCount: 3, diff: set([("enc.0.conv1.weight", [-1, 4])])),
        ]
        for u in updates {
            for ch in u.diff.chunks(maxScalars: 1) { try acc.accept(ch, weight: Double(u.sampleCount), from: u.site) }
            try acc.commit(client: u.site, weight: Double(u.sampleCount))
        }
        let next = try strategy.aggregateTraining(
            round: 1, global: global, meanDiff: try acc.weightedMean(), updates: updates)
        #expect(next["enc.0.conv1.weight"]?.values == [0.5, 4])  // 1 + (1·1 + 3·(−1))/4, 1 + (0 + 3·4)/4
        #expect(next["norm.running_mean"]?.values == [3])
    }
}
