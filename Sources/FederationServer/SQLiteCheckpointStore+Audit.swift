import FederationCore
import Foundation
import GRDB

/// The audit log: table `audit` of `<state>/server.sqlite`, one row per `AuditEntry`, numbered by `seq` from 1.
///
/// Append-only: triggers abort any `UPDATE` or `DELETE` of a row (`the audit log is append-only`), so neither the
/// server nor a slip at the `sqlite3` prompt rewrites history; the table lives in the same database as the jobs, so
/// a backup of the state folder backs it up too. (Someone who can write the file can drop the triggers: the log
/// guards against mistakes, not against the server machine's root.)
extension SQLiteCheckpointStore {
    /// The statements that create the table and its triggers (run by `init`; idempotent).
    static let auditSchema = [
        """
        CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            job_id TEXT NOT NULL,
            site TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS audit_job ON audit (job_id, seq)",
        """
        CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
        """
        CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
    ]

    /// Appends `entry`, stamped with the time now; returns it with its sequence number and time.
    /// - Throws: `.invalidConfiguration` when the database cannot be written.
    @discardableResult
    public func appendAudit(_ entry: AuditEntry) async throws(FederationError) -> AuditEntry {
        var stored = entry
        stored.time = Self.auditTime(Date())
        let time = stored.time
        do {
            let sequence = try await database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO audit (time, kind, actor, role, action, job_id, site, outcome, detail)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        time, entry.kind.rawValue, entry.actor, entry.role, entry.action, entry.jobID, entry.site,
                        entry.outcome.rawValue, entry.detail,
                    ])
                return db.lastInsertedRowID
            }
            stored.sequence = Int(sequence)
            return stored
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot append to the audit log in \(folder)/server.sqlite", cause: "\(error)")
        }
    }

    /// ISO 8601 UTC with milliseconds: the audit log's times, and the sites' last contacts.
    public static func auditTime(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// The entries about `jobID` (every entry when nil), oldest first.
    /// - Throws: `.invalidConfiguration` when the database cannot be read or holds a row it does not understand.
    public func auditEntries(jobID: String? = nil) async throws(FederationError) -> [AuditEntry] {
        do {
            let rows = try await database.read { db -> [Row] in
                if let jobID {
                    return try Row.fetchAll(
                        db, sql: "SELECT * FROM audit WHERE job_id = ? ORDER BY seq", arguments: [jobID])
                }
                return try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY seq")
            }
            return try rows.map { (row: Row) throws(FederationError) -> AuditEntry in
                let kindText: String = row["kind"]
                let outcomeText: String = row["outcome"]
                guard let kind = AuditEntry.Kind(rawValue: kindText),
                    let outcome = AuditEntry.Outcome(rawValue: outcomeText)
                else {
                    throw FederationError(
                        .invalidConfiguration,
                        "audit row \(row["seq"] ?? "?") has kind '\(kindText)', outcome "
                            + "'\(outcomeText)': written by a newer server?")
                }
                return AuditEntry(
                    sequence: row["seq"], time: row["time"], kind: kind, actor: row["actor"], role: row["role"],
                    action: row["action"], jobID: row["job_id"], site: row["site"], outcome: outcome,
                    detail: row["detail"])
            }
        } catch let error as FederationError {
            throw error
        } catch {
            throw FederationError(
                .invalidConfiguration, "cannot read the audit log in \(folder)/server.sqlite", cause: "\(error)")
        }
    }
}
