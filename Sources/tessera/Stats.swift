import ArgumentParser
import DifferentialPrivacy
import FederatedAnalytics
import Foundation

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Cohort statistics from DICOM data, private by construction (minimum counts, differential privacy, secure sums).",
        discussion: """
            Each --data folder is one site. With one folder the query runs locally (noise still applied); with \
            several, the sites run in this process and the figures are combined by pairwise-masked secure sums, \
            as they will be over the federation. Every site charges its privacy ledger before releasing anything.
            """)

    @Argument(help: "Query YAML (see pipelines/cohort-statistics.yaml).")
    var query: String

    @Option(name: .long, help: "A site's DICOM folder; repeat for several sites.")
    var data: [String]

    @Option(help: "Site privacy policy YAML (default: built-in policy, see pipelines/site-policy.yaml).")
    var policy: String?

    @Option(help: "Privacy ledger (SQLite). Default: ~/.local/share/tessera/privacy-ledger.sqlite.")
    var ledger: String?

    @Option(name: .shortAndLong, help: "Folder for statistics.json and statistics.html.")
    var output: String = "out/stats"

    @Option(help: "Seed the noise (reproducible demos and tests; omit in production).")
    var seed: UInt64?

    @Flag(help: "Testing only: no noise and nothing charged, for comparison with exact reference values.")
    var exact = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("give at least one --data folder (one per site)") }
    }

    func run() throws {
        common.apply()
        do {
            let query = try StatisticsQuery.load(path: self.query)
            var sitePolicy = SitePolicy()
            if let policy { sitePolicy = try SitePolicy.load(path: policy) }
            let ledgerPath =
                ledger
                ?? (FileManager.default.homeDirectoryForCurrentUser.path + "/.local/share/tessera/privacy-ledger.sqlite")
            let book = try PrivacyLedger(path: exact ? nil : ledgerPath)
            var sites: [StatisticsSite] = []
            for folder in data {
                let name = URL(fileURLWithPath: folder).lastPathComponent
                sites.append(
                    StatisticsSite(name: name, cohort: try SiteCohort(folder: folder), policy: sitePolicy, ledger: book)
                )
            }
            if exact { log("warning: --exact: no noise, nothing charged; for reference comparisons only") }
            var run = CohortStatistics(query: query, mechanism: exact ? NoiseMechanism.none : nil, seed: seed)
            run.secureSum = sites.count > 1
            let result = try run.run(sites: sites)
            let (json, html) = try StatisticsReport.write(result, to: output)
            print(cohortTable(result))
            print("wrote \(json) and \(html)")
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }

}

/// The global cohort table for the terminal.
func cohortTable(_ r: StatisticsResult) -> String {
    var lines = [
        "\(r.query): \(r.sites.count) site(s) [\(r.sites.joined(separator: ", "))], \(r.mechanism.rawValue) noise"
            + (r.secureSum ? ", secure sums" : "")
    ]
    for (site, reason) in r.refused.sorted(by: { $0.key < $1.key }) { lines.append("  refused by \(site): \(reason)") }
    lines.append(String(repeating: "-", count: 96))
    lines.append(
        "feature".padding(toLength: 24, withPad: " ", startingAt: 0)
            + "unit     count  missing      mean    stddev  min..max / categories")
    for f in r.global {
        func n(_ v: Double?) -> String {
            v.map { String(format: "%.4g", $0) } ?? (f.suppressed.contains("count") ? "<k" : "-")
        }
        var extra = ""
        if let lo = f.min, let hi = f.max { extra = "\(n(lo))..\(n(hi))" }
        if let q = f.quantiles, !q.isEmpty {
            extra +=
                "  q "
                + q.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.4g", $0.value))" }.joined(
                    separator: " ")
        }
        if let fr = f.frequencies {
            extra = fr.sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value.map { String(format: "%.0f", $0) } ?? "<k")"
            }.joined(separator: " ")
        }
        lines.append(
            f.feature.padding(toLength: 24, withPad: " ", startingAt: 0)
                + f.unit.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                + n(f.count).leftPad(6) + n(f.missing).leftPad(9) + n(f.mean).leftPad(10) + n(f.stddev).leftPad(10)
                + "  " + extra)
    }
    lines.append(String(repeating: "-", count: 96))
    for (site, p) in r.privacy.sorted(by: { $0.key < $1.key }) {
        lines.append(
            "\(site): ε spent \(String(format: "%.3g", p.epsilonSpent)) (remaining \(String(format: "%.3g", p.epsilonRemaining))), k = \(p.minimumCount)"
        )
    }
    return lines.joined(separator: "\n")
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
