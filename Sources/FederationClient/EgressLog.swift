import Crypto
import DifferentialPrivacy
import FederationCore
import Foundation
import GRDB

/// What kind of result left the site.
public enum EgressKind: String, Codable, Sendable, CaseIterable {
    /// A training round's weight diff (after the site's filter chain).
    case trainUpdate = "train-update"
    /// A statistics query phase's answer (its JSON payload: noised, masked figures or a refusal).
    case statisticsAnswer = "statistics-answer"
    /// The site's last local model for cross-site evaluation (or the payload saying why it declines).
    case localModel = "local-model"
    /// Cross-site evaluation metrics of a model on the site's held-out data (or why it could not evaluate).
    case evaluationMetrics = "evaluation-metrics"
    /// The site declining a task: its reason (the payload), nothing else.
    case decline = "decline"
    /// A secure-aggregation message: a signed key advert, encrypted shares, a signature of the survivors, or the
    /// shares revealed to unmask the sum (never the site's update).
    case secureAggregation = "secure-aggregation"
    /// A training round's update masked for secure aggregation (uniformly random words on their own).
    case maskedUpdate = "masked-update"
}

/// The privacy mechanism a result was released under, as the sender declared it in the result's metrics (which
/// leave the site with the result). nil means "not declared", not "no protection".
///
/// Metric keys read (`init(metrics:)`), all optional:
/// - `dp_sgd_noise_multiplier` → mechanism "dp-sgd", `noiseMultiplier`;
/// - `client_dp_noise_multiplier` → mechanism "client-dp", `noiseMultiplier` (when both are present, dp-sgd wins);
/// - `dp_mechanism_<name>` = 1 → mechanism `<name>` (e.g. `dp_mechanism_laplace`, `dp_mechanism_none`), for
///   mechanisms without a noise multiplier; it overrides the two above; the first name in sorted order wins;
/// - `dp_clip_norm` → `clipNorm` (L2 norm, weight units);
/// - `dp_epsilon_charged` → `epsilonCharged` (ε this release charged the site's ledger);
/// - `dp_delta` → `delta`.
public struct EgressPrivacy: Sendable, Equatable, Codable {
    public var mechanism: String?
    public var noiseMultiplier: Double?
    public var clipNorm: Double?
    public var epsilonCharged: Double?
    public var delta: Double?

    public init(
        mechanism: String? = nil, noiseMultiplier: Double? = nil, clipNorm: Double? = nil,
        epsilonCharged: Double? = nil, delta: Double? = nil
    ) {
        self.mechanism = mechanism
        self.noiseMultiplier = noiseMultiplier
        self.clipNorm = clipNorm
        self.epsilonCharged = epsilonCharged
        self.delta = delta
    }

    /// Reads the keys listed on the type; non-finite values are ignored (the server refuses them anyway).
    public init(metrics: [String: Double]) {
        func value(_ key: String) -> Double? { metrics[key].flatMap { $0.isFinite ? $0 : nil } }
        if let m = value("dp_sgd_noise_multiplier") {
            mechanism = "dp-sgd"
            noiseMultiplier = m
        } else if let m = value("client_dp_noise_multiplier") {
            mechanism = "client-dp"
            noiseMultiplier = m
        }
        let prefix = "dp_mechanism_"
        if let declared = metrics.keys.filter({ $0.hasPrefix(prefix) && metrics[$0] == 1 }).sorted().first {
            let name = String(declared.dropFirst(prefix.count).prefix(64))
            if !name.isEmpty { mechanism = name.replacingOccurrences(of: "_", with: "-") }
        }
        clipNorm = value("dp_clip_norm")
        epsilonCharged = value("dp_epsilon_charged")
        delta = value("dp_delta")
    }
}

/// One result that left the site, as the server accepted it.
public struct EgressRecord: Sendable, Equatable, Codable {
    /// Row id (nil before it is written).
    public var id: Int64?
    /// When the server accepted the result (UTC, ISO 8601 with milliseconds).
    public var sentAt: Date
    public var site: String
    public var job: String
    /// Training round, statistics phase number or cross-site evaluation step, as the task numbered it.
    public var round: Int
    public var kind: EgressKind
    /// The bytes of content sent: 4 × `scalars` + `payloadBytes` + Σ over metrics (UTF-8 bytes of the name + 8).
    /// Not counted: message framing, tensor names, shapes and offsets, the header's ids, gRPC and TLS overhead.
    public var bytes: Int
    /// Float32 values in the chunks.
    public var scalars: Int
    public var payloadBytes: Int
    /// The metrics sent with the result, by name (what the server can read besides the values and payload).
    public var metrics: [String: Double]
    /// Lower-case hex SHA-256 of the chunks' values in the order sent, each as 4 little-endian bytes (IEEE 754
    /// binary32), followed by the payload bytes (`EgressLog.digest`). Metrics are not hashed; they are stored.
    public var sha256: String
    public var privacy: EgressPrivacy

    public init(
        id: Int64? = nil, sentAt: Date, site: String, job: String, round: Int, kind: EgressKind, bytes: Int,
        scalars: Int, payloadBytes: Int, metrics: [String: Double], sha256: String,
        privacy: EgressPrivacy
    ) {
        self.id = id
        self.sentAt = sentAt
        self.site = site
        self.job = job
        self.round = round
        self.kind = kind
        self.bytes = bytes
        self.scalars = scalars
        self.payloadBytes = payloadBytes
        self.metrics = metrics
        self.sha256 = sha256
        self.privacy = privacy
    }

    /// The record of `header` and `chunks` as sent: sizes, digest and the privacy fields declared in its metrics.
    public init(header: ResultHeader, chunks: [ParameterChunk], kind: EgressKind, sentAt: Date) {
        let scalars = chunks.reduce(0) { $0 + $1.valueCount }
        let valueBytes = chunks.reduce(0) { $0 + $1.valueBytes }
        let metricBytes = header.metrics.keys.reduce(0) { $0 + $1.utf8.count + MemoryLayout<Double>.size }
        self.init(
            sentAt: sentAt, site: header.site, job: header.jobID, round: header.round, kind: kind,
            bytes: valueBytes + header.payload.count + metricBytes, scalars: scalars,
            payloadBytes: header.payload.count, metrics: header.metrics,
            sha256: EgressLog.digest(chunks: chunks, payload: header.payload),
            privacy: EgressPrivacy(metrics: header.metrics))
    }
}

/// The site's record of everything that left it, in its own SQLite file (through GRDB), for the site's privacy
/// officer and auditors: one row per result the server accepted (a result sent again is a new row). Written by
/// `SiteAgent` (`egressLog`); listed by `tessera egress`. `tessera client` keeps it in the kit folder
/// (`egress-log.sqlite`, beside `privacy-ledger.sqlite`; `--egress-log` moves it).
///
/// Table `egress` (columns in the order of `EgressRecord`): `id`, `sent_at` (TEXT, ISO 8601 UTC), `site`, `job`,
/// `round`, `kind`, `bytes`, `scalars`, `payload_bytes`, `metrics` (JSON object), `sha256` (hex), and the nullable
/// privacy columns `mechanism`, `noise_multiplier`, `clip_norm`, `epsilon_charged`, `delta`.
public final class EgressLog: Sendable {
    private let database: DatabaseQueue
    /// Where the log is (":memory:" for an in-memory one).
    public let path: String

    /// The file name `tessera client` uses in the kit folder.
    public static let fileName = "egress-log.sqlite"

    /// Opens (creating if needed) the log at `path`; nil keeps it in memory (tests).
    /// - Throws: `.egressLog` when the file cannot be created or opened, with the SQLite error as cause.
    public init(path: String?) throws(FederationError) {
        let location = path ?? ":memory:"
        self.path = location
        do {
            database = try SiteDatabase.open(
                path: path,
                schema: """
                    CREATE TABLE IF NOT EXISTS egress (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        sent_at TEXT NOT NULL,
                        site TEXT NOT NULL,
                        job TEXT NOT NULL,
                        round INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        bytes INTEGER NOT NULL CHECK (bytes >= 0),
                        scalars INTEGER NOT NULL CHECK (scalars >= 0),
                        payload_bytes INTEGER NOT NULL CHECK (payload_bytes >= 0),
                        metrics TEXT NOT NULL,
                        sha256 TEXT NOT NULL,
                        mechanism TEXT,
                        noise_multiplier REAL,
                        clip_norm REAL,
                        epsilon_charged REAL,
                        delta REAL
                    );
                    CREATE INDEX IF NOT EXISTS egress_job ON egress (job, round);
                    """)
        } catch {
            throw FederationError(
                .egressLog,
                "cannot open the egress log at \(location); check that the folder is "
                    + "writable", cause: "\(error)")
        }
    }

    /// Appends `record` (its `id` is ignored) and returns its row id.
    /// - Throws: `.egressLog` with the SQLite error as cause.
    @discardableResult
    public func append(_ record: EgressRecord) throws(FederationError) -> Int64 {
        let metrics: String
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            metrics = String(decoding: try encoder.encode(record.metrics), as: UTF8.self)
        } catch {
            throw FederationError(
                .egressLog,
                "cannot encode the metrics of job \(record.job) round \(record.round) "
                    + "for the egress log", cause: "\(error)")
        }
        do {
            return try database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO egress (sent_at, site, job, round, kind, bytes, scalars, payload_bytes, metrics, sha256,
                                            mechanism, noise_multiplier, clip_norm, epsilon_charged, delta)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        Self.timestamp(record.sentAt), record.site, record.job, record.round, record.kind.rawValue,
                        record.bytes, record.scalars, record.payloadBytes, metrics, record.sha256,
                        record.privacy.mechanism, record.privacy.noiseMultiplier, record.privacy.clipNorm,
                        record.privacy.epsilonCharged, record.privacy.delta,
                    ])
                return db.lastInsertedRowID
            }
        } catch {
            throw FederationError(
                .egressLog,
                "cannot write job \(record.job) round \(record.round) "
                    + "(\(record.kind.rawValue), sha256 \(record.sha256)) to the egress log at \(path)",
                cause: "\(error)")
        }
    }

    /// The records in the order they were written, optionally of one job only, at most `limit` of the latest.
    /// - Throws: `.egressLog` with the SQLite error as cause, or naming a row it cannot read.
    public func records(job: String? = nil, limit: Int? = nil) throws(FederationError) -> [EgressRecord] {
        let rows: [Row]
        do {
            rows = try database.read { db in
                var sql = "SELECT * FROM egress"
                var arguments: StatementArguments = []
                if let job {
                    sql += " WHERE job = ?"
                    arguments += [job]
                }
                sql += " ORDER BY id DESC"
                if let limit {
                    sql += " LIMIT ?"
                    arguments += [max(0, limit)]
                }
                return try Row.fetchAll(db, sql: sql, arguments: arguments)
            }
        } catch {
            throw FederationError(.egressLog, "cannot read the egress log at \(path)", cause: "\(error)")
        }
        var out: [EgressRecord] = []
        for row in rows.reversed() {
            // Failable reads throughout (GRDB's typed subscripts trap on a value of another type): a damaged row
            // is an error naming it, never a trap.
            func value<T: DatabaseValueConvertible>(_ column: String) -> T? {
                let raw: DatabaseValue? = row[column]
                return raw.flatMap { T.fromDatabaseValue($0) }
            }
            let id: Int64? = value("id")
            let site: String? = value("site")
            let job: String? = value("job")
            let sha256: String? = value("sha256")
            let round: Int? = value("round")
            let bytes: Int? = value("bytes")
            let scalars: Int? = value("scalars")
            let payloadBytes: Int? = value("payload_bytes")
            let kindName: String? = value("kind")
            let sentAtText: String? = value("sent_at")
            let metricsText: String? = value("metrics")
            guard let id, let site, let job, let sha256, let round, let bytes, let scalars, let payloadBytes,
                let sentAt = Self.date(sentAtText), let kind = kindName.flatMap(EgressKind.init(rawValue:)),
                let metrics = try? JSONDecoder().decode(
                    [String: Double].self,
                    from: Data((metricsText ?? "").utf8))
            else {
                throw FederationError(
                    .egressLog,
                    "a row of the egress log at \(path) is not a valid record "
                        + "(\(row.description.prefix(200)))")
            }
            out.append(
                EgressRecord(
                    id: id, sentAt: sentAt, site: site, job: job, round: round, kind: kind, bytes: bytes,
                    scalars: scalars, payloadBytes: payloadBytes, metrics: metrics, sha256: sha256,
                    privacy: EgressPrivacy(
                        mechanism: value("mechanism"), noiseMultiplier: value("noise_multiplier"),
                        clipNorm: value("clip_norm"), epsilonCharged: value("epsilon_charged"),
                        delta: value("delta"))))
        }
        return out
    }

    /// Lower-case hex SHA-256 of the chunks' values in order, each as 4 little-endian bytes (IEEE 754 binary32),
    /// followed by `payload`. To recompute it outside Tessera (numpy):
    /// `hashlib.sha256(np.concatenate(values).astype("<f4").tobytes() + payload).hexdigest()`. A compressed chunk
    /// (`federation.compression`) counts as the bytes that left: its encoded values (`EncodedValues.bytes`).
    public static func digest(chunks: [ParameterChunk], payload: [UInt8]) -> String {
        var hasher = SHA256()
        for chunk in chunks {
            if let encoded = chunk.encoded {
                encoded.bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                continue
            }
            #if _endian(little)
                chunk.values.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            #else
                let bytes = chunk.values.map { $0.bitPattern.littleEndian }
                bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            #endif
        }
        hasher.update(data: payload)
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func date(_ text: String?) -> Date? {
        guard let text else { return nil }
        return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
    }
}
