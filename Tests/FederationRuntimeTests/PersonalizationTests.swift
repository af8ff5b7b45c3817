import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import Synchronization
import TestSupport
import Testing
import Training
import Volumes

/// What a wrapped trainer was given and gave back, per task: the model each training started from, the weights it
/// returned, and the model each evaluation was asked about.
final class TrainerRecord: Sendable {
    struct Entry: Sendable {
        var task: TaskAssignment
        var start: ParameterSet
        var result: ParameterSet?
    }

    private let state = Mutex<(trained: [Entry], evaluated: [Entry])>(([], []))

    var trained: [Entry] { state.withLock { $0.trained } }
    var evaluated: [Entry] { state.withLock { $0.evaluated } }

    func train(_ task: TaskAssignment, start: ParameterSet, result: ParameterSet) {
        state.withLock { $0.trained.append(Entry(task: task, start: start, result: result)) }
    }

    func evaluate(_ task: TaskAssignment, model: ParameterSet) {
        state.withLock { $0.evaluated.append(Entry(task: task, start: model)) }
    }

    /// The starts of the training rounds (not fine-tuning), by round.
    var roundStarts: [ParameterSet] { trained.filter { $0.task.kind == .train }.map(\.start) }
}

/// Wraps a trainer and records what it sees (`TrainerRecord`).
struct RecordingTrainer: LocalTrainer {
    var base: any LocalTrainer
    var record: TrainerRecord

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        let result = try await base.train(global: global, task: task)
        record.train(task, start: global, result: result.weights)
        return result
    }

    func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String: Double] {
        record.evaluate(task, model: weights)
        return try await base.evaluate(weights, task: task)
    }

    func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        try await base.normalizationVariables(for: task)
    }
}

/// A model of three tensors (`conv.weight` [2], `norm.weight` [1], `norm.running_mean` [1]) whose "training" adds
/// `delta` × the task's local epochs to every value, and whose evaluation scores dice = (Σ values) / 100: every
/// value the federation produces can be computed by hand.
struct OffsetTrainer: LocalTrainer {
    var delta: Float

    static let start = ParameterSet([
        ParameterTensor(name: "conv.weight", shape: [2], values: [0, 0]),
        ParameterTensor(name: "norm.weight", shape: [1], values: [1]),
        ParameterTensor(name: "norm.running_mean", shape: [1], values: [0]),
    ])

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        var epochs = 1
        if case .int(let e)? = task.config["local_epochs"] { epochs = e }
        let step = delta * Float(epochs)
        var weights = global
        try weights.updateValues { _, values in for i in values.indices { values[i] += step } }
        return (weights, 1, [:])
    }

    func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String: Double] {
        ["dice": weights.tensors.reduce(0.0) { $0 + $1.values.reduce(0.0) { $0 + Double($1) } } / 100]
    }

    func normalizationVariables(for task: TaskAssignment) async throws(FederationError) -> [String] {
        ["norm.weight", "norm.running_mean"]
    }
}

/// Runs a job of `rounds` FedAvg rounds (then the cross-site evaluation when the task config asks for it) with one
/// agent per site over the in-process transport; returns the final global model and the matrix.
private func federate(
    rounds: Int, initial: ParameterSet, taskConfig: [String: ConfigValue], trainers: [String: any LocalTrainer],
    filters: [String: FilterChain] = [:]
) async throws -> (global: ParameterSet, matrix: CrossSiteMatrix?) {
    let clock = ManualClock()
    let folder = try temporaryFolder("personalization")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let sites = trainers.keys.sorted()
    var job = JobConfiguration(jobID: "j1", rounds: rounds, sites: sites, minClients: sites.count)
    job.taskConfig = taskConfig
    let coordinator = Coordinator(configuration: job, initialModel: initial, strategy: FedAvg(), clock: clock)
    var evaluation: CrossSiteEvaluation<ManualClock>?
    let runner: any JobRunner
    if case .bool(true)? = taskConfig["cross_site_evaluation"] {
        let e = try CrossSiteEvaluation(
            jobID: "j1", sites: sites, firstRound: rounds + 1, timeout: .seconds(60), clock: clock,
            folder: folder + "/cross-site", taskConfig: taskConfig)
        evaluation = e
        runner = TrainingJob(coordinator: coordinator, evaluation: e)
    } else {
        runner = coordinator
    }
    let connection = InProcessConnection(coordinator: runner)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await runner.execute() }
        for site in sites {
            var agent = SiteAgent(
                site: site, connection: connection, trainer: trainers[site]!, clock: clock, chunkScalars: 1 << 12,
                log: { _ in })
            agent.heartbeatInterval = nil
            if let chain = filters[site] { agent.filters = chain }
            group.addTask { _ = try await agent.run() }
        }
        try await group.waitForAll()
    }
    return (await coordinator.global, await evaluation?.matrix)
}

@Suite("Personalised federated learning: variables kept at the site across rounds, FedBN, local fine-tuning")
struct PersonalizationTests {
    /// Each round starts from the site's own running mean; the server's never reaches it.
    @Test("exclude_variables survives the global model being loaded, round after round (values by hand)")
    func excludedVariablesSurviveLoading() async throws {
        let a = TrainerRecord()
        let b = TrainerRecord()
        let (global, _) = try await federate(
            rounds: 3, initial: OffsetTrainer.start, taskConfig: [:],
            trainers: [
                "a": RecordingTrainer(base: OffsetTrainer(delta: 1), record: a),
                "b": RecordingTrainer(base: OffsetTrainer(delta: 3), record: b),
            ],
            filters: ["a": FilterChain([ExcludeVariablesFilter(patterns: [.suffix("running_mean")])])])
        // By hand, FedAvg with weights 1:1. conv and norm.weight: mean of a (+1) and b (+3) = +2 a round.
        // norm.running_mean: b alone sends it (+3 a round at the server); a keeps its own (+1 a round from 0).
        #expect(a.roundStarts.map { $0["norm.running_mean"]!.values } == [[0], [1], [2]])
        #expect(b.roundStarts.map { $0["norm.running_mean"]!.values } == [[0], [3], [6]])
        #expect(a.roundStarts.map { $0["conv.weight"]!.values } == [[0, 0], [2, 2], [4, 4]])
        #expect(a.roundStarts.map { $0["norm.weight"]!.values } == [[1], [3], [5]])
        #expect(b.roundStarts.map { $0["norm.weight"]!.values } == [[1], [3], [5]])
        #expect(global["conv.weight"]?.values == [6, 6])
        #expect(global["norm.weight"]?.values == [7])
        #expect(global["norm.running_mean"]?.values == [9])
    }

    /// Every site keeps its own normalisation values across rounds, the server's stay at their initial values, and
    /// the global model's evaluation and fine-tuning use the site's own.
    @Test("FedBN keeps each site's norm values across rounds; evaluation and fine-tuning use them (by hand)")
    func fedBNByHand() async throws {
        let a = TrainerRecord()
        let b = TrainerRecord()
        let (global, matrix) = try await federate(
            rounds: 3, initial: OffsetTrainer.start,
            taskConfig: [
                "personalization": .string("fedbn"), "cross_site_evaluation": .bool(true),
                "fine_tune_epochs": .int(2),
            ],
            trainers: [
                "a": RecordingTrainer(base: OffsetTrainer(delta: 1), record: a),
                "b": RecordingTrainer(base: OffsetTrainer(delta: 3), record: b),
            ])
        // Each site's norm values move by its own delta from the initial ones, round after round.
        #expect(a.roundStarts.map { $0["norm.weight"]!.values } == [[1], [2], [3]])
        #expect(a.roundStarts.map { $0["norm.running_mean"]!.values } == [[0], [1], [2]])
        #expect(b.roundStarts.map { $0["norm.weight"]!.values } == [[1], [4], [7]])
        #expect(b.roundStarts.map { $0["norm.running_mean"]!.values } == [[0], [3], [6]])
        #expect(b.roundStarts.map { $0["conv.weight"]!.values } == [[0, 0], [2, 2], [4, 4]])
        // No site sent its norm layers: the server's are the initial ones.
        #expect(global["norm.weight"]?.values == [1])
        #expect(global["norm.running_mean"]?.values == [0])
        #expect(global["conv.weight"]?.values == [6, 6])

        // Evaluation of the global model: conv [6, 6] with the site's own norm values after round 3
        // (a: 4 and 3, b: 10 and 9). Fine-tuning 2 epochs adds 2·delta to each of the 4 values.
        let m = try #require(matrix)
        let globalAt = try #require(m.results[CrossSiteMatrix.global])
        #expect(abs(globalAt["a"]!["dice"]! - (6 + 6 + 4 + 3) / 100.0) < 1e-12)
        #expect(abs(globalAt["b"]!["dice"]! - (6 + 6 + 10 + 9) / 100.0) < 1e-12)
        #expect(abs(globalAt["a"]!["personalized_dice"]! - (19 + 4 * 2) / 100.0) < 1e-12)
        #expect(abs(globalAt["b"]!["personalized_dice"]! - (31 + 4 * 6) / 100.0) < 1e-12)
        let personalized = try #require(m.personalized(metric: "dice"))
        #expect(personalized.count == 2)
        #expect(abs(personalized[0]! - 0.27) < 1e-12 && abs(personalized[1]! - 0.55) < 1e-12)
        // a's local model (its round 3: conv [5, 5]) has its norm layers completed from the global model at the
        // server, and b evaluates it with its own: 5 + 5 + 10 + 9.
        #expect(abs((m.results["a"]?["b"]?["dice"] ?? -1) - 0.29) < 1e-12)
        // The fine-tuning ran with the job's fine_tune_epochs, from the global model with the site's norm values.
        let tuning = try #require(a.trained.first { $0.task.kind == .evaluate })
        #expect(tuning.task.config["local_epochs"] == .int(2))
        #expect(tuning.start["norm.weight"]?.values == [4] && tuning.start["conv.weight"]?.values == [6, 6])
        #expect(tuning.result?["conv.weight"]?.values == [8, 8])
    }

    /// Two rounds at two sites with different intensities: each round starts from the site's own trained γ and β,
    /// the server's stay 1 and 0; fine-tuning changes the model and is reported.
    @Test("FedBN with a real U-Net (instance norms, seeded): each site's own γ, β across rounds; fine-tuning")
    func fedBNWithUNet() async throws {
        var config = TrainingConfiguration()
        config.model.encoderChannels = [2, 4]
        config.model.bottleneckChannels = 8
        config.model.normalization = .instance
        config.epochs = 1
        config.slicesPerEpoch = 4
        config.batchSize = 2
        config.validationFraction = 0.25
        let preprocessing = PreprocessingConfiguration()
        let initial = SegmentationSiteTrainer.parameterSet(try config.initialState(preprocessing: preprocessing))
        let norms = try config.normalizationVariables(preprocessing: preprocessing)
        // 2 instance norms × (γ, β) in each of the 2 encoder, 1 bottleneck and 2 decoder blocks.
        #expect(norms.count == 20 && norms.contains("enc.0.n1.weight") && norms.contains("dec.1.n2.bias"))
        // Site b's scanner: intensities × 3 − 1.
        let brighter = squarePatients(4).map { c in
            var c = c
            c.sample.image.voxels = c.sample.image.voxels.map { 3 * $0 - 1 }
            return c
        }
        let a = TrainerRecord()
        let b = TrainerRecord()
        let (global, matrix) = try await federate(
            rounds: 2, initial: initial,
            taskConfig: [
                "personalization": .string("fedbn"), "cross_site_evaluation": .bool(true),
                "fine_tune_epochs": .int(1),
            ],
            trainers: [
                "a": RecordingTrainer(
                    base: SegmentationSiteTrainer(
                        cases: squarePatients(4), configuration: config, preprocessing: preprocessing), record: a),
                "b": RecordingTrainer(
                    base: SegmentationSiteTrainer(cases: brighter, configuration: config, preprocessing: preprocessing),
                    record: b),
            ])
        for (record, site) in [(a, "a"), (b, "b")] {
            let rounds = record.trained.filter { $0.task.kind == .train }
            #expect(rounds.count == 2)
            let first = try #require(rounds.first?.result)
            let second = try #require(rounds.last)
            for name in norms {
                // Round 2 starts from the values the site's round 1 produced, which training moved off 1 / 0.
                #expect(second.start[name] == first[name], "\(site) \(name)")
                #expect(second.start[name] != initial[name], "\(site) \(name)")
            }
            // The global model's evaluation at the site uses its round-2 norm values.
            let evaluatedGlobal = try #require(
                record.evaluated.first { $0.task.config["model"] == .string(CrossSiteMatrix.global) })
            for name in norms { #expect(evaluatedGlobal.start[name] == second.result?[name], "\(site) \(name)") }
            // Fine-tuning started there and changed the model.
            let tuning = try #require(record.trained.first { $0.task.kind == .evaluate })
            #expect(tuning.start == evaluatedGlobal.start)
            #expect(tuning.result != tuning.start)
        }
        // The sites' own norm values differ (different data); every other tensor both started round 2 from is the
        // server's.
        let aStart = a.roundStarts[1]
        let bStart = b.roundStarts[1]
        #expect(norms.contains { aStart[$0] != bStart[$0] })
        for t in aStart.tensors where !norms.contains(t.name) { #expect(bStart[t.name] == t, "\(t.name)") }
        for name in norms { #expect(global[name] == initial[name], "\(name)") }
        let m = try #require(matrix)
        for site in ["a", "b"] {
            let metrics = try #require(m.results[CrossSiteMatrix.global]?[site])
            let dice = try #require(metrics["dice"])
            let tuned = try #require(metrics["personalized_dice"])
            #expect((0...1).contains(dice) && (0...1).contains(tuned), "\(site): \(metrics)")
        }
    }

    /// Another job's values are not used; a kept tensor that does not fit the model is refused.
    @Test("LocalVariables: a restarted site (same folder) restores what it kept")
    func keptValuesPersist() throws {
        let folder = try temporaryFolder("local-variables")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var trained = OffsetTrainer.start
        try trained.updateValues { t, values in for i in values.indices { values[i] = Float(10 * t + i) + 0.5 } }
        var before = LocalVariables(folder: folder)
        try before.keep(["norm.weight", "norm.running_mean"], of: trained, jobID: "job/1")

        var restarted = LocalVariables(folder: folder)
        var model = OffsetTrainer.start
        try restarted.restore(into: &model, jobID: "job/1")
        #expect(model["conv.weight"]?.values == [0, 0])
        #expect(model["norm.weight"]?.values == [10.5])
        #expect(model["norm.running_mean"]?.values == [20.5])
        // "job_1" is written to the same file name as "job/1": the file's job metadata tells them apart.
        var other = OffsetTrainer.start
        try restarted.restore(into: &other, jobID: "job_1")
        #expect(other == OffsetTrainer.start)
        // In memory only: nothing survives a restart.
        var memory = LocalVariables()
        try memory.keep(["norm.weight"], of: trained, jobID: "j")
        var fresh = LocalVariables()
        var untouched = OffsetTrainer.start
        try fresh.restore(into: &untouched, jobID: "j")
        #expect(untouched == OffsetTrainer.start)

        let reshaped = ParameterSet([ParameterTensor(name: "norm.weight", shape: [2], values: [1, 1])])
        var mismatched = reshaped
        #expect {
            try restarted.restore(into: &mismatched, jobID: "job/1")
        } throws: { ($0 as? FederationError)?.code == .shapeMismatch }
    }
}
