import Foundation

/// A study's learning-quality target (issue 15): a federated model — the global one, or the personalised ones (the
/// global model fine-tuned at each site) — that scores, at every site on its held-out patients, at least as well as
/// every local-only model there and no more than `tolerance` below the centralised model trained on the pooled data.
///
/// Both the local-only and the centralised models are trained to convergence (`StudySites.baseline`), so the bar is
/// the best each could do; their epoch is chosen on the same held-out patients, which favours them.
public struct LearningQuality: Sendable, Codable, Equatable {
    /// One site's figures (the study's metric: Dice or ROC AUC).
    public struct Site: Sendable, Codable, Equatable {
        public var site: String
        /// The highest score of any local-only model at this site, and that model's row name.
        public var bestLocal: Double
        public var bestLocalModel: String
        public var federated: Double?
        public var personalised: Double?
        public var centralised: Double
    }

    public var sites: [Site]
    /// How far below the centralised model a federated model may score, in the metric's units (0.02 = 2 points).
    public var tolerance: Double
    /// The federated models that meet the target at every site (`.federated`, `.personalised`); empty: not met.
    public var metBy: [ComparisonRow.Kind]
    /// Each condition a federated model misses, in words ("personalised 0.912 < 0.941 of local only:
    /// treatment-center at treatment-center").
    public var shortfalls: [String]

    /// The target judged from a study's comparison rows.
    /// - Returns: nil unless there is a centralised row and a local-only row (a study run without baselines).
    public init?(_ rows: [ComparisonRow], sites names: [String], tolerance: Double = 0.02) {
        let locals = rows.filter { $0.kind == .localOnly }
        guard let centralised = rows.first(where: { $0.kind == .centralised }), !locals.isEmpty else { return nil }
        let federated = rows.first { $0.kind == .federated }
        let personalised = rows.first { $0.kind == .personalised }
        var sites: [Site] = []
        for name in names {
            guard let c = centralised.scores[name] else { continue }
            var best: (score: Double, model: String)?
            for row in locals {
                if let s = row.scores[name], s > best?.score ?? -.infinity { best = (s, row.model) }
            }
            guard let best else { continue }
            sites.append(
                Site(
                    site: name, bestLocal: best.score, bestLocalModel: best.model, federated: federated?.scores[name],
                    personalised: personalised?.scores[name], centralised: c))
        }
        self.sites = sites
        self.tolerance = tolerance
        var met: [ComparisonRow.Kind] = []
        var shortfalls: [String] = []
        for (kind, row) in [(ComparisonRow.Kind.federated, federated), (.personalised, personalised)] {
            guard row != nil else { continue }
            let missed = Self.misses(kind, sites: sites, tolerance: tolerance)
            if missed.isEmpty && !sites.isEmpty { met.append(kind) }
            shortfalls += missed
        }
        metBy = met
        self.shortfalls = shortfalls
    }

    /// Where the `kind` model misses the target: below the best local-only model, or more than `tolerance` below
    /// the centralised one, or not measured at a site.
    static func misses(_ kind: ComparisonRow.Kind, sites: [Site], tolerance: Double) -> [String] {
        var out: [String] = []
        for s in sites {
            let score = kind == .personalised ? s.personalised : s.federated
            guard let score else {
                out.append("\(kind.rawValue): no figure at \(s.site)")
                continue
            }
            if score < s.bestLocal {
                out.append(
                    "\(kind.rawValue) \(Self.format(score)) < \(Self.format(s.bestLocal)) of \(s.bestLocalModel) at "
                        + s.site)
            }
            if score < s.centralised - tolerance {
                out.append(
                    "\(kind.rawValue) \(Self.format(score)) < centralised \(Self.format(s.centralised)) − "
                        + "\(Self.format(tolerance)) at \(s.site)")
            }
        }
        return out
    }

    static func format(_ v: Double) -> String { String(format: "%.3f", v) }

    /// One line: whether the target holds and by which models, or what misses it.
    public var verdict: String {
        let rule =
            "≥ every local-only model and ≥ centralised − \(Self.format(tolerance)) at every site"
        guard !metBy.isEmpty else {
            return "learning-quality target (\(rule)): NOT met; " + shortfalls.joined(separator: "; ")
        }
        return "learning-quality target (\(rule)): met by the "
            + metBy.map { $0 == .personalised ? "personalised models" : "federated global model" }
            .joined(separator: " and the ")
    }
}
