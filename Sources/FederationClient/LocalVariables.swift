import ExperimentTracking
import FederationCore
import Foundation
import SafeTensorsFormat

/// The variables a site keeps to itself during a job, and their values across the job's rounds (personalised
/// federated learning): the tensors its kit's `filters.yaml` excludes (`exclude_variables`) and, when the job asks
/// for FedBN (`federation.personalization: fedbn`, Li et al. 2021), every normalisation layer of the model
/// (`Module.normalizationVariables`).
///
/// None of them leaves the site, so the server's values for them never change; the site therefore puts its own
/// values back into every model it downloads for the job (`restore`) before it trains or evaluates, and keeps the
/// values its training produced (`keep`). In the first round, before anything is kept, the global model's values
/// (the job's initialisation) are used.
///
/// Values are kept for one job at a time in memory; with a `folder` (`tessera client`: `<kit>/local-variables`)
/// each job's values are also written to `<folder>/<job>.safetensors` after every round (atomically), so a
/// restarted client picks them up again. Without a folder they live in memory only: a restarted client starts
/// again from the global model's values for them.
public struct LocalVariables: Sendable {
    /// Where each job's values are written; nil: memory only.
    public let folder: String?
    /// The job whose values `values` holds.
    private var jobID: String?
    private var values = ParameterSet()

    /// The folder's name inside a site's kit (`tessera client`).
    public static let folderName = "local-variables"

    public init(folder: String? = nil) {
        self.folder = folder
    }

    /// The names of `model`'s tensors that stay at the site in `task`: those matching the site's own `patterns`
    /// (its `exclude_variables`), and the model's normalisation layers when the task's job asks for FedBN
    /// (`config["personalization"] == "fedbn"`, named by `trainer`).
    /// - Throws: `.invalidConfiguration` when the job asks for a personalisation this site does not know, or the
    ///   trainer cannot name the model's normalisation layers.
    public static func names(
        in model: ParameterSet, task: TaskAssignment, patterns: [ExcludeVariablesFilter.Pattern],
        trainer: any LocalTrainer
    ) async throws(FederationError) -> Set<String> {
        var names = Set(model.names.filter { name in patterns.contains { $0.matches(name) } })
        switch task.config["personalization"] {
        case nil, .string("none")?: break
        case .string("fedbn")?:
            let normalization = Set(try await trainer.normalizationVariables(for: task))
            names.formUnion(model.names.filter { normalization.contains($0) })
        case let other?:
            throw FederationError(
                .invalidConfiguration,
                "the job asks for personalization \(other), which this site does not know (fedbn or none); the "
                    + "server and this site run different tessera versions")
        }
        return names
    }

    /// The site's own patterns: those of the `exclude_variables` filters in its chain.
    public static func patterns(of filters: FilterChain) -> [ExcludeVariablesFilter.Pattern] {
        filters.filters.compactMap { ($0 as? ExcludeVariablesFilter)?.patterns }.flatMap { $0 }
    }

    /// `model` with the values the site kept for `jobID` in place of the server's (tensors it kept nothing for
    /// stay as they are). Reads the job's file from `folder` when the values in memory are of another job.
    /// - Throws: `.shapeMismatch` when a kept tensor is not part of `model` or has another shape (the job's model
    ///   changed under the same job id); `.invalidConfiguration` when the job's file cannot be read.
    public mutating func restore(into model: inout ParameterSet, jobID: String) throws(FederationError) {
        try load(jobID)
        guard !values.tensors.isEmpty else { return }
        do { try values.checkSubset(of: model) } catch {
            throw FederationError(
                .shapeMismatch,
                "the values this site kept for job \(jobID) do not fit the job's model: \(error.message)")
        }
        model = ParameterSet(model.tensors.map { values[$0.name] ?? $0 })
    }

    /// Keeps the values of the tensors `names` of `trained` (the model the site trained in a round of `jobID`), and
    /// writes them to the job's file when there is a folder.
    /// - Throws: `.invalidConfiguration` when the file cannot be written (the values stay kept in memory).
    public mutating func keep(_ names: Set<String>, of trained: ParameterSet, jobID: String) throws(FederationError) {
        guard !names.isEmpty else { return }
        self.jobID = jobID
        values = ParameterSet(trained.tensors.filter { names.contains($0.name) })
        guard let path = path(jobID) else { return }
        do {
            try FileManager.default.createDirectory(atPath: folder ?? ".", withIntermediateDirectories: true)
            try SafeTensorsFile.write(
                values.tensors.map { SafeTensorEntry(name: $0.name, shape: $0.shape, values: $0.values) },
                metadata: ["job": jobID, "kind": "site-local variables"], to: path)
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot write the values this site keeps for job \(jobID) to \(path); a restarted client would "
                    + "start from the global model's values", cause: "\(error)")
        }
    }

    /// The values kept for `jobID` (empty when none).
    public mutating func kept(jobID: String) throws(FederationError) -> ParameterSet {
        try load(jobID)
        return values
    }

    /// Makes `values` the job's: from memory, from its file, or empty.
    private mutating func load(_ jobID: String) throws(FederationError) {
        guard self.jobID != jobID else { return }
        self.jobID = jobID
        values = ParameterSet()
        guard let path = path(jobID), FileManager.default.fileExists(atPath: path) else { return }
        do {
            let contents = try SafeTensorsFile.read(contentsOf: path)
            guard contents.metadata["job"] == jobID else { return }  // another job's id reduced to the same name
            values = ParameterSet(
                contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot read the values this site kept for job \(jobID) from \(path); remove the file to start "
                    + "again from the global model's values", cause: "\(error)")
        }
    }

    /// `<folder>/<job>.safetensors`, the job id as one file-name component (`EventFileWriter.component`); nil
    /// without a folder. Two ids that reduce to the same name are told apart by the file's `job` metadata.
    func path(_ jobID: String) -> String? {
        folder.map { $0 + "/" + EventFileWriter.component(jobID) + ".safetensors" }
    }
}
