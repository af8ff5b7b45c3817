import FederationCore
import Foundation
import GRDB
import SafeTensorsFormat

/// Server state on disk: rounds, participants and metrics in SQLite (through GRDB); the global model after every
/// round as a safetensors file (`<folder>/<job>/round-0003.safetensors`). The model file is written first
/// (atomically), then the round row in one transaction, so a crash between the two leaves the previous round as
/// the checkpoint: a restarted server redoes the round, and no result is ever counted twice.
public final class SQLiteCheckpointStore: CheckpointStore {
    let database: DatabaseQueue
    public let folder: String

    /// Opens (creating if needed) `<folder>/server.sqlite`.
    public init(folder: String) throws(FederationError) {
        self.folder = folder
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            database = try DatabaseQueue(path: folder + "/server.sqlite")
            try database.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS round (
                            job_id TEXT NOT NULL,
                            round INTEGER NOT NULL,
                            attempt INTEGER NOT NULL,
                            participants TEXT NOT NULL,
                            metrics TEXT NOT NULL,
                            closed_by TEXT NOT NULL,
                            model_path TEXT NOT NULL,
                            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                            PRIMARY KEY (job_id, round)
                        )
                        """)
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS job (
                            id TEXT PRIMARY KEY,
                            seq INTEGER NOT NULL,
                            name TEXT NOT NULL,
                            kind TEXT NOT NULL,
                            pipeline TEXT NOT NULL,
                            state TEXT NOT NULL,
                            rounds INTEGER NOT NULL,
                            sites TEXT NOT NULL,
                            reason TEXT NOT NULL DEFAULT '',
                            submitted_by TEXT NOT NULL,
                            submitted_at TEXT NOT NULL,
                            finished_at TEXT NOT NULL DEFAULT ''
                        )
                        """)
                for statement in Self.auditSchema { try db.execute(sql: statement) }
            }
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot open the server state in \(folder); check that the folder is writable",
                cause: "\(error)")
        }
    }

    /// Writes the round's model (and the strategy's state, when it keeps one) durably, then the round row: a crash
    /// in between leaves the previous round as the checkpoint. The model file carries `modelMetadata` with the job
    /// and the round.
    public func save(
        jobID: String, completedRound: Int, model: ParameterSet, serverState: ParameterSet,
        records: [RoundRecord], modelMetadata: [String: String]
    ) async throws(FederationError) {
        guard let record = records.last(where: { $0.round == completedRound }) else {
            throw FederationError(.invalidConfiguration, "no record for round \(completedRound)")
        }
        let path = roundPath(jobID: jobID, round: completedRound)
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true)
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot create the checkpoint folder of job \(jobID) in "
                    + "\(folder)", cause: "\(error)")
        }
        let metadata = ["job": jobID, "round": String(completedRound)]
        try DurableFile.write(
            SafeTensorsFile.encode(Self.entries(model), metadata: modelMetadata.merging(metadata) { $1 }), to: path)
        let statePath = Self.serverStatePath(path)
        if serverState.tensors.isEmpty {
            try? FileManager.default.removeItem(atPath: statePath)
        } else {
            try DurableFile.write(SafeTensorsFile.encode(Self.entries(serverState), metadata: metadata), to: statePath)
        }
        do {
            let participants = String(decoding: try JSONEncoder().encode(record.participants), as: UTF8.self)
            let metrics = String(decoding: try JSONEncoder().encode(record.metrics), as: UTF8.self)
            try await database.write { db in
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO round (job_id, round, attempt, participants, metrics, closed_by, model_path)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [jobID, completedRound, record.attempt, participants, metrics, record.closedBy, path])
            }
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot checkpoint round \(completedRound) of job \(jobID) in "
                    + "\(folder)", cause: "\(error)")
        }
    }

    public func load(jobID: String) async throws(FederationError) -> SavedCheckpoint? {
        do {
            let rows = try await database.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM round WHERE job_id = ? ORDER BY round", arguments: [jobID])
            }
            guard let last = rows.last else { return nil }
            var records: [RoundRecord] = []
            for row in rows {
                let participants = try JSONDecoder().decode(
                    [String].self, from: Data((row["participants"] as String).utf8))
                let metrics = try JSONDecoder().decode(
                    [String: [String: Double]].self,
                    from: Data((row["metrics"] as String).utf8))
                records.append(
                    RoundRecord(
                        round: row["round"], attempt: row["attempt"], participants: participants,
                        metrics: metrics, closedBy: row["closed_by"]))
            }
            let modelPath: String = last["model_path"]
            // safetensors stores tensors by name; keep the file's order (sorted), the coordinator checks the structure.
            let model = Self.parameters(try SafeTensorsFile.read(contentsOf: modelPath))
            let statePath = Self.serverStatePath(modelPath)
            let state =
                FileManager.default.fileExists(atPath: statePath)
                ? Self.parameters(try SafeTensorsFile.read(contentsOf: statePath)) : ParameterSet()
            return SavedCheckpoint(completedRound: last["round"], model: model, serverState: state, records: records)
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot read the checkpoint of job \(jobID) from \(folder): the "
                    + "state is damaged; restore the folder or start the job again", cause: "\(error)")
        }
    }

    private func roundPath(jobID: String, round: Int) -> String {
        folder + "/" + safe(jobID) + String(format: "/round-%04d.safetensors", round)
    }

    /// `round-0003.safetensors` → `round-0003.server-state.safetensors` (the strategy's optimiser moments).
    static func serverStatePath(_ modelPath: String) -> String {
        String(modelPath.dropLast(".safetensors".count)) + ".server-state.safetensors"
    }

    private static func entries(_ set: ParameterSet) -> [SafeTensorEntry] {
        set.tensors.map { SafeTensorEntry(name: $0.name, shape: $0.shape, values: $0.values) }
    }

    private static func parameters(_ contents: SafeTensorsFile.Contents) -> ParameterSet {
        ParameterSet(contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
    }

    /// The global model after `round` (for per-round evaluation and downloads).
    public func loadRound(jobID: String, round: Int) async throws(FederationError) -> ParameterSet {
        let path = folder + "/" + safe(jobID) + String(format: "/round-%04d.safetensors", round)
        do {
            let contents = try SafeTensorsFile.read(contentsOf: path)
            return ParameterSet(
                contents.entries.map { ParameterTensor(name: $0.name, shape: $0.shape, values: $0.values) })
        } catch {
            throw FederationError(
                .invalidConfiguration, "no model for round \(round) of job \(jobID): \(error.message)")
        }
    }

    /// The folder of a job's files in the store (round models, job state).
    public func jobFolder(_ jobID: String) -> String { folder + "/" + safe(jobID) }

    func safe(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }

    // MARK: - Jobs

    /// Stores a newly submitted job.
    public func insert(_ job: JobRecord) async throws(FederationError) {
        do {
            let sites = String(decoding: try JSONEncoder().encode(job.sites), as: UTF8.self)
            try await database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO job (id, seq, name, kind, pipeline, state, rounds, sites, reason, submitted_by, submitted_at, finished_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        job.id, job.sequence, job.name, job.kind.rawValue, job.pipeline, job.state.rawValue,
                        job.rounds, sites, job.reason, job.submittedBy, job.submittedAt, job.finishedAt,
                    ])
            }
        } catch {
            throw FederationError(.invalidConfiguration, "cannot store job \(job.id) in \(folder)", cause: "\(error)")
        }
    }

    /// Records a job's new state (and why, and when it ended).
    public func update(jobID: String, state: JobState, reason: String = "", finishedAt: String = "")
        async throws(FederationError)
    {
        do {
            try await database.write { db in
                try db.execute(
                    sql: "UPDATE job SET state = ?, reason = ?, finished_at = ? WHERE id = ?",
                    arguments: [state.rawValue, reason, finishedAt, jobID])
            }
        } catch {
            throw FederationError(.invalidConfiguration, "cannot update job \(jobID) in \(folder)", cause: "\(error)")
        }
    }

    /// Every job, in submission order, with the rounds checkpointed for each.
    public func jobs() async throws(FederationError) -> [JobRecord] {
        do {
            let rows = try await database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT job.*, (SELECT COALESCE(MAX(round), 0) FROM round WHERE round.job_id = job.id) AS done
                        FROM job ORDER BY seq
                        """)
            }
            var out: [JobRecord] = []
            for row in rows {
                let sites = try JSONDecoder().decode([String].self, from: Data((row["sites"] as String).utf8))
                guard let kind = JobKind(rawValue: row["kind"]), let state = JobState(rawValue: row["state"]) else {
                    throw FederationError(
                        .invalidConfiguration, "job \(row["id"] as String) has an unknown kind or state")
                }
                out.append(
                    JobRecord(
                        id: row["id"], sequence: row["seq"], name: row["name"], kind: kind, pipeline: row["pipeline"],
                        state: state, rounds: row["rounds"], sites: sites, reason: row["reason"],
                        submittedBy: row["submitted_by"], submittedAt: row["submitted_at"],
                        finishedAt: row["finished_at"], completedRounds: row["done"]))
            }
            return out
        } catch let error as FederationError {
            throw error
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot read the jobs from \(folder): the state is damaged; restore "
                    + "the folder or start with an empty one", cause: "\(error)")
        }
    }
}

/// A job as stored by the server.
public struct JobRecord: Sendable, Equatable {
    public var id: String
    public var sequence: Int
    public var name: String
    public var kind: JobKind
    public var pipeline: String
    public var state: JobState
    public var rounds: Int
    public var sites: [String]
    public var reason: String
    public var submittedBy: String
    public var submittedAt: String
    public var finishedAt: String
    /// Rounds checkpointed so far.
    public var completedRounds: Int

    public init(
        id: String, sequence: Int, name: String, kind: JobKind, pipeline: String, state: JobState, rounds: Int,
        sites: [String], reason: String = "", submittedBy: String, submittedAt: String, finishedAt: String = "",
        completedRounds: Int = 0
    ) {
        self.id = id
        self.sequence = sequence
        self.name = name
        self.kind = kind
        self.pipeline = pipeline
        self.state = state
        self.rounds = rounds
        self.sites = sites
        self.reason = reason
        self.submittedBy = submittedBy
        self.submittedAt = submittedAt
        self.finishedAt = finishedAt
        self.completedRounds = completedRounds
    }
}
