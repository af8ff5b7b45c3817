import Foundation

/// The phases of a statistics query, in order. Every query has `plan` and `firstPass`; `recovery` only when a site
/// drops out after masking, `secondPass` only when a feature asks for variance or stddev, `reveal` only for sites
/// whose policy reveals per-site figures.
public enum StatisticsPhase: String, Codable, Sendable, CaseIterable {
    /// The site checks the query against its policy, charges its ledger, and answers with its X25519 public key
    /// (and category names if its policy allows), or refuses with the reason.
    case plan
    /// Counts, centred sums, histograms, frequencies: noised, then masked (secure sums) or in the clear.
    case firstPass = "first-pass"
    /// Survivors return their pairwise masks with the sites that dropped out of the first pass.
    case recovery
    /// Squared deviations around the global means, noised and masked.
    case secondPass = "second-pass"
    /// The site's own figures (noised, suppressed below its minimum count), if its policy reveals them.
    case reveal
}

/// What the server asks one site in one phase. Encoded as JSON by the runtime (`encoded()`,
/// `init(decoding:)`); answered by `StatisticsSiteSession.respond(to:)` with a `StatisticsResponse`.
public struct StatisticsRequest: Sendable, Equatable, Codable {
    /// Wire format version; a message of another version is refused with `.malformedMessage`.
    public static let protocolVersion = 1

    public var version: Int
    /// The query run's id (unique per run: it salts the masks; a site answers one session).
    public var session: String
    /// The site this request is for.
    public var site: String
    public var payload: Payload

    public var phase: StatisticsPhase { payload.phase }

    public init(session: String, site: String, payload: Payload) {
        self.version = Self.protocolVersion
        self.session = session
        self.site = site
        self.payload = payload
    }

    public enum Payload: Sendable, Equatable, Codable {
        case plan(Plan)
        case firstPass(FirstPass)
        case recovery(Recovery)
        case secondPass(SecondPass)
        case reveal(Reveal)

        public var phase: StatisticsPhase {
            switch self {
            case .plan: return .plan
            case .firstPass: return .firstPass
            case .recovery: return .recovery
            case .secondPass: return .secondPass
            case .reveal: return .reveal
            }
        }
    }

    /// Phase `plan`: the query as the study lead wrote it. The site validates it and holds it to its own policy.
    public struct Plan: Sendable, Equatable, Codable {
        public var query: StatisticsQuery
        public init(query: StatisticsQuery) { self.query = query }
    }

    /// Phase `firstPass`.
    public struct FirstPass: Sendable, Equatable, Codable {
        /// For categorical features the query does not enumerate, keyed "index/feature": the union of the names the
        /// sites agreed to reveal (every site counts into the same list, then "other").
        public var categoryLists: [String: [String]]
        /// Mask the upload (secure sum); false asks for the noised vector in the clear, which a site gives only if
        /// its policy reveals per-site figures or the "server" runs in its own process.
        public var secureSum: Bool
        /// Every participant's raw 32-byte X25519 public key (including the addressee's), by site name.
        public var publicKeys: [String: Data]
        /// Each participant's endorsement of its key, as its acceptance carried it (absent for sites without
        /// credentials; a site with credentials refuses a secure sum with any key it cannot check).
        public var endorsements: [String: KeyEndorsementData]?

        public init(
            categoryLists: [String: [String]], secureSum: Bool, publicKeys: [String: Data],
            endorsements: [String: KeyEndorsementData]? = nil
        ) {
            self.categoryLists = categoryLists
            self.secureSum = secureSum
            self.publicKeys = publicKeys
            self.endorsements = endorsements
        }
    }

    /// Phase `recovery` (secure sums, first pass only).
    public struct Recovery: Sendable, Equatable, Codable {
        /// Sites that were sent keys in the first pass but never uploaded.
        public var dropped: [String]
        public init(dropped: [String]) { self.dropped = dropped }
    }

    /// Phase `secondPass`.
    public struct SecondPass: Sendable, Equatable, Codable {
        /// Global means by feature key, inside the feature's bounds (the sensitivity of squared deviations assumes
        /// it; a site refuses a centre outside them).
        public var centres: [String: Double]
        /// The first-pass survivors taking part (a subset of the first pass's participants).
        public var participants: [String]

        public init(centres: [String: Double], participants: [String]) {
            self.centres = centres
            self.participants = participants
        }
    }

    /// Phase `reveal`: nothing to send; the site reveals what it already released, re-centred on its own mean.
    public struct Reveal: Sendable, Equatable, Codable {
        public init() {}
    }
}
