import FederationCore
import Foundation
import SafeTensorsFormat

/// One job the server runs: a training `Coordinator`, or a statistics query. The `JobManager` routes the sites'
/// calls (`FederationService`) to the running job and the admin's calls to these hooks.
public protocol JobRunner: FederationService {
    /// The sites taking part.
    var participants: [String] { get }
    /// Runs the job to its end; resumes from the store's checkpoint when there is one.
    /// - Throws: `.jobFailed` with the reason when the job fails or is aborted.
    func execute() async throws(FederationError)
    /// Stops the job; `execute()` then throws `.jobFailed(reason)`.
    func abort(reason: String) async
    /// The job's events from now on; the stream ends with the job.
    func observe() async -> AsyncStream<JobEvent>
    /// True once the job has finished, failed or been aborted.
    var isOver: Bool { get async }
    func progress() async -> JobProgress
    /// Writes the job's files (model, metrics, results) into `folder` and lists them.
    func writeFiles(to folder: String) async throws(FederationError) -> [JobFile]
}

extension Coordinator: JobRunner {
    public nonisolated var participants: [String] { configuration.sites }

    public func execute() async throws(FederationError) { _ = try await run() }

    /// `global.safetensors` (the current global model, with the job's `modelMetadata`) and `metrics.json` (every
    /// closed round: participants, each site's reported metrics, why the round closed).
    public func writeFiles(to folder: String) async throws(FederationError) -> [JobFile] {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let model = folder + "/global.safetensors"
            let metrics = folder + "/metrics.json"
            // A model a failed update made non-finite is not handed out: the round checkpoints hold the last good one.
            guard globalIsFinite else {
                try? FileManager.default.removeItem(atPath: model)
                try encodeMetrics(to: metrics)
                return [JobFile(name: "metrics.json", path: metrics)]
            }
            try SafeTensorsFile.write(
                global.tensors.map { SafeTensorEntry(name: $0.name, shape: $0.shape, values: $0.values) },
                metadata: configuration.modelMetadata.merging(
                    ["job": configuration.jobID, "round": String(completedRounds)]) { $1 }, to: model)
            try encodeMetrics(to: metrics)
            return [JobFile(name: "global.safetensors", path: model), JobFile(name: "metrics.json", path: metrics)]
        } catch let error as FederationError {
            throw error
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot write the files of job \(configuration.jobID) to \(folder); "
                    + "check the server's state folder", cause: "\(error)")
        }
    }
}

extension Coordinator {
    fileprivate func encodeMetrics(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(
            JobMetricsFile(jobID: configuration.jobID, completedRounds: completedRounds, rounds: records)
        )
        .write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// `metrics.json` of a training job.
public struct JobMetricsFile: Sendable, Codable, Equatable {
    public var jobID: String
    public var completedRounds: Int
    public var rounds: [RoundRecord]
}

/// What the server needs to know of a pipeline before it runs: its kind, length and sites.
public struct JobPlan: Sendable, Equatable {
    public var kind: JobKind
    public var rounds: Int
    public var sites: [String]

    public init(kind: JobKind, rounds: Int, sites: [String]) {
        self.kind = kind
        self.rounds = rounds
        self.sites = sites
    }
}

/// Turns a submitted pipeline into a runnable job. The server's application layer implements it (the model, the
/// strategy, the statistics query come from there); the manager only schedules.
public protocol JobFactory: Sendable {
    /// Validates a pipeline. Throws `.invalidConfiguration` naming what is wrong.
    func plan(pipeline: String) throws(FederationError) -> JobPlan
    /// The runner of job `jobID`, checkpointing to `store` (and resuming from it). `submittedBy` is the admin's
    /// certificate name: it travels with every task (`submitted_by`), for the sites' policies.
    func makeRunner(jobID: String, pipeline: String, submittedBy: String, store: SQLiteCheckpointStore)
        async throws(FederationError) -> any JobRunner
}
