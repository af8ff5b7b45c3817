import ArgumentParser
import FederationClient
import Foundation

struct Egress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List what left this site: the site's egress log.",
        discussion: """
            Every result the server accepted from `tessera client` (training updates, statistics answers, local \
            models and evaluation metrics for cross-site evaluation) is a row: time (UTC), job, round, kind, bytes \
            of content (4 per value + payload + metric names and values), the SHA-256 of the values (float32 \
            little-endian, in the order sent) followed by the payload, and the privacy mechanism, noise multiplier, \
            clip norm, epsilon and delta the result declared ("-" when it declared none).
            """)

    @Option(help: "The site's startup kit folder: reads <kit>/\(EgressLog.fileName).")
    var kit: String?

    @Option(help: "The egress log file (as given to `tessera client --egress-log`), instead of --kit.")
    var log: String?

    @Option(help: "Only this job's records.")
    var job: String?

    @Option(help: "Only the latest N records (1-1000000).")
    var last: Int?

    @Flag(help: "JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (kit == nil) != (log == nil) else {
            throw ValidationError("Give the site's --kit folder or the --log file (one of them).")
        }
        if let last, !(1...1_000_000).contains(last) {
            throw ValidationError("--last must be in 1...1000000, not \(last).")
        }
        if let job, job.isEmpty || job.count > 256 {
            throw ValidationError("--job must be a job id of 1-256 characters.")
        }
    }

    func run() throws {
        let path = log ?? ((kit ?? ".") + "/" + EgressLog.fileName)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandFailure(
                description: "no egress log at \(path): this site has sent nothing yet, or its "
                    + "client keeps the log elsewhere (--egress-log)")
        }
        let records: [EgressRecord]
        do { records = try EgressLog(path: path).records(job: job, limit: last) } catch {
            throw CommandFailure(description: error.description)
        }
        if json {
            print(try EgressTable.json(records))
        } else {
            print(EgressTable.text(records), terminator: "")
        }
    }
}

/// The renderings of `tessera egress`.
enum EgressTable {
    static func json(_ records: [EgressRecord]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(records), as: UTF8.self)
    }

    /// One line per record under a header; the SHA-256 in full (auditors compare it).
    static func text(_ records: [EgressRecord]) -> String {
        func number(_ v: Double?) -> String { v.map { String(format: "%.4g", $0) } ?? "-" }
        let header = [
            "time (UTC)", "job", "round", "kind", "bytes", "mechanism", "noise", "clip", "epsilon", "delta",
            "sha256",
        ]
        var rows = [header]
        for r in records {
            rows.append([
                r.sentAt.formatted(Date.ISO8601FormatStyle()), r.job, String(r.round), r.kind.rawValue,
                String(r.bytes), r.privacy.mechanism ?? "-", number(r.privacy.noiseMultiplier),
                number(r.privacy.clipNorm), number(r.privacy.epsilonCharged), number(r.privacy.delta), r.sha256,
            ])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        if records.isEmpty { out += "(no records)\n" }
        return out
    }
}
