import FederationClient
import FederationCore
import FederationInProcess
import FederationServer
import FederationTestSupport
import Foundation
import SafeTensorsFormat
import TestSupport
import Testing

/// Trains to a fixed target (like `JumpTrainer`) and evaluates any model with a score computed by hand:
/// dice = (Σ w) / 100 + offset, so every cell of the cross-site matrix is known in advance.
struct ScoringTrainer: LocalTrainer {
    var target: [Float]
    var bias: Float
    var samples: Int
    var offset: Double

    func train(global: ParameterSet, task: TaskAssignment) async throws(FederationError)
        -> (weights: ParameterSet, sampleCount: Int, metrics: [String: Double])
    {
        (
            ParameterSet([
                ParameterTensor(name: "w", shape: [2], values: target),
                ParameterTensor(name: "bias", shape: [1], values: [bias]),
            ]), samples, ["dice": 0.5]
        )
    }

    func evaluate(_ weights: ParameterSet, task: TaskAssignment) async throws(FederationError) -> [String: Double] {
        let sum = weights.tensors.reduce(0.0) { $0 + $1.values.reduce(0.0) { $0 + Double($1) } }
        return ["dice": sum / 100 + offset, "validation_patients": 2]
    }
}

private let start = ParameterSet([
    ParameterTensor(name: "w", shape: [2], values: [0, 0]),
    ParameterTensor(name: "bias", shape: [1], values: [0.5]),
])

/// Collects every event of a stream until it ends.
private func collect(_ stream: AsyncStream<JobEvent>) -> Task<[JobEvent], Never> {
    Task {
        var all: [JobEvent] = []
        for await e in stream { all.append(e) }
        return all
    }
}

@Suite("Cross-site evaluation after training (TrainingJob, CrossSiteEvaluation) over the in-process transport")
struct CrossSiteEvaluationTests {
    let trainers: [String: ScoringTrainer] = [
        "a": ScoringTrainer(target: [1, 2], bias: 1, samples: 1, offset: 0),
        "b": ScoringTrainer(target: [3, 6], bias: 3, samples: 2, offset: 0.1),
        "c": ScoringTrainer(target: [-1, 10], bias: 5, samples: 1, offset: 0.2),
    ]

    @Test(
        "Two rounds, then every model at every site: the matrix equals the scores computed by hand; a site that keeps its model declines; excluded variables are filled from the global model"
    )
    func matrixByHand() async throws {
        // Excluded variables are filled from the global model at the server, and from the site's own values where
        // the site evaluates.
        let clock = ManualClock()
        let folder = try temporaryFolder("cross-site")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var job = JobConfiguration(jobID: "j1", rounds: 2, sites: ["a", "b", "c"], minClients: 3)
        job.taskConfig = ["cross_site_evaluation": .bool(true)]
        let coordinator = Coordinator(configuration: job, initialModel: start, strategy: FedAvg(), clock: clock)
        let evaluation = try CrossSiteEvaluation(
            jobID: "j1", sites: ["a", "b", "c"], firstRound: 3, timeout: .seconds(60),
            clock: clock, folder: folder + "/state", taskConfig: job.taskConfig)
        let runner = TrainingJob(coordinator: coordinator, evaluation: evaluation)
        let events = collect(await runner.observe())
        let connection = InProcessConnection(coordinator: runner)
        func agent(_ site: String) -> SiteAgent<ManualClock> {
            var a = SiteAgent(
                site: site, connection: connection, trainer: trainers[site]!, clock: clock, chunkScalars: 1,
                log: { _ in })
            a.heartbeatInterval = nil
            // b keeps its bias at the site; c keeps its local model at the site.
            if site == "b" { a.filters = FilterChain([ExcludeVariablesFilter(patterns: [.exact("bias")])]) }
            if site == "c" { a.sharesLocalModel = false }
            return a
        }
        async let done: Void = runner.execute()
        async let ra = agent("a").run()
        async let rb = agent("b").run()
        async let rc = agent("c").run()
        try await done
        // Evaluation steps are not training rounds.
        #expect(try await ra == [1, 2])
        #expect(try await rb == [1, 2])
        #expect(try await rc == [1, 2])

        // FedAvg of the targets weighted 1:2:1 → w = [1.5, 6]; bias from a and c only (b keeps it): (1 + 5) / 2 = 3.
        let global = await coordinator.global
        #expect(global["w"]?.values == [1.5, 6])
        #expect(global["bias"]?.values == [3])
        let matrix = await evaluation.matrix
        #expect(matrix.models == ["global", "a", "b"])
        #expect(matrix.sites == ["a", "b", "c"])
        // Σ global = 1.5 + 6 + 3 = 10.5; Σ a = 1 + 2 + 1 = 4; Σ b = 3 + 6 + 3 (the global bias) = 12. Site b puts
        // its own bias (3) into every model it evaluates: a's model scores 1 + 2 + 3 = 6 there.
        let sums: [String: Double] = ["global": 10.5, "a": 4, "b": 12]
        let offsets: [String: Double] = ["a": 0, "b": 0.1, "c": 0.2]
        for model in matrix.models {
            for site in matrix.sites {
                let dice = try #require(matrix.results[model]?[site]?["dice"], "\(model)@\(site)")
                let sum = model == "a" && site == "b" ? 6 : sums[model]!
                #expect(abs(dice - (sum / 100 + offsets[site]!)) < 1e-12, "\(model)@\(site)")
            }
        }
        #expect(matrix.missing.keys.sorted() == ["c"])
        #expect(matrix.missing["c"]?.contains("share_local_model") == true)

        // The job's files: the coordinator's, the matrix, and the stored local models (b's bias filled in).
        let files = try await runner.writeFiles(to: folder + "/files")
        #expect(
            files.map(\.name) == [
                "global.safetensors", "metrics.json", "cross-site.json", "local-a.safetensors",
                "local-b.safetensors",
            ])
        let written = try JSONDecoder().decode(
            CrossSiteMatrix.self,
            from: Data(contentsOf: URL(fileURLWithPath: folder + "/files/cross-site.json")))
        #expect(written == matrix)
        let b = try SafeTensorsFile.read(contentsOf: folder + "/files/local-b.safetensors")
        #expect(
            Dictionary(uniqueKeysWithValues: b.entries.map { ($0.name, $0.values) }) == ["w": [3, 6], "bias": [3]])

        let all = await events.value
        #expect(all.first == .roundStarted(round: 1, attempt: 0, sites: ["a", "b", "c"]))
        #expect(all.filter { if case .crossSiteStarted = $0 { true } else { false } }.count == 1)
        #expect(all.filter { if case .localModelReceived = $0 { true } else { false } }.count == 2)
        #expect(all.filter { if case .crossSiteEvaluated = $0 { true } else { false } }.count == 9)
        #expect(all.last == .jobFinished)
        let started = all.compactMap { e -> Int? in if case .roundStarted(let r, _, _) = e { r } else { nil } }
        #expect(started == [1, 2, 3, 4, 5, 6], "two training rounds, the submit step, three models")
        #expect(await runner.isOver)
    }

    @Test("Bad local models and answers are refused with the reason; the step waits for a good one or the deadline")
    func refusals() async throws {
        let clock = ManualClock()
        let folder = try temporaryFolder("cross-site-bad")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let evaluation = try CrossSiteEvaluation(
            jobID: "j", sites: ["a", "b"], firstRound: 2, timeout: .seconds(60),
            clock: clock, folder: folder)
        let events = collect(await evaluation.observe())
        async let matrix = evaluation.run(global: start)
        let submit = try #require(try await evaluation.nextTask(site: "a"))
        #expect(submit.kind == .submitModel && submit.round == 2)
        let header = ResultHeader(jobID: "j", round: 2, site: "a", sampleCount: 1)
        func chunk(_ tensor: String, _ shape: [Int], _ values: [Float], offset: Int = 0) -> ParameterChunk {
            ParameterChunk(tensor: tensor, shape: shape, offset: offset, values: values)
        }
        // A shape far larger than the model's is refused before anything is allocated for it.
        let refusals: [(ParameterChunk, FederationError.Code)] = [
            (chunk("w", [1 << 40], [1]), .shapeMismatch),
            (chunk("unknown", [1], [1]), .shapeMismatch),
            (chunk("w", [2], [.nan, 1]), .nonFinite),
            (chunk("w", [2], [1, 2], offset: 1), .shapeMismatch),
        ]
        for (bad, code) in refusals {
            try await evaluation.beginResult(header)
            do {
                try await evaluation.resultChunk(site: "a", bad)
                Issue.record("accepted a bad chunk of \(bad.tensor) \(bad.shape)")
            } catch {
                #expect(error.code == code, "\(bad.tensor) \(bad.shape): \(error)")
            }
        }
        // A stale round, a stranger.
        await #expect(throws: FederationError.self) {
            try await evaluation.beginResult(ResultHeader(jobID: "j", round: 1, site: "a", sampleCount: 1))
        }
        await #expect(throws: FederationError.self) {
            try await evaluation.beginResult(ResultHeader(jobID: "j", round: 2, site: "z", sampleCount: 1))
        }
        // A model missing a tensor is completed from the global model; a good one is accepted.
        try await evaluation.beginResult(header)
        try await evaluation.resultChunk(site: "a", chunk("w", [2], [7, 8]))
        try await evaluation.endResult(site: "a")
        // b never answers: the deadline closes the step and the matrix says why.
        clock.advance(by: .seconds(61))
        let evaluate = try #require(try await evaluation.nextTask(site: "a"))
        #expect(evaluate.kind == .evaluate && evaluate.round == 3 && evaluate.config["model"] == .string("global"))
        let served = try ParameterSet(assembling: try await evaluation.model(for: evaluate, maxScalars: 1))
        #expect(served == start)
        // An answer with values, or with a NaN metric, is refused.
        let answer = ResultHeader(jobID: "j", round: 3, site: "a", sampleCount: 1, metrics: ["dice": 0.8])
        try await evaluation.beginResult(answer)
        await #expect(throws: FederationError.self) {
            try await evaluation.resultChunk(site: "a", chunk("w", [2], [1, 2]))
        }
        var nan = answer
        nan.metrics = ["dice": .nan]
        await #expect(throws: FederationError.self) { try await evaluation.beginResult(nan) }  // at the header
        try await evaluation.beginResult(answer)
        try await evaluation.endResult(site: "a")
        clock.advance(by: .seconds(61))
        let second = try #require(try await evaluation.nextTask(site: "a"))
        #expect(second.config["model"] == .string("a") && second.round == 4)
        let local = try ParameterSet(assembling: try await evaluation.model(for: second, maxScalars: 2))
        #expect(local["w"]?.values == [7, 8] && local["bias"]?.values == [0.5])
        try await evaluation.beginResult(
            ResultHeader(jobID: "j", round: 4, site: "a", sampleCount: 1, metrics: ["dice": 0.6]))
        try await evaluation.endResult(site: "a")
        clock.advance(by: .seconds(61))
        let result = try await matrix
        #expect(result.models == ["global", "a"])
        #expect(result.results["global"]?["a"]?["dice"] == 0.8 && result.results["a"]?["a"]?["dice"] == 0.6)
        #expect(
            result.missing == [
                "b": "no model within 60.0 seconds", "global@b": "no answer within 60.0 seconds",
                "a@b": "no answer within 60.0 seconds",
            ])
        let rejected = await events.value.filter { if case .resultRejected = $0 { true } else { false } }
        #expect(
            rejected.count == 8,
            "four bad chunks, two bad headers, values in an answer, a NaN metric, and none else: \(rejected)")
    }

    @Test("A restarted server resumes the evaluation from its saved state: no model asked for twice")
    func resume() async throws {
        let clock = ManualClock()
        let folder = try temporaryFolder("cross-site-resume")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func answerAll(_ evaluation: CrossSiteEvaluation<ManualClock>, site: String, until stop: Int) async throws {
            while let task = try await evaluation.nextTask(site: site), task.round <= stop {
                let header = ResultHeader(
                    jobID: "j", round: task.round, site: site, sampleCount: 1,
                    metrics: task.kind == .evaluate ? ["dice": Double(task.round) / 10] : [:])
                try await evaluation.beginResult(header)
                if task.kind == .submitModel {
                    try await evaluation.resultChunk(
                        site: site, ParameterChunk(tensor: "w", shape: [2], offset: 0, values: [1, 1]))
                }
                try await evaluation.endResult(site: site)
            }
        }
        let first = try CrossSiteEvaluation(
            jobID: "j", sites: ["a"], firstRound: 5, timeout: .seconds(60), clock: clock,
            folder: folder)
        let firstEvents = collect(await first.observe())
        async let run1 = first.run(global: start)
        // Submit (round 5) and the global model (round 6) are answered; then the server stops during round 7.
        try await answerAll(first, site: "a", until: 6)
        await first.abort(reason: "the server is shutting down")
        do {
            _ = try await run1
            Issue.record("the aborted evaluation returned a matrix")
        } catch {
            #expect((error as? FederationError)?.code == .jobFailed)
        }
        _ = await firstEvents.value

        let second = try CrossSiteEvaluation(
            jobID: "j", sites: ["a"], firstRound: 5, timeout: .seconds(60), clock: clock,
            folder: folder)
        let events = collect(await second.observe())
        async let run2 = second.run(global: start)
        try await answerAll(second, site: "a", until: 7)
        let matrix = try await run2
        let started = await events.value.compactMap { e -> Int? in
            if case .roundStarted(let r, _, _) = e { r } else { nil }
        }
        #expect(started == [7], "only the local model of a is left to evaluate")
        #expect(matrix.models == ["global", "a"])
        #expect(matrix.results["global"]?["a"]?["dice"] == 0.6 && matrix.results["a"]?["a"]?["dice"] == 0.7)
    }
}
