import Foundation
import GRDB

/// The one way a site opens its own SQLite files (the privacy ledger, the egress log): the folder created if
/// needed, the file opened (or an in-memory database for tests), the schema applied once.
public enum SiteDatabase {
    /// - Parameters:
    ///   - path: the file; nil keeps the database in memory.
    ///   - schema: SQL run in one transaction when the database opens (`CREATE TABLE IF NOT EXISTS …`).
    /// - Throws: the underlying error (GRDB's or the file system's); callers wrap it in their own error type.
    public static func open(path: String?, schema: String) throws -> DatabaseQueue {
        let database: DatabaseQueue
        if let path {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            database = try DatabaseQueue(path: path)
        } else {
            database = try DatabaseQueue()
        }
        try database.write { db in try db.execute(sql: schema) }
        return database
    }
}
