import FederationCore
import Foundation

/// Writes a study's `metrics.json`, `metrics.csv` and a self-contained `report.html` (SVG charts, no scripts).
public enum StudyReportWriter {
    public static func write(_ report: StudyReport, to folder: String) throws(FederationError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: folder + "/metrics.json"))
            try Data(csv(report).utf8).write(to: URL(fileURLWithPath: folder + "/metrics.csv"))
            try Data(html(report).utf8).write(to: URL(fileURLWithPath: folder + "/report.html"))
        } catch {
            throw FederationError(.invalidConfiguration, "cannot write the report to \(folder)", cause: "\(error)")
        }
    }

    /// How a report names its metric: Dice (segmentation) or ROC AUC (classification).
    public static func metricName(_ key: String) -> String { key == "auc" ? "ROC AUC" : "Dice" }

    /// One row per round and site: the site's local validation figure and the new global model's there (Dice, or
    /// ROC AUC for classification: `local_auc`, `global_auc`).
    public static func csv(_ r: StudyReport) -> String {
        var lines = ["round,site,participated,local_\(r.metric),global_\(r.metric),seconds,epsilon"]
        for round in r.rounds {
            for site in r.sites {
                let local = round.siteScore[site].map { String(format: "%.4f", $0) } ?? ""
                let global = round.globalScore[site].map { String(format: "%.4f", $0) } ?? ""
                let epsilon = round.epsilon[site].map { String(format: "%.4g", $0) } ?? ""
                lines.append(
                    "\(round.round),\(site),\(round.participants.contains(site)),\(local),\(global),"
                        + String(format: "%.1f", round.seconds) + ",\(epsilon)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A table of the comparison for terminals.
    public static func table(_ r: StudyReport) -> String {
        let width = max(28, (r.comparison.map(\.model.count).max() ?? 0) + 2)
        var lines = [
            "\(metricName(r.metric)) on each site's held-out patients (" + r.sites.joined(separator: ", ") + ")"
        ]
        lines.append(
            "model".padding(toLength: width, withPad: " ", startingAt: 0)
                + r.sites.map { $0.prefix(18).padding(toLength: 20, withPad: " ", startingAt: 0) }.joined() + "mean")
        for row in r.comparison {
            lines.append(
                row.model.padding(toLength: width, withPad: " ", startingAt: 0)
                    + r.sites.map {
                        String(format: "%.3f", row.scores[$0] ?? 0).padding(toLength: 20, withPad: " ", startingAt: 0)
                    }.joined()
                    + String(format: "%.3f", row.mean))
        }
        let epsilon = r.epsilon
        if !epsilon.isEmpty {
            lines.append(
                "ε spent on this job, by each site's privacy ledger (δ = the site's accounting δ): "
                    + r.sites.map { site in "\(site) " + (epsilon[site].map { String(format: "%.3g", $0) } ?? "-") }
                    .joined(separator: ", "))
        } else {
            lines.append("ε spent on this job: none charged (no DP-SGD or client-level DP in the pipeline)")
        }
        if let matrix = r.crossSite { lines += ["", crossSiteTable(matrix, metric: r.metric)] }
        if let quality = r.learningQuality { lines += ["", learningQualityTable(quality, metric: r.metric)] }
        return lines.joined(separator: "\n")
    }

    /// The learning-quality target as a terminal table: per site the best local-only model, the federated global
    /// and personalised models and the centralised one, then the verdict.
    public static func learningQualityTable(_ q: LearningQuality, metric: String = "dice") -> String {
        func cell(_ v: Double?) -> String {
            (v.map { String(format: "%.3f", $0) } ?? "-").padding(toLength: 14, withPad: " ", startingAt: 0)
        }
        let width = max(20, (q.sites.map(\.site.count).max() ?? 0) + 2)
        var lines = [
            "Learning quality: \(metricName(metric)) on each site's held-out patients (baselines trained to "
                + "convergence)",
            "site".padding(toLength: width, withPad: " ", startingAt: 0)
                + "best local-only".padding(toLength: 40, withPad: " ", startingAt: 0)
                + "federated     personalised  centralised",
        ]
        for s in q.sites {
            lines.append(
                s.site.padding(toLength: width, withPad: " ", startingAt: 0)
                    + (String(format: "%.3f ", s.bestLocal) + "(\(s.bestLocalModel))").padding(
                        toLength: 40, withPad: " ", startingAt: 0)
                    + cell(s.federated) + cell(s.personalised) + String(format: "%.3f", s.centralised))
        }
        lines.append(q.verdict)
        return lines.joined(separator: "\n")
    }

    /// The federation's own cross-site evaluation as a terminal table: a row per model, a column per site.
    public static func crossSiteTable(_ m: CrossSiteMatrix, metric: String = "dice") -> String {
        let (names, table) = crossSiteRows(m, metric: metric)
        let width = max(28, (names.map(\.count).max() ?? 0) + 2)
        var lines = [
            "Cross-site evaluation inside the federation: \(metricName(metric)) of each model at each site "
                + "(held-out patients)"
        ]
        lines.append(
            "model".padding(toLength: width, withPad: " ", startingAt: 0)
                + m.sites.map { $0.prefix(18).padding(toLength: 20, withPad: " ", startingAt: 0) }.joined() + "mean")
        for (name, row) in zip(names, table) {
            let known = row.compactMap { $0 }
            lines.append(
                name.padding(toLength: width, withPad: " ", startingAt: 0)
                    + row.map {
                        ($0.map { String(format: "%.3f", $0) } ?? "-").padding(
                            toLength: 20, withPad: " ", startingAt: 0)
                    }.joined()
                    + (known.isEmpty ? "-" : String(format: "%.3f", known.reduce(0, +) / Double(known.count))))
        }
        for (what, reason) in m.missing.sorted(by: { $0.key < $1.key }) { lines.append("missing \(what): \(reason)") }
        return lines.joined(separator: "\n")
    }

    /// The matrix's rows as the reports show them: each model by name, then, when the sites fine-tuned the global
    /// model, a row of the personalised models (each site's own, evaluated at that site).
    static func crossSiteRows(_ m: CrossSiteMatrix, metric: String) -> (names: [String], rows: [[Double?]]) {
        var names = m.models.map { $0 == CrossSiteMatrix.global ? "global (federated)" : "local model of \($0)" }
        var rows = m.table(metric: metric)
        if let tuned = m.personalized(metric: metric) {
            names.append("personalised (global fine-tuned at each site)")
            rows.append(tuned)
        }
        return (names, rows)
    }

    /// Text for HTML element content and attribute values.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// White at 0, green at 1 (clamped), as a CSS/SVG colour.
    static func heatColour(_ fraction: Double) -> String {
        // A site's reported score may be NaN: it shows as white (0), and every channel stays in 0...255.
        let v = fraction.isFinite ? max(0, min(1, fraction)) : 0
        func channel(_ drop: Double) -> Int { Int(exactly: (255 - v * drop).rounded(.towardZero)) ?? 255 }
        return String(format: "#%02x%02x%02x", channel(176), channel(98), channel(150))
    }

    /// A cell coloured from white (Dice 0) to green (Dice 1).
    static func heatCell(_ value: Double?) -> String {
        guard let value else { return "<td>–</td>" }
        return String(format: "<td style=\"background:%@\">%.3f</td>", heatColour(value), value)
    }

    /// The cross-site matrix as an SVG heat map: a row per model, a column per site, each cell coloured by its Dice
    /// (white 0 → green 1) and labelled; "–" where the evaluation is missing.
    static func heatMap(_ m: CrossSiteMatrix, metric: String = "dice") -> String {
        let (rowNames, table) = crossSiteRows(m, metric: metric)
        let name = metricName(metric)
        let cellW = 120.0
        let cellH = 26.0
        let left = 10 + 7.0 * Double(rowNames.map(\.count).max() ?? 10)
        let top = 44.0
        let w = max(700, left + cellW * Double(m.sites.count) + 10)
        let h = top + cellH * Double(rowNames.count) + 10
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" "
            + "aria-label=\"Cross-site \(name) matrix\">"
        // Colours span [lowest Dice rounded down to 0.1, 1] so that close figures still differ.
        let values = table.flatMap { $0 }.compactMap { $0 }
        let low = max(0, min(0.9, ((values.min() ?? 0) * 10).rounded(.down) / 10))
        s +=
            "<text x=\"4\" y=\"14\" font-size=\"12\" font-family=\"sans-serif\">Cross-site evaluation: \(name) of each model "
            + "(row) at each site (column); colour from \(String(format: "%.1f", low)) (white) to 1 (green)</text>"
        for (j, site) in m.sites.enumerated() {
            s += String(
                format:
                    "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"middle\" font-family=\"sans-serif\">%@</text>",
                left + cellW * (Double(j) + 0.5), top - 8, escape(site))
        }
        for (i, (rowName, row)) in zip(rowNames, table).enumerated() {
            let y = top + cellH * Double(i)
            s += String(
                format:
                    "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" text-anchor=\"end\" font-family=\"sans-serif\">%@</text>",
                left - 6, y + cellH / 2 + 3, escape(rowName))
            for (j, value) in row.enumerated() {
                let x = left + cellW * Double(j)
                let fill = value.map { heatColour(($0 - low) / (1 - low)) } ?? "#eeeeee"
                s += String(
                    format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"%@\" stroke=\"#fff\"/>",
                    x, y, cellW, cellH, fill)
                s += String(
                    format:
                        "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\" font-family=\"sans-serif\">%@</text>",
                    x + cellW / 2, y + cellH / 2 + 4, value.map { String(format: "%.3f", $0) } ?? "–")
            }
        }
        return s + "</svg>"
    }

    static let palette = ["#3b6ea8", "#d98c2b", "#4f9d69", "#b0503f", "#7a5ea8", "#5f8f9c"]

    static func lineChart(title: String, series: [(String, [(Int, Double)])], rounds: Int) -> String {
        let w = 460.0
        let h = 220.0
        let left = 40.0
        let bottom = 30.0
        let top = 24.0
        let right = 130.0
        let plotW = w - left - right
        let plotH = h - top - bottom
        func x(_ r: Int) -> Double { left + (rounds <= 1 ? plotW / 2 : Double(r - 1) / Double(rounds - 1) * plotW) }
        func y(_ d: Double) -> Double { top + plotH * (1 - max(0, min(1, d))) }
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(title)\">"
        s += "<text x=\"\(left)\" y=\"14\" font-size=\"12\" font-family=\"sans-serif\">\(title)</text>"
        for t in [0.0, 0.5, 1.0] {
            s += String(
                format: "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, y(t),
                left + plotW, y(t))
            s += String(
                format:
                    "<text x=\"%.0f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"end\" font-family=\"sans-serif\">%.1f</text>",
                left - 4, y(t) + 3, t)
        }
        for r in 1...max(rounds, 1) {
            s += String(
                format:
                    "<text x=\"%.1f\" y=\"%.0f\" font-size=\"9\" text-anchor=\"middle\" font-family=\"sans-serif\">%d</text>",
                x(r), h - bottom + 14, r)
        }
        for (i, (name, points)) in series.enumerated() {
            let colour = palette[i % palette.count]
            let path = points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>"
            for p in points {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", x(p.0), y(p.1), colour)
            }
            s += String(
                format: "<text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" fill=\"%@\" font-family=\"sans-serif\">%@</text>",
                left + plotW + 8, top + 12 + Double(i) * 14, colour, escape(name))
        }
        return s + "</svg>"
    }

    public static func html(_ r: StudyReport) -> String {
        let n = r.rounds.map(\.round).max() ?? 1
        var h = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera federated study</title>"
        h += "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        h += "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#f2f2f2}"
        h += "td:first-child,th:first-child{text-align:left}</style></head><body>"
        let name = metricName(r.metric)
        h += "<h1>Federated \(r.metric == "auc" ? "classification" : "segmentation") study</h1>"
        h +=
            "<p>Strategy: \(escape(r.strategy)). Sites: \(escape(r.sites.joined(separator: ", "))). \(n) rounds in "
            + String(format: "%.0f", r.totalSeconds) + " s (including baselines).</p>"
        let global = r.sites.map { site in
            (site, r.rounds.compactMap { rd in rd.globalScore[site].map { (rd.round, $0) } })
        }
        let local = r.sites.map { site in
            (site, r.rounds.compactMap { rd in rd.siteScore[site].map { (rd.round, $0) } })
        }
        h += lineChart(title: "Global model: \(name) per site after each round", series: global, rounds: n)
        h += lineChart(title: "Local validation \(name) reported by each site", series: local, rounds: n)
        if let m = r.crossSite {
            h +=
                "<h2>Cross-site evaluation inside the federation</h2><p>After the last round every site sent its last "
                + "local model; each model and the final global model were then evaluated by every site on its held-out "
                + "patients (\(name)). Only metrics left the sites.</p>"
            h += heatMap(m, metric: r.metric)
            h += "<table><tr><th>model</th>"
            h += m.sites.map { "<th>\(escape($0))</th>" }.joined() + "<th>mean</th></tr>"
            let rows = crossSiteRows(m, metric: r.metric)
            for (name, row) in zip(rows.names, rows.rows) {
                let known = row.compactMap { $0 }
                h +=
                    "<tr><td>\(escape(name))</td>" + row.map(heatCell).joined()
                    + heatCell(known.isEmpty ? nil : known.reduce(0, +) / Double(known.count)) + "</tr>"
            }
            h += "</table>"
            if !m.missing.isEmpty {
                h +=
                    "<ul>"
                    + m.missing.sorted { $0.key < $1.key }.map {
                        "<li>missing \(escape($0.key)): \(escape($0.value))</li>"
                    }
                    .joined() + "</ul>"
            }
        }
        h +=
            "<h2>Federated vs local-only vs centralised (\(name) on each site's held-out patients)</h2>"
            + "<table><tr><th>model</th>"
        h += r.sites.map { "<th>\(escape($0))</th>" }.joined() + "<th>mean</th></tr>"
        for row in r.comparison {
            h +=
                "<tr><td>\(escape(row.model))</td>" + r.sites.map { heatCell(row.scores[$0]) }.joined()
                + heatCell(row.mean) + "</tr>"
        }
        h +=
            "</table><h2>Rounds</h2><table><tr><th>round</th><th>participants</th><th>closed by</th><th>seconds</th></tr>"
        for rd in r.rounds {
            h +=
                "<tr><td>\(rd.round)</td><td>\(escape(rd.participants.joined(separator: ", ")))</td><td>\(escape(rd.closedBy))</td>"
            h += String(format: "<td>%.1f</td></tr>", rd.seconds)
        }
        return h + "</table></body></html>\n"
    }
}
