import FederationCore
import Foundation

/// A training job with cross-site evaluation after its last round: the `Coordinator` runs the rounds, then a
/// `CrossSiteEvaluation` asks every site for its local model and has every model evaluated at every site. One
/// runner for the `JobManager`: the sites' calls go to whichever step is running, the events of both form one
/// stream, and the job's files are both steps' files.
///
/// A site that polls while training ends waits for its evaluation task (its long-poll moves on to the evaluation);
/// a restarted server resumes training from its checkpoint and the evaluation from its saved state.
public actor TrainingJob<C: Clock>: JobRunner where C.Duration == Duration {
    public let coordinator: Coordinator<C>
    public let evaluation: CrossSiteEvaluation<C>
    public nonisolated let participants: [String]
    private var evaluating = false
    private var failure: String?
    private var finished = false
    private var observers = EventFanout()

    public init(coordinator: Coordinator<C>, evaluation: CrossSiteEvaluation<C>) {
        self.coordinator = coordinator
        self.evaluation = evaluation
        self.participants = coordinator.configuration.sites
    }

    public func observe() -> AsyncStream<JobEvent> { observers.observe() }

    private func emit(_ event: JobEvent) { observers.emit(event) }

    public func execute() async throws(FederationError) {
        do throws(FederationError) {
            // Each step's events pass on (not its end: the job ends after both), in order: the evaluation starts
            // only once training's events are through.
            let training = forward(await coordinator.observe())
            do throws(FederationError) { try await coordinator.execute() } catch {
                await training.value
                throw error
            }
            await training.value
            let evaluationEvents = forward(await evaluation.observe())
            evaluating = true
            do throws(FederationError) { _ = try await evaluation.run(global: await coordinator.global) } catch {
                await evaluationEvents.value
                throw error
            }
            await evaluationEvents.value
        } catch {
            failure = error.message
            await evaluation.abort(reason: error.message)
            emit(.jobFailed(reason: error.message))
            observers.finish()
            throw error
        }
        finished = true
        emit(.jobFinished)
        observers.finish()
    }

    private func forward(_ events: AsyncStream<JobEvent>) -> Task<Void, Never> {
        Task { for await event in events where !event.isTerminal { await self.emit(event) } }
    }

    public func abort(reason: String) async {
        if evaluating {
            await evaluation.abort(reason: reason)
        } else {
            await coordinator.abort(reason: reason)
            await evaluation.abort(reason: reason)
        }
    }

    public var isOver: Bool { finished || failure != nil }

    public func progress() async -> JobProgress {
        var progress = await coordinator.progress()
        guard evaluating else { return progress }
        progress.currentRound = 0
        let seen = await evaluation.progressSeen()
        for i in progress.siteStates.indices {
            if let s = seen[progress.siteStates[i].site] {
                progress.siteStates[i].secondsSinceSeen = min(progress.siteStates[i].secondsSinceSeen ?? s, s)
            }
        }
        return progress
    }

    /// The coordinator's files (`global.safetensors`, `metrics.json`), then `cross-site.json` and the local models
    /// once the evaluation has started.
    public func writeFiles(to folder: String) async throws(FederationError) -> [JobFile] {
        var files = try await coordinator.writeFiles(to: folder)
        if evaluating || finished { files += try await evaluation.writeFiles(to: folder) }
        return files
    }

    // MARK: - Sites

    public func register(site: String) async throws(FederationError) -> String {
        try await coordinator.register(site: site)
    }

    /// Training's next task; once training has finished, the evaluation's (waiting for it to hand one out).
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        if !evaluating {
            if let task = try await coordinator.nextTask(site: site) { return task }
            // nil: training is over (or this poll was cancelled, which the evaluation's poll sees at once).
            guard await coordinator.finished, failure == nil else { return nil }
        }
        return try await evaluation.nextTask(site: site)
    }

    public func model(for task: TaskAssignment, maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        task.kind == .evaluate
            ? try await evaluation.model(for: task, maxScalars: maxScalars)
            : try await coordinator.model(for: task, maxScalars: maxScalars)
    }

    public func modelDownload(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?
    ) async throws(FederationError) -> ModelDownload {
        task.kind == .evaluate
            ? try await evaluation.modelDownload(for: task, maxScalars: maxScalars, held: held)
            : try await coordinator.modelDownload(for: task, maxScalars: maxScalars, held: held)
    }

    public func beginResult(_ header: ResultHeader) async throws(FederationError) {
        evaluating ? try await evaluation.beginResult(header) : try await coordinator.beginResult(header)
    }

    public func resultChunk(site: String, _ chunk: ParameterChunk) async throws(FederationError) {
        evaluating
            ? try await evaluation.resultChunk(site: site, chunk) : try await coordinator.resultChunk(site: site, chunk)
    }

    public func endResult(site: String) async throws(FederationError) {
        evaluating ? try await evaluation.endResult(site: site) : try await coordinator.endResult(site: site)
    }

    public func abandonResult(site: String, reason: String) async {
        evaluating
            ? await evaluation.abandonResult(site: site, reason: reason)
            : await coordinator.abandonResult(site: site, reason: reason)
    }

    public func heartbeat(site: String) async {
        evaluating ? await evaluation.heartbeat(site: site) : await coordinator.heartbeat(site: site)
    }
}
