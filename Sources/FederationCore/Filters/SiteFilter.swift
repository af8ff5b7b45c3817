/// What a filter knows about the update it processes.
public struct FilterContext: Sendable {
    public var site: String
    public var jobID: String
    public var round: Int

    public init(site: String, jobID: String, round: Int) {
        self.site = site
        self.jobID = jobID
        self.round = round
    }
}

/// A privacy filter on what leaves a site. The chain belongs to the site (its kit's policy decides which filters
/// run), never to the job: a job cannot switch a filter off.
public protocol SiteFilter: Sendable {
    var name: String { get }
    func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate
}

/// Filters applied in order; the first failure stops the update from leaving the site.
public struct FilterChain: Sendable {
    public var filters: [any SiteFilter]

    public init(_ filters: [any SiteFilter]) { self.filters = filters }

    public func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
        var u = update
        for f in filters {
            do { u = try await f.process(u, context: context) } catch {
                throw FederationError(.filter, "site filter '\(f.name)' refused the update: \(error.message)")
            }
        }
        return u
    }
}

/// Keeps variables at the site: tensors whose names match are removed from the update (e.g. normalisation
/// statistics, a site-specific head). The server then keeps its own values for them.
public struct ExcludeVariablesFilter: SiteFilter {
    public enum Pattern: Sendable, Equatable {
        case exact(String), prefix(String), suffix(String), contains(String)

        func matches(_ name: String) -> Bool {
            switch self {
            case .exact(let s): return name == s
            case .prefix(let s): return name.hasPrefix(s)
            case .suffix(let s): return name.hasSuffix(s)
            case .contains(let s): return name.contains(s)
            }
        }
    }

    public var patterns: [Pattern]
    public var name: String { "exclude-variables" }

    public init(patterns: [Pattern]) { self.patterns = patterns }

    public func process(_ update: ModelUpdate, context: FilterContext) async throws(FederationError) -> ModelUpdate {
        var u = update
        u.diff = update.diff.removing { name in patterns.contains { $0.matches(name) } }
        return u
    }
}
