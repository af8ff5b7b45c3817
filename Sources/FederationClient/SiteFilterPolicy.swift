import FederationCore
import Foundation
import Yams

/// The training filters a site applies to everything it sends, from `filters.yaml` in its kit (the site's, read-only
/// to jobs: a job cannot switch a filter off).
///
/// ```yaml
/// # Tensors that never leave the site. A name, or a pattern with * at the start and/or end:
/// # "enc.0.*" (prefix), "*.running_var" (suffix), "*norm*" (contains).
/// exclude_variables: ["*.running_mean", "*.running_var"]
/// # Cross-site evaluation: whether this site sends its last local model to be evaluated at the other sites
/// # (default true; false: the site declines, and evaluates the others' models only).
/// share_local_model: false
/// ```
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
        guard let mapping = root.mapping else { throw FederationError(.invalidConfiguration, "\(source) must be a mapping") }
        var filters: [any SiteFilter] = []
        for (key, value) in mapping {
            switch key.string {
            case "exclude_variables":
                guard let list = value.sequence else {
                    throw FederationError(.invalidConfiguration, "\(source): exclude_variables must be a list of names or patterns")
                }
                var patterns: [ExcludeVariablesFilter.Pattern] = []
                for item in list {
                    guard let text = item.string, !text.isEmpty, text != "*", text != "**" else {
                        throw FederationError(.invalidConfiguration, "\(source): exclude_variables entries must be non-empty "
                                              + "names or patterns other than *")
                    }
                    patterns.append(try pattern(text, source: source))
                }
                if !patterns.isEmpty { filters.append(ExcludeVariablesFilter(patterns: patterns)) }
            case "share_local_model":
                guard value.bool != nil else {
                    throw FederationError(.invalidConfiguration, "\(source): share_local_model must be true or false")
                }
            default:
                throw FederationError(.invalidConfiguration, "\(source): unknown key `\(key.string ?? "?")`; known: "
                                      + "exclude_variables, share_local_model")
            }
        }
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

    static func pattern(_ text: String, source: String) throws(FederationError) -> ExcludeVariablesFilter.Pattern {
        let starts = text.hasPrefix("*"), ends = text.hasSuffix("*")
        let core = String(text.dropFirst(starts ? 1 : 0).dropLast(ends ? 1 : 0))
        guard !core.isEmpty, !core.contains("*") else {
            throw FederationError(.invalidConfiguration, "\(source): pattern '\(text)' may hold * only at its start and end")
        }
        switch (starts, ends) {
        case (true, true): return .contains(core)
        case (true, false): return .suffix(core)
        case (false, true): return .prefix(core)
        case (false, false): return .exact(core)
        }
    }
}
