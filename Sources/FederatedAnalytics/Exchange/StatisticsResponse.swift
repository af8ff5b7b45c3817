import Foundation

/// A site's answer to one `StatisticsRequest`.
public struct StatisticsResponse: Sendable, Equatable, Codable {
    public var version: Int
    public var session: String
    /// The answering site (the runtime should check it against the sender's certificate name).
    public var site: String
    public var payload: Payload

    public var phase: StatisticsPhase { payload.phase }

    public init(session: String, site: String, payload: Payload) {
        self.version = StatisticsRequest.protocolVersion
        self.session = session
        self.site = site
        self.payload = payload
    }

    public enum Payload: Sendable, Equatable, Codable {
        case plan(Plan)
        case firstPass(Upload)
        case recovery(Recovery)
        case secondPass(Upload)
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

    /// Phase `plan`: the site takes part, or refuses (budget, policy) and is left out with the reason.
    public enum Plan: Sendable, Equatable, Codable {
        case accepted(Acceptance)
        case refused(Refusal)
    }

    public struct Acceptance: Sendable, Equatable, Codable {
        /// The site's raw 32-byte X25519 public key for this session.
        public var publicKey: Data
        /// The key signed with the site's certificate key (`KeyEndorsement`), and the certificate: what lets every
        /// other site check that the server relays this site's key unchanged. Nil from a site without credentials.
        public var endorsement: KeyEndorsementData?
        /// Category names for features the query does not enumerate (keyed "index/feature"); nil when the site's
        /// policy does not reveal category names.
        public var categoryNames: [String: [String]]?
        /// The site's budget after charging this query, its minimum count, whether it reveals per-site figures.
        public var privacy: StatisticsResult.SitePrivacy
    }

    /// Why a site does not take part; `code` is an `AnalyticsError.Code` raw value.
    public struct Refusal: Sendable, Equatable, Codable {
        public var code: String
        public var message: String

        public init(_ error: AnalyticsError) {
            code = error.code.rawValue
            message = error.message
        }

        public var error: AnalyticsError { AnalyticsError(.init(code), message) }
    }

    /// A pass's vector in the order of `flattened(secondPass:)`: fixed-point words with pairwise masks added
    /// (secure sums), or noised values in the clear.
    public enum Upload: Sendable, Equatable {
        case masked([UInt64])
        case clear([Double])

        public var count: Int {
            switch self {
            case .masked(let w): return w.count
            case .clear(let v): return v.count
            }
        }
    }

    /// Phase `recovery`: for each dropped site, this site's correction to the sum (its pairwise mask with it,
    /// negated as `SecureSumParticipant.recoveryMask` returns it).
    public struct Recovery: Sendable, Equatable {
        public var masks: [String: [UInt64]]
        public init(masks: [String: [UInt64]]) { self.masks = masks }
    }

    /// Phase `reveal`: the site's own figures, one per query feature, suppressed below its minimum count.
    public struct Reveal: Sendable, Equatable, Codable {
        public var figures: [FeatureResult]
    }
}

/// A public key's endorsement as it travels: the signer's certificate (DER) and its signature (DER).
public struct KeyEndorsementData: Sendable, Equatable, Codable {
    public var certificate: Data
    public var signature: Data
    public init(certificate: Data, signature: Data) {
        self.certificate = certificate
        self.signature = signature
    }
}
