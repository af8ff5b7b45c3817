import Foundation
import GRDB

/// One charge of a basic-composition release (a Laplace or classic-Gaussian statistics primitive): its ε and δ add
/// up (Dwork & Roth 2014, Theorem 3.16).
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

/// A site's lifetime privacy budget, shared by everything that leaves it (statistics and model updates).
///
/// The ledger holds two kinds of charges: basic ones (ε, δ), which add up, and Rényi-DP curves (Gaussian mechanisms:
/// DP-SGD, client-level DP), which compose order by order and are converted to ε once, at `accountingDelta`
/// (`RDPAccountant.epsilon`). The site has spent ε = Σ ε_basic + ε_RDP(accountingDelta) and δ = Σ δ_basic +
/// accountingDelta (when it holds any curve): both must stay within `totalEpsilon` and `totalDelta`.
public struct PrivacyBudget: Sendable, Equatable, Codable {
    public var totalEpsilon: Double
    public var totalDelta: Double
    /// δ at which the composed RDP curves are read as (ε, δ); part of `totalDelta`.
    public var accountingDelta: Double

    public static let defaultAccountingDelta = 1e-5

    /// - Throws: `.invalidParameter` unless ε > 0, 0 ≤ δ < 1 and 0 ≤ accountingDelta ≤ totalDelta (0: the site
    ///   takes no Gaussian release that needs a δ).
    public init(totalEpsilon: Double, totalDelta: Double, accountingDelta: Double = defaultAccountingDelta)
        throws(DifferentialPrivacyError)
    {
        guard totalEpsilon.isFinite, totalEpsilon > 0 else {
            throw DifferentialPrivacyError(.invalidParameter, "total ε must be positive and finite, is \(totalEpsilon)")
        }
        guard totalDelta.isFinite, totalDelta >= 0, totalDelta < 1 else {
            throw DifferentialPrivacyError(.invalidParameter, "total δ must be in [0, 1), is \(totalDelta)")
        }
        guard accountingDelta.isFinite, accountingDelta >= 0, accountingDelta <= totalDelta else {
            throw DifferentialPrivacyError(
                .invalidParameter,
                "the accounting δ must be in [0, total δ = \(totalDelta)], "
                    + "is \(accountingDelta)")
        }
        self.totalEpsilon = totalEpsilon
        self.totalDelta = totalDelta
        self.accountingDelta = accountingDelta
    }
}

/// What a site has spent: totals and their parts.
public struct PrivacySpent: Sendable, Equatable {
    /// ε of the basic (ε, δ) charges, added up.
    public var basicEpsilon: Double
    public var basicDelta: Double
    /// ε of the composed RDP curves at the accounting δ (0 when the site holds none).
    public var rdpEpsilon: Double
    /// Whether any RDP curve was charged (then the accounting δ counts in `delta`).
    public var hasRDP: Bool
    public var accountingDelta: Double

    public var epsilon: Double { basicEpsilon + rdpEpsilon }
    public var delta: Double { basicDelta + (hasRDP ? accountingDelta : 0) }
}

/// The per-site privacy ledger, persisted in SQLite (through GRDB): every charge a site made, statistics and model
/// updates alike. A release is charged in one transaction before anything leaves; one that would take the site past
/// its budget is refused and nothing is recorded.
public final class PrivacyLedger: Sendable {
    private let database: DatabaseQueue

    /// Opens (creating if needed) the ledger at `path`; `nil` keeps it in memory (tests).
    /// - Throws: `.ledger` when the file cannot be opened or created.
    public init(path: String?) throws(DifferentialPrivacyError) {
        do {
            database = try SiteDatabase.open(
                path: path,
                schema: """
                    CREATE TABLE IF NOT EXISTS privacy_charge (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        site TEXT NOT NULL,
                        query TEXT NOT NULL,
                        feature TEXT NOT NULL,
                        primitive TEXT NOT NULL,
                        epsilon REAL NOT NULL CHECK (epsilon >= 0),
                        delta REAL NOT NULL CHECK (delta >= 0),
                        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                    );
                    CREATE TABLE IF NOT EXISTS rdp_charge (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        site TEXT NOT NULL,
                        job TEXT NOT NULL,
                        round INTEGER NOT NULL,
                        mechanism TEXT NOT NULL,
                        parameters TEXT NOT NULL,
                        curve TEXT NOT NULL,
                        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                    );
                    """)
        } catch {
            throw DifferentialPrivacyError(
                .ledger,
                "cannot open the privacy ledger at \(path ?? ":memory:"); check "
                    + "the path is writable", cause: "\(error)")
        }
    }

    // MARK: - Reading

    /// What `site` has spent, with its RDP curves read at `accountingDelta`.
    public func spent(site: String, accountingDelta: Double = PrivacyBudget.defaultAccountingDelta)
        throws(DifferentialPrivacyError) -> PrivacySpent
    {
        do {
            return try database.read { db in
                try Self.spent(db, site: site, job: nil, accountingDelta: accountingDelta)
            }
        } catch let error as DifferentialPrivacyError {
            throw error
        } catch {
            throw DifferentialPrivacyError(.ledger, "cannot read the privacy ledger", cause: "\(error)")
        }
    }

    /// ε that job `job` has spent at `site` (its RDP curves composed, read at `accountingDelta`).
    public func jobEpsilon(site: String, job: String, accountingDelta: Double) throws(DifferentialPrivacyError)
        -> Double
    {
        do {
            return try database.read { db in
                try Self.spent(db, site: site, job: job, accountingDelta: accountingDelta).rdpEpsilon
            }
        } catch let error as DifferentialPrivacyError {
            throw error
        } catch {
            throw DifferentialPrivacyError(.ledger, "cannot read the privacy ledger", cause: "\(error)")
        }
    }

    private static func curve(_ db: Database, site: String, job: String?) throws -> (RDPCurve, Int) {
        let rows: [String]
        if let job {
            rows = try String.fetchAll(
                db, sql: "SELECT curve FROM rdp_charge WHERE site = ? AND job = ?",
                arguments: [site, job])
        } else {
            rows = try String.fetchAll(db, sql: "SELECT curve FROM rdp_charge WHERE site = ?", arguments: [site])
        }
        var total = RDPCurve.zero
        for text in rows {
            let values = try JSONDecoder().decode([Double].self, from: Data(text.utf8))
            total += try RDPCurve(values: values)
        }
        return (total, rows.count)
    }

    private static func spent(_ db: Database, site: String, job: String?, accountingDelta: Double) throws
        -> PrivacySpent
    {
        var basicE = 0.0
        var basicD = 0.0
        if job == nil {
            let row = try Row.fetchOne(
                db,
                sql: "SELECT COALESCE(SUM(epsilon), 0) AS e, COALESCE(SUM(delta), 0) AS d "
                    + "FROM privacy_charge WHERE site = ?", arguments: [site])
            basicE = row?["e"] ?? 0
            basicD = row?["d"] ?? 0
        }
        let (curve, count) = try curve(db, site: site, job: job)
        let rdpE = count == 0 ? 0 : try RDPAccountant.epsilon(curve, delta: accountingDelta).epsilon
        return PrivacySpent(
            basicEpsilon: basicE, basicDelta: basicD, rdpEpsilon: rdpE, hasRDP: count > 0,
            accountingDelta: accountingDelta)
    }

    // MARK: - Charging

    /// Records every basic charge of a query atomically, or none.
    /// - Throws: `.budgetExceeded` (naming spent, asked and budget) when the site's total would pass `budget`,
    ///   or the query alone would pass `maxEpsilonPerQuery`.
    public func charge(
        site: String, query: String, charges: [PrivacyCharge], budget: PrivacyBudget,
        maxEpsilonPerQuery: Double
    ) throws(DifferentialPrivacyError) {
        let askedEpsilon = charges.reduce(0) { $0 + $1.epsilon }
        let askedDelta = charges.reduce(0) { $0 + $1.delta }
        if askedEpsilon > maxEpsilonPerQuery + 1e-12 {
            throw DifferentialPrivacyError(
                .budgetExceeded,
                "query '\(query)' asks ε = \(fmt(askedEpsilon)) at site "
                    + "\(site), more than its max_epsilon_per_query \(fmt(maxEpsilonPerQuery)); "
                    + "lower the features' epsilon")
        }
        try write { db in
            let spent = try Self.spent(db, site: site, job: nil, accountingDelta: budget.accountingDelta)
            let after = PrivacySpent(
                basicEpsilon: spent.basicEpsilon + askedEpsilon,
                basicDelta: spent.basicDelta + askedDelta, rdpEpsilon: spent.rdpEpsilon,
                hasRDP: spent.hasRDP, accountingDelta: budget.accountingDelta)
            try Self.check(
                after, spent: spent, budget: budget, site: site,
                what: "query '\(query)' asks ε = \(fmt(askedEpsilon)), δ = \(askedDelta)")
            for c in charges {
                try db.execute(
                    sql: "INSERT INTO privacy_charge (site, query, feature, primitive, epsilon, delta) "
                        + "VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [site, query, c.feature, c.primitive, c.epsilon, c.delta])
            }
        }
    }

    /// One Gaussian release (a model update) as an RDP curve.
    public struct Release: Sendable, Equatable {
        public var job: String
        public var round: Int
        /// dp-sgd, client-dp, or both joined by '+'.
        public var mechanism: String
        /// The mechanism's parameters, for the record (e.g. "σ=1.1 q=0.25 steps=48 C=1").
        public var parameters: String
        public var curve: RDPCurve

        public init(job: String, round: Int, mechanism: String, parameters: String, curve: RDPCurve) {
            self.job = job
            self.round = round
            self.mechanism = mechanism
            self.parameters = parameters
            self.curve = curve
        }
    }

    /// What charging a release leaves: the job's ε at the site and the site's totals, after the charge.
    public struct Balance: Sendable, Equatable {
        public var jobEpsilon: Double
        public var spent: PrivacySpent
        /// How much the site's total ε grew with this release (RDP composition is not additive in ε).
        public var charged: Double
    }

    /// Charges `release` atomically, or refuses it (`check: true` only checks, recording nothing).
    /// - Throws: `.budgetExceeded` when the site's total would pass `budget`, or the job's ε would pass
    ///   `maxJobEpsilon`; the message names spent, asked and the limit.
    @discardableResult
    public func charge(
        site: String, release: Release, budget: PrivacyBudget, maxJobEpsilon: Double?,
        checkOnly: Bool = false
    ) throws(DifferentialPrivacyError) -> Balance {
        guard budget.accountingDelta > 0 else {
            throw DifferentialPrivacyError(
                .budgetExceeded,
                "site \(site) keeps no δ for Gaussian releases (its "
                    + "accounting δ is 0); round \(release.round) of job \(release.job) is "
                    + "refused")
        }
        return try write { db in
            let delta = budget.accountingDelta
            let spent = try Self.spent(db, site: site, job: nil, accountingDelta: delta)
            let (siteCurve, _) = try Self.curve(db, site: site, job: nil)
            let (jobCurve, _) = try Self.curve(db, site: site, job: release.job)
            let jobAfter = try RDPAccountant.epsilon(jobCurve + release.curve, delta: delta).epsilon
            let rdpAfter = try RDPAccountant.epsilon(siteCurve + release.curve, delta: delta).epsilon
            let after = PrivacySpent(
                basicEpsilon: spent.basicEpsilon, basicDelta: spent.basicDelta,
                rdpEpsilon: rdpAfter, hasRDP: true, accountingDelta: delta)
            let what =
                "round \(release.round) of job \(release.job) (\(release.mechanism) \(release.parameters)) "
                + "would bring the job to ε = \(fmt(jobAfter))"
            if let maxJobEpsilon, !(jobAfter <= maxJobEpsilon + 1e-12) {
                throw DifferentialPrivacyError(
                    .budgetExceeded,
                    "site \(site): \(what), more than its "
                        + "max_epsilon_per_job \(fmt(maxJobEpsilon)) (at δ = \(delta))")
            }
            try Self.check(after, spent: spent, budget: budget, site: site, what: what)
            if !checkOnly {
                let json = String(decoding: try JSONEncoder().encode(release.curve.values), as: UTF8.self)
                try db.execute(
                    sql: "INSERT INTO rdp_charge (site, job, round, mechanism, parameters, curve) "
                        + "VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [
                        site, release.job, release.round, release.mechanism, release.parameters,
                        json,
                    ])
            }
            return Balance(jobEpsilon: jobAfter, spent: after, charged: after.epsilon - spent.epsilon)
        }
    }

    private static func check(
        _ after: PrivacySpent, spent: PrivacySpent, budget: PrivacyBudget, site: String,
        what: String
    ) throws(DifferentialPrivacyError) {
        guard after.epsilon <= budget.totalEpsilon + 1e-12, after.delta <= budget.totalDelta + 1e-15 else {
            throw DifferentialPrivacyError(
                .budgetExceeded,
                "site \(site) has spent ε = \(fmt(spent.epsilon)), δ = "
                    + "\(spent.delta) of its budget ε = \(fmt(budget.totalEpsilon)), δ = "
                    + "\(budget.totalDelta); \(what). The site refuses it; ask for less or "
                    + "raise the site's budget.")
        }
    }

    private func write<T>(_ body: (Database) throws -> T) throws(DifferentialPrivacyError) -> T {
        do {
            return try database.write(body)
        } catch let error as DifferentialPrivacyError {
            throw error
        } catch {
            throw DifferentialPrivacyError(.ledger, "cannot write the privacy ledger", cause: "\(error)")
        }
    }
}

extension RDPCurve {
    /// The order-wise minimum of two guarantees of the same release (both hold, so the smaller does).
    public func minimum(_ other: RDPCurve) -> RDPCurve {
        (try? RDPCurve(values: zip(values, other.values).map { Swift.min($0, $1) })) ?? self
    }
}

func fmt(_ v: Double) -> String { String(format: "%.4g", v) }
