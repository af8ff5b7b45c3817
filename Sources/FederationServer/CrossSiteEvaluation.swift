import FederationCore
import Foundation
import SafeTensorsFormat

/// Cross-site evaluation, run by the server after a training job's last round (NVIDIA FLARE's cross-site model
/// evaluation workflow, in two steps):
/// 1. **Submit**: every site is asked for its last locally trained model (a `submitModel` task). The site sends its
///    full weights as chunks, through its own filter chain (excluded variables are filled from the global model), or
///    declines (its policy may keep local models at the site) with a reason. Each model is checked against the global
///    model's structure (names, shapes, every value finite) and stored as `local-<site>.safetensors` in the
///    evaluation's folder.
/// 2. **Evaluate**: one round per model — the final global model first, then each submitted local model — in which
///    every site downloads the model (an `evaluate` task naming it in `config["model"]`) and answers with the metrics
///    of the model on its own held-out data (no values come back). The results form the `CrossSiteMatrix`
///    (`cross-site.json`).
///
/// Each step closes when every asked site answered or at the deadline; what is missing is recorded with the reason,
/// never waited for. The state (which models arrived, which rounds are done, the matrix so far) is saved after
/// every round in `state.json`, so a restarted server resumes the evaluation where it stopped.
///
/// Memory: the server holds the global model, the model being evaluated (read from its file for its round) and,
/// while local models stream in, one model per uploading site (assembled, checked, written, dropped).
public actor CrossSiteEvaluation<C: Clock>: FederationService, RoundHost where C.Duration == Duration {
    public let jobID: String
    public nonisolated let sites: [String]
    private let timeout: Duration
    private let folder: String
    private let taskConfig: [String: ConfigValue]
    private let modelMetadata: [String: String]
    /// Round numbers continue after training: `firstRound` asks for the local models, the next ones evaluate.
    private let firstRound: Int

    package var driver: RoundDriver<C>
    private var state: State
    private var reference = ParameterSet()
    private var phase: Phase = .idle
    private var inFlight: [String: Upload] = [:]
    /// The model the current evaluation round hands out.
    private var current: ParameterSet?

    private enum Phase: Equatable {
        case idle, submit
        case evaluate(model: String)
    }

    private struct Upload {
        var header: ResultHeader
        var assembler = ParameterAssembler()
        var scalars = 0
    }

    /// What is saved after every round.
    struct State: Codable {
        var submitted = false
        var received: [String] = []
        var evaluated: [String] = []
        var matrix: CrossSiteMatrix
    }

    /// - Parameters:
    ///   - firstRound: the round number of the submit step (training's last round + 1); evaluation rounds follow.
    ///   - timeout: each step's deadline.
    ///   - folder: where the local models and `state.json` are kept (created when missing; a saved state resumes).
    ///   - taskConfig: sent with every task (the job's pipeline, so a site evaluates with the job's preprocessing).
    ///   - modelMetadata: the `__metadata__` of every local model file kept (`JobConfiguration.modelMetadata`).
    public init(
        jobID: String, sites: [String], firstRound: Int, timeout: Duration, clock: C, folder: String,
        taskConfig: [String: ConfigValue] = [:], modelMetadata: [String: String] = [:]
    ) throws(FederationError) {
        self.modelMetadata = modelMetadata
        self.jobID = jobID
        self.sites = sites
        self.firstRound = firstRound
        self.timeout = timeout
        self.driver = RoundDriver(jobID: jobID, participants: sites, clock: clock)
        self.folder = folder
        self.taskConfig = taskConfig
        let statePath = folder + "/state.json"
        if let saved = FileManager.default.contents(atPath: statePath) {
            do { state = try JSONDecoder().decode(State.self, from: saved) } catch {
                throw FederationError(
                    .invalidConfiguration,
                    "the saved cross-site evaluation state \(statePath) is damaged; "
                        + "remove it to evaluate again", cause: "\(error)")
            }
        } else {
            state = State(matrix: CrossSiteMatrix(jobID: jobID, sites: sites))
        }
    }

    /// The job's events from now on (each call gets its own stream); the stream ends with the evaluation.
    public func observe() -> AsyncStream<JobEvent> { driver.observe() }

    public var isOver: Bool { driver.isOver }

    /// The matrix so far (complete once `run` has returned).
    public var matrix: CrossSiteMatrix { state.matrix }

    /// Stops the evaluation: `run` throws `.jobFailed(reason)`; waiting sites are released.
    public func abort(reason: String) {
        driver.abort(reason: reason)
        // Not started yet (training failed or was aborted): nothing will run, so end here.
        if phase == .idle { driver.end(.failed(reason)) }
    }

    // MARK: - Running

    /// Runs both steps (or what is left of them after a restart).
    /// - Parameter global: the final global model: evaluated first, and the reference every local model is checked
    ///   against (and completed from, for variables a site keeps to itself).
    public func run(global: ParameterSet) async throws(FederationError) -> CrossSiteMatrix {
        defer {
            phase = .idle
            current = nil
            inFlight = [:]
        }
        try await runJob { () async throws(FederationError) in
            reference = global
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw FederationError(
                    .jobFailed,
                    "the server cannot write cross-site evaluation files to \(folder); "
                        + "check its state folder", cause: "\(error)")
            }
            driver.emit(.crossSiteStarted(sites: sites))
            if !state.submitted {
                phase = .submit
                try await runStep(firstRound, kind: .submitModel, config: taskConfig)
                for site in sites where !state.received.contains(site) && state.matrix.missing[site] == nil {
                    state.matrix.missing[site] = "no model within \(timeout)"
                }
                state.submitted = true
                try save()
            }
            state.matrix.models = [CrossSiteMatrix.global] + sites.filter { state.received.contains($0) }
            for (i, model) in state.matrix.models.enumerated() where !state.evaluated.contains(model) {
                current = model == CrossSiteMatrix.global ? reference : try loadModel(of: model)
                phase = .evaluate(model: model)
                var config = taskConfig
                config["model"] = .string(model)
                try await runStep(firstRound + 1 + i, kind: .evaluate, config: config)
                for site in sites
                where state.matrix.results[model]?[site] == nil
                    && state.matrix.missing["\(model)@\(site)"] == nil
                {
                    state.matrix.missing["\(model)@\(site)"] = "no answer within \(timeout)"
                }
                current = nil
                state.evaluated.append(model)
                try save()
            }
        }
        return state.matrix
    }

    /// Hands one task to every site and waits until each answered or the deadline passed (what is missing is
    /// recorded by the caller, never waited for).
    private func runStep(_ round: Int, kind: TaskKind, config: [String: ConfigValue]) async throws(FederationError) {
        inFlight = [:]
        let tasks = sites.map { TaskAssignment(jobID: jobID, round: round, kind: kind, site: $0, config: config) }
        let outcome = await runRoundUntilAnswered(round, tasks: tasks, timeout: timeout)
        for site in inFlight.keys.sorted() {
            driver.emit(.resultRejected(round: round, site: site, reason: "still sending when the round closed"))
        }
        inFlight = [:]
        switch outcome {
        case .closed(let closure):
            driver.emit(.roundClosed(round: round, participants: driver.answered.sorted(), reason: closure.rawValue))
        case .retry: break
        case .failed(let reason), .aborted(let reason), .declined(let reason): throw FederationError(.jobFailed, reason)
        }
    }

    private func save() throws(FederationError) {
        let path = folder + "/state.json"
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            data = try encoder.encode(state)
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot encode the cross-site evaluation state",
                cause: "\(error)")
        }
        try DurableFile.write(data, to: path)
    }

    /// The stored local model of `site`.
    private func loadModel(of site: String) throws(FederationError) -> ParameterSet {
        let path = modelPath(site)
        do {
            let contents = try SafeTensorsFile.read(contentsOf: path)
            return try ParameterSet(
                contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) }
            )
            .reordered(like: reference)
        } catch let error as FederationError {
            throw FederationError(
                error.code,
                "the stored local model of \(site) (\(path)) does not match the global "
                    + "model: \(error.message)")
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot read the stored local model of \(site) (\(path)); remove "
                    + "\(folder)/state.json to evaluate again", cause: "\(error)")
        }
    }

    /// `local-<site>.safetensors` in the evaluation's folder.
    public nonisolated func modelPath(_ site: String) -> String { folder + "/" + Self.modelFileName(site) }

    static func modelFileName(_ site: String) -> String {
        "local-"
            + String(
                site.unicodeScalars.map { s in
                    (s.properties.isAlphabetic && s.isASCII) || ("0"..."9").contains(s)
                        || "-_.".unicodeScalars.contains(s)
                        ? Character(s) : "_"
                }.prefix(64)) + ".safetensors"
    }

    /// `cross-site.json` and a copy of every stored local model (`local-<site>.safetensors`) in `folder`.
    public func writeFiles(to folder: String) throws(FederationError) -> [JobFile] {
        let path = folder + "/cross-site.json"
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state.matrix).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot write \(path); check the server's state folder",
                cause: "\(error)")
        }
        var files = [JobFile(name: "cross-site.json", path: path)]
        for site in sites where state.received.contains(site) {
            let name = Self.modelFileName(site)
            let copy = folder + "/" + name
            if copy != modelPath(site) && !FileManager.default.fileExists(atPath: copy) {
                do { try FileManager.default.copyItem(atPath: modelPath(site), toPath: copy) } catch {
                    throw FederationError(
                        .invalidConfiguration,
                        "cannot copy the local model of \(site) to \(copy); check "
                            + "the server's state folder", cause: "\(error)")
                }
            }
            files.append(JobFile(name: name, path: copy))
        }
        return files
    }

    // MARK: - FederationService (sites)

    public func register(site: String) throws(FederationError) -> String {
        try driver.requireParticipant(site)
        return jobID
    }

    /// The site's task of the current step; waits for one (also before the evaluation has started); nil once the
    /// evaluation is over.
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        try await nextPendingTask(site: site)
    }

    /// The model an evaluation task names, as views into it (no copy).
    public func model(for task: TaskAssignment, maxScalars: Int) throws(FederationError) -> [ParameterChunk] {
        guard maxScalars > 0 else { throw FederationError(.invalidConfiguration, "chunk size must be positive") }
        guard case .evaluate(let model) = phase, let current, task.jobID == jobID, task.round == driver.round,
            task.kind == .evaluate, driver.isAsked(task.site), task.config["model"] == .string(model)
        else {
            throw FederationError(
                .staleRound,
                "task of round \(task.round) of job \(task.jobID) is not a current "
                    + "evaluation (round \(driver.round) of \(jobID))")
        }
        return current.chunks(maxScalars: maxScalars)
    }

    public func beginResult(_ header: ResultHeader) throws(FederationError) {
        do throws(FederationError) {
            try driver.requireParticipant(header.site)
            let round = driver.round
            guard header.jobID == jobID, header.round == round, driver.isAsked(header.site) else {
                throw FederationError(
                    .staleRound,
                    "result from \(header.site) for round \(header.round) of job "
                        + "\(header.jobID); current: round \(round) of \(jobID) (cross-site "
                        + "evaluation). Discarded")
            }
            guard !driver.answered.contains(header.site) else {
                throw FederationError(
                    .staleRound,
                    "\(header.site) already answered round \(round); the duplicate is "
                        + "discarded")
            }
            try ResultIntake.checkMetrics(header.metrics, from: header.site)
            inFlight[header.site] = Upload(header: header)
        } catch {
            driver.emit(.resultRejected(round: header.round, site: header.site, reason: error.message))
            throw error
        }
    }

    /// Submit step: one chunk of a local model, checked against the global model's tensor before it is kept.
    public func resultChunk(site: String, _ chunk: ParameterChunk) throws(FederationError) {
        let chunk = chunk.materialized()  // kept: values of its own, not its message's
        do throws(FederationError) {
            guard var upload = inFlight[site] else {
                throw FederationError(.staleRound, "chunk from \(site) outside a result stream")
            }
            guard phase == .submit else {
                throw FederationError(.shapeMismatch, "an evaluation answer carries metrics only, no model values")
            }
            guard let tensor = reference[chunk.tensor] else {
                throw FederationError(.shapeMismatch, "tensor '\(chunk.tensor)' is not part of the model")
            }
            guard tensor.shape == chunk.shape else {
                throw FederationError(
                    .shapeMismatch,
                    "tensor '\(chunk.tensor)' has shape \(chunk.shape), the model's is "
                        + "\(tensor.shape)")
            }
            guard chunk.values.count <= reference.scalarCount - upload.scalars else {
                throw FederationError(.tooLarge, "the model exceeds the global model's \(reference.byteCount) bytes")
            }
            if let i = chunk.values.firstIndex(where: { !$0.isFinite }) {
                throw FederationError(
                    .nonFinite,
                    "tensor '\(chunk.tensor)' holds \(chunk.values[i]) at element "
                        + "\(chunk.offset + i - chunk.values.startIndex)")
            }
            try upload.assembler.append(chunk)
            upload.scalars += chunk.values.count
            inFlight[site] = upload
        } catch {
            inFlight[site] = nil
            driver.emit(.resultRejected(round: driver.round, site: site, reason: error.message))
            throw FederationError(error.code, "local model of \(site) rejected: \(error.message)")
        }
    }

    public func endResult(site: String) throws(FederationError) {
        guard let upload = inFlight.removeValue(forKey: site) else {
            throw FederationError(.staleRound, "no result stream open for \(site)")
        }
        do throws(FederationError) {
            switch phase {
            case .submit: try receiveModel(upload, from: site)
            case .evaluate(let model): try receiveEvaluation(upload.header, of: model, from: site)
            case .idle: throw FederationError(.staleRound, "no cross-site evaluation round is open")
            }
        } catch {
            driver.emit(.resultRejected(round: driver.round, site: site, reason: error.message))
            throw FederationError(error.code, "result of \(site) rejected: \(error.message)")
        }
        driver.answer(site)
    }

    /// A local model (completed from the global model where the site kept variables to itself), or the site's
    /// reason for declining (a payload and no values).
    private func receiveModel(_ upload: Upload, from site: String) throws(FederationError) {
        if upload.scalars == 0 {
            let reason = String(decoding: upload.header.payload.prefix(1000), as: UTF8.self)
            state.matrix.missing[site] = reason.isEmpty ? "the site sent no model" : "the site declined: \(reason)"
            driver.emit(.resultRejected(round: driver.round, site: site, reason: state.matrix.missing[site] ?? ""))
            return
        }
        var sent = try upload.assembler.finish()
        try sent.checkSubset(of: reference)
        var tensors: [ParameterTensor] = []
        for t in reference.tensors { tensors.append(sent[t.name] ?? t) }
        sent = ParameterSet(tensors)
        let path = modelPath(site)
        do {
            try SafeTensorsFile.write(
                sent.tensors.map { SafeTensorEntry(name: $0.name, shape: $0.shape, values: $0.values) },
                metadata: modelMetadata.merging(["job": jobID, "site": site, "kind": "local model"]) { $1 },
                to: path)
        } catch {
            throw FederationError(
                .invalidConfiguration, "the server cannot store the local model of \(site) at \(path)",
                cause: "\(error)")
        }
        state.received.append(site)
        driver.emit(.localModelReceived(site: site))
    }

    private func receiveEvaluation(_ header: ResultHeader, of model: String, from site: String) throws(FederationError)
    {
        guard !header.metrics.isEmpty else {
            let reason = String(decoding: header.payload.prefix(1000), as: UTF8.self)
            state.matrix.missing["\(model)@\(site)"] = reason.isEmpty ? "the site reported no metrics" : reason
            driver.emit(.resultRejected(round: driver.round, site: site, reason: "no metrics for \(model): \(reason)"))
            return
        }
        if let bad = header.metrics.first(where: { !$0.value.isFinite }) {
            throw FederationError(.nonFinite, "metric '\(bad.key)' of \(model) is \(bad.value)")
        }
        state.matrix.results[model, default: [:]][site] = header.metrics
        driver.emit(.crossSiteEvaluated(model: model, site: site, metrics: header.metrics))
    }

    public func abandonResult(site: String, reason: String) {
        guard inFlight.removeValue(forKey: site) != nil else { return }
        driver.emit(.resultRejected(round: driver.round, site: site, reason: reason))
    }

    public func heartbeat(site: String) { driver.seen(site) }

    /// Seconds since each site was last heard from during the evaluation.
    func progressSeen() -> [String: Double] { driver.secondsSinceSeen() }
}
