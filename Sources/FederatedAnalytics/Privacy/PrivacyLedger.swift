import Foundation
import GRDB

/// One charge against a site's budget.
public struct PrivacyCharge: Sendable, Codable, Equatable {
    public var feature: String
    /// The noisy primitive: count, sum, squared-deviations, histogram, frequencies.
    public var primitive: String
    public var epsilon: Double
    public var delta: Double

    public init(feature: String, primitive: String, epsilon: Double, delta: Double) {
        self.feature = feature
        self.primitive = primitive
        self.epsilon = epsilon
        self.delta = delta
    }
}

/// The per-site privacy budget ledger, persisted in SQLite (through GRDB): every ε and δ a site spent, per query.
/// A query is charged as a whole, in one transaction, before anything is released; one that would take the site
/// past its budget is refused and nothing is recorded. Training-time DP filters will charge the same ledger.
public final class PrivacyLedger: Sendable {
    private let database: DatabaseQueue

    /// Opens (creating if needed) the ledger at `path`; `nil` keeps it in memory (tests).
    public init(path: String?) throws(AnalyticsError) {
        do {
            if let path {
                let folder = (path as NSString).deletingLastPathComponent
                if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
                database = try DatabaseQueue(path: path)
            } else {
                database = try DatabaseQueue()
            }
            try database.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS privacy_charge (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        site TEXT NOT NULL,
                        query TEXT NOT NULL,
                        feature TEXT NOT NULL,
                        primitive TEXT NOT NULL,
                        epsilon REAL NOT NULL CHECK (epsilon >= 0),
                        delta REAL NOT NULL CHECK (delta >= 0),
                        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                    )
                    """)
            }
        } catch {
            throw AnalyticsError(.ledger, "cannot open the privacy ledger at \(path ?? ":memory:"); check the path is writable",
                                 cause: "\(error)")
        }
    }

    /// Total (ε, δ) the site has spent.
    public func spent(site: String) throws(AnalyticsError) -> (epsilon: Double, delta: Double) {
        do {
            return try database.read { db in
                let row = try Row.fetchOne(db, sql: "SELECT COALESCE(SUM(epsilon), 0) AS e, COALESCE(SUM(delta), 0) AS d FROM privacy_charge WHERE site = ?", arguments: [site])
                return (row?["e"] ?? 0, row?["d"] ?? 0)
            }
        } catch {
            throw AnalyticsError(.ledger, "cannot read the privacy ledger", cause: "\(error)")
        }
    }

    /// Records every charge of a query atomically, or none.
    /// - Throws: `.budgetExceeded` (naming spent, asked and budget) when the site's total would pass its policy.
    public func charge(site: String, query: String, charges: [PrivacyCharge], policy: SitePolicy) throws(AnalyticsError) {
        let askedEpsilon = charges.reduce(0) { $0 + $1.epsilon }
        let askedDelta = charges.reduce(0) { $0 + $1.delta }
        if askedEpsilon > policy.maxEpsilonPerQuery + 1e-12 {
            throw AnalyticsError(.budgetExceeded, "query '\(query)' asks ε = \(fmt(askedEpsilon)) at site \(site), more than its "
                                 + "max_epsilon_per_query \(fmt(policy.maxEpsilonPerQuery)); lower the features' epsilon")
        }
        do {
            try database.write { db in
                let row = try Row.fetchOne(db, sql: "SELECT COALESCE(SUM(epsilon), 0) AS e, COALESCE(SUM(delta), 0) AS d FROM privacy_charge WHERE site = ?", arguments: [site])
                let spentE: Double = row?["e"] ?? 0, spentD: Double = row?["d"] ?? 0
                if spentE + askedEpsilon > policy.totalEpsilon + 1e-12 || spentD + askedDelta > policy.totalDelta + 1e-15 {
                    throw AnalyticsError(.budgetExceeded, "site \(site) has spent ε = \(fmt(spentE)), δ = \(spentD) of its budget "
                                         + "ε = \(fmt(policy.totalEpsilon)), δ = \(policy.totalDelta); query '\(query)' asks ε = "
                                         + "\(fmt(askedEpsilon)), δ = \(askedDelta). The site refuses it; ask for less or raise the site's budget.")
                }
                for c in charges {
                    try db.execute(sql: "INSERT INTO privacy_charge (site, query, feature, primitive, epsilon, delta) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [site, query, c.feature, c.primitive, c.epsilon, c.delta])
                }
            }
        } catch let error as AnalyticsError {
            throw error
        } catch {
            throw AnalyticsError(.ledger, "cannot write the privacy ledger", cause: "\(error)")
        }
    }
}

func fmt(_ v: Double) -> String { String(format: "%.4g", v) }
