import Foundation

/// Writes a `StatisticsResult` as JSON and as a self-contained HTML page with SVG charts (no scripts, no
/// external files): a privacy table, then per feature a table of figures and a bar chart (histogram or
/// categories), global beside each revealing site.
public enum StatisticsReport {
    public static func json(_ result: StatisticsResult) throws(AnalyticsError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return String(decoding: try encoder.encode(result), as: UTF8.self) } catch {
            throw AnalyticsError(.io, "cannot encode the result as JSON", cause: "\(error)")
        }
    }

    public static func write(_ result: StatisticsResult, to folder: String) throws(AnalyticsError) -> (
        json: String, html: String
    ) {
        let jsonPath = folder + "/statistics.json"
        let htmlPath = folder + "/statistics.html"
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(try json(result).utf8).write(to: URL(fileURLWithPath: jsonPath))
            try Data(html(result).utf8).write(to: URL(fileURLWithPath: htmlPath))
            // Each global chart also as its own SVG file, for slides and READMEs.
            try FileManager.default.createDirectory(atPath: folder + "/charts", withIntermediateDirectories: true)
            for (i, g) in result.global.enumerated() {
                guard let svg = chart(g, title: "\(g.feature) (\(g.unit.rawValue)), all sites", colour: palette[0])
                else { continue }
                let name = g.feature.replacingOccurrences(of: ":", with: "-") + "-\(g.unit.rawValue)-\(i).svg"
                try Data(svg.utf8).write(to: URL(fileURLWithPath: folder + "/charts/" + name))
            }
        } catch let error as AnalyticsError {
            throw error
        } catch {
            throw AnalyticsError(
                .io, "cannot write the report to \(folder); check the folder is writable", cause: "\(error)")
        }
        return (jsonPath, htmlPath)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double?, suppressed: Bool = false) -> String {
        guard let v else { return suppressed ? "&lt; k" : "–" }
        if v == v.rounded() && abs(v) < 1e9 { return String(format: "%.0f", v) }
        return String(format: "%.4g", v)
    }

    static let palette = ["#3b6ea8", "#d98c2b", "#4f9d69", "#b0503f", "#7a5ea8", "#5f8f9c"]

    /// A bar chart: labels under bars, suppressed bars drawn hatched-grey at zero height with "<k".
    static func barChart(
        title: String, labels: [String], values: [Double?], colour: String, width: Int = 420,
        height: Int = 190
    ) -> String {
        let n = max(labels.count, 1)
        let top = max(values.compactMap { $0 }.max() ?? 1, 1e-9)
        let left = 36.0
        let bottom = 40.0
        let plotW = Double(width) - left - 8
        let plotH = Double(height) - bottom - 22
        let barW = plotW / Double(n)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<text x=\"\(left)\" y=\"14\" font-size=\"12\" font-family=\"sans-serif\">\(escape(title))</text>"
        svg += "<line x1=\"\(left)\" y1=\"\(22 + plotH)\" x2=\"\(left + plotW)\" y2=\"\(22 + plotH)\" stroke=\"#888\"/>"
        svg +=
            "<text x=\"\(left - 4)\" y=\"28\" font-size=\"9\" text-anchor=\"end\" font-family=\"sans-serif\">\(number(top))</text>"
        for (i, label) in labels.enumerated() {
            let x = left + Double(i) * barW
            if let v = values[i] {
                let h = plotH * max(0, v) / top
                svg += String(
                    format:
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@: %@</title></rect>",
                    x + 1, 22 + plotH - h, max(barW - 2, 1), h, colour, escape(label), number(v))
            } else {
                svg += String(
                    format:
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" fill=\"#999\" text-anchor=\"middle\" font-family=\"sans-serif\">&lt;k</text>",
                    x + barW / 2, 20 + plotH)
            }
            if n <= 12 || i % max(1, n / 8) == 0 {
                svg += String(
                    format:
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\" font-family=\"sans-serif\">%@</text>",
                    x + barW / 2, 22 + plotH + 13, escape(label))
            }
        }
        return svg + "</svg>"
    }

    static func chart(_ r: FeatureResult, title: String, colour: String) -> String? {
        if let h = r.histogram {
            let labels = h.edges.dropLast().map { String(format: "%g", $0) }
            return barChart(title: title, labels: Array(labels), values: h.counts, colour: colour)
        }
        if let f = r.frequencies {
            let names = f.keys.sorted()
            return barChart(title: title, labels: names, values: names.map { f[$0] ?? nil }, colour: colour)
        }
        return nil
    }

    public static func html(_ result: StatisticsResult) -> String {
        var h =
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera cohort statistics: \(escape(result.query))</title>"
        h += "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
        h += "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#f2f2f2}"
        h +=
            "td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>"
        h += "<h1>Cohort statistics: \(escape(result.query))</h1>"
        h += "<p>Sites: \(escape(result.sites.joined(separator: ", "))). Mechanism: \(result.mechanism.rawValue). "
        h +=
            result.secureSum
            ? "The server saw only masked uploads (pairwise-masked secure sums)." : "Sums computed in the clear."
        if !result.dropped.isEmpty {
            h += " Dropped after masking (masks removed): \(escape(result.dropped.joined(separator: ", ")))."
        }
        h += "</p>"
        if !result.refused.isEmpty {
            h +=
                "<p>Refused: "
                + result.refused.sorted { $0.key < $1.key }.map { "\(escape($0.key)) (\(escape($0.value)))" }.joined(
                    separator: "; ") + "</p>"
        }
        h +=
            "<h2>Privacy cost</h2><table><tr><th>site</th><th>ε spent (total)</th><th>δ spent</th><th>ε remaining</th><th>minimum count k</th><th>per-site figures</th></tr>"
        for (site, p) in result.privacy.sorted(by: { $0.key < $1.key }) {
            h +=
                "<tr><td>\(escape(site))</td><td>\(String(format: "%.3g", p.epsilonSpent))</td><td>\(String(format: "%.3g", p.deltaSpent))</td>"
            h +=
                "<td>\(String(format: "%.3g", p.epsilonRemaining))</td><td>\(p.minimumCount)</td><td>\(p.revealed ? "revealed" : "withheld")</td></tr>"
        }
        h += "</table>"
        for (index, g) in result.global.enumerated() {
            h +=
                "<h2>\(escape(g.feature))\(g.valueUnit.isEmpty ? "" : " (\(escape(g.valueUnit)))") — per \(g.unit.rawValue)</h2>"
            h +=
                "<table><tr><th></th><th>count</th><th>missing</th><th>mean</th><th>stddev</th><th>min</th><th>max</th><th>quantiles</th><th>suppressed</th></tr>"
            var rows: [(String, FeatureResult)] = [("all sites", g)]
            for site in result.perSite.keys.sorted() {
                if let r = result.perSite[site]?[index] { rows.append((site, r)) }
            }
            for (name, r) in rows {
                let q = (r.quantiles ?? [:]).sorted { $0.key < $1.key }.map {
                    "\($0.key): \(String(format: "%.4g", $0.value))"
                }.joined(separator: ", ")
                h +=
                    "<tr><td>\(escape(name))</td><td>\(number(r.count, suppressed: r.suppressed.contains("count")))</td>"
                h +=
                    "<td>\(number(r.missing, suppressed: r.suppressed.contains("missing")))</td><td>\(number(r.mean))</td><td>\(number(r.stddev))</td>"
                h +=
                    "<td>\(number(r.min))</td><td>\(number(r.max))</td><td>\(escape(q))</td><td>\(r.suppressed.count)</td></tr>"
            }
            h += "</table><div class=\"charts\">"
            for (i, (name, r)) in rows.enumerated() {
                if let svg = chart(r, title: name, colour: palette[i % palette.count]) { h += svg }
            }
            h += "</div>"
        }
        h +=
            "<p style=\"font-size:12px;color:#666\">Noise: Laplace b = Δ₁/ε or Gaussian σ = Δ₂√(2 ln(1.25/δ))/ε (Dwork &amp; Roth 2014); "
        h +=
            "cells below the minimum count are shown as &lt; k. Min and max are at histogram-bin resolution.</p></body></html>\n"
        return h
    }
}
