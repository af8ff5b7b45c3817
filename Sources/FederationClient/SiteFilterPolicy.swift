import FederationCore
import Foundation
import Yams

/// The training filters a site applies to everything it sends, from `filters.yaml` in its kit (the site's, read-only
/// to jobs: a job cannot switch a filter off).
///
/// ```yaml
/// # Tensors that never leave the site. A name, or a pattern with * at the start and/or end:
/// # "enc.0.*" (prefix), "*.running_var" (suffix), "*norm*" (contains). The site keeps its own values of them across
/// # a job's rounds and puts them back into every model it downloads (LocalVariables).
/// exclude_variables: ["*.running_mean", "*.running_var"]
/// # Cross-site evaluation: whether this site sends its last local model to be evaluated at the other sites
/// # (default true; false: the site declines, and evaluates the others' models only).
/// share_local_model: false
/// # Sparsify and clip the weight diff (PercentilePrivacyFilter, Shokri & Shmatikov 2015 as NVFlare's
/// # PercentilePrivacy): values whose |v| is below the `percentile`-th percentile of all |v| become 0, the others
/// # are clipped to [-gamma, gamma]. percentile in (0, 100), in percent; gamma > 0, in weight units.
/// percentile_privacy: {percentile: 10, gamma: 0.01}
/// ```
///
/// The chain's order is fixed, whatever the order of the keys: exclude_variables, then percentile_privacy (so the
/// percentile is taken over what would otherwise leave the site).
public enum SiteFilterPolicy {
    public static let fileName = "filters.yaml"

    /// The chain for a kit folder: empty when the kit has no `filters.yaml`.
    /// - Throws: `.invalidConfiguration` naming the key or pattern that is wrong.
    public static func load(kitFolder: String) throws(FederationError) -> FilterChain {
        let path = kitFolder + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return FilterChain([]) }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func parse(_ yaml: String, source: String = "filters.yaml") throws(FederationError) -> FilterChain {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw FederationError(.invalidConfiguration, "\(source) is not valid YAML", cause: "\(error)")
        }
        guard let root else { return FilterChain([]) }
        guard let mapping = root.mapping else {
            throw FederationError(.invalidConfiguration, "\(source) must be a mapping")
        }
        var filters: [any SiteFilter] = []
        var percentilePrivacy: PercentilePrivacyFilter?
        for (key, value) in mapping {
            switch key.string {
            case "exclude_variables":
                guard let list = value.sequence else {
                    throw FederationError(
                        .invalidConfiguration, "\(source): exclude_variables must be a list of names or patterns")
                }
                var patterns: [ExcludeVariablesFilter.Pattern] = []
                for item in list {
                    guard let text = item.string, !text.isEmpty, text != "*", text != "**" else {
                        throw FederationError(
                            .invalidConfiguration,
                            "\(source): exclude_variables entries must be non-empty "
                                + "names or patterns other than *")
                    }
                    patterns.append(try pattern(text, source: source))
                }
                if !patterns.isEmpty { filters.append(ExcludeVariablesFilter(patterns: patterns)) }
            case "percentile_privacy":
                percentilePrivacy = try percentileFilter(value, source: source)
            case "share_local_model":
                guard value.bool != nil else {
                    throw FederationError(.invalidConfiguration, "\(source): share_local_model must be true or false")
                }
            default:
                throw FederationError(
                    .invalidConfiguration,
                    "\(source): unknown key `\(key.string ?? "?")`; known: "
                        + "exclude_variables, percentile_privacy, share_local_model")
            }
        }
        if let percentilePrivacy { filters.append(percentilePrivacy) }
        return FilterChain(filters)
    }

    /// Whether the kit's `filters.yaml` lets the site send its local model for cross-site evaluation (true when
    /// the file or the key is absent).
    /// - Throws: `.invalidConfiguration` for a file `parse` refuses.
    public static func sharesLocalModel(kitFolder: String) throws(FederationError) -> Bool {
        let path = kitFolder + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return true }
        let text = String(decoding: data, as: UTF8.self)
        _ = try parse(text, source: path)
        return ((try? Yams.compose(yaml: text))??.mapping?["share_local_model"]?.bool) ?? true
    }

    /// `percentile_privacy: {percentile: P, gamma: G}`, both required.
    /// - Throws: `.invalidConfiguration` naming the key (`percentile_privacy.gamma`) that is missing, unknown, not
    ///   a number or out of range.
    static func percentileFilter(_ value: Node, source: String) throws(FederationError) -> PercentilePrivacyFilter {
        guard let mapping = value.mapping else {
            throw FederationError(
                .invalidConfiguration,
                "\(source): percentile_privacy must be a mapping "
                    + "{percentile: P, gamma: G}")
        }
        var numbers: [String: Double] = [:]
        for (key, node) in mapping {
            let name = key.string ?? "?"
            guard name == "percentile" || name == "gamma" else {
                throw FederationError(
                    .invalidConfiguration,
                    "\(source): unknown key `percentile_privacy."
                        + "\(String(name.prefix(64)))`; known: percentile, gamma")
            }
            guard let text = node.scalar?.string, let number = Double(text.trimmingCharacters(in: .whitespaces)),
                number.isFinite
            else {
                throw FederationError(.invalidConfiguration, "\(source): percentile_privacy.\(name) must be a number")
            }
            numbers[name] = number
        }
        guard let percentile = numbers["percentile"] else {
            throw FederationError(
                .invalidConfiguration,
                "\(source): percentile_privacy.percentile is missing: "
                    + "a percentage in (0, 100)")
        }
        guard let gamma = numbers["gamma"] else {
            throw FederationError(
                .invalidConfiguration,
                "\(source): percentile_privacy.gamma is missing: the clipping "
                    + "bound > 0, in weight units")
        }
        do {
            return try PercentilePrivacyFilter(percentile: percentile, gamma: gamma)
        } catch {
            throw FederationError(.invalidConfiguration, "\(source): \(error.message)", cause: error.cause)
        }
    }

    static func pattern(_ text: String, source: String) throws(FederationError) -> ExcludeVariablesFilter.Pattern {
        let starts = text.hasPrefix("*")
        let ends = text.hasSuffix("*")
        let core = String(text.dropFirst(starts ? 1 : 0).dropLast(ends ? 1 : 0))
        guard !core.isEmpty, !core.contains("*") else {
            throw FederationError(
                .invalidConfiguration, "\(source): pattern '\(text)' may hold * only at its start and end")
        }
        switch (starts, ends) {
        case (true, true): return .contains(core)
        case (true, false): return .suffix(core)
        case (false, true): return .prefix(core)
        case (false, false): return .exact(core)
        }
    }
}
