/// The one error type of `FederatedAnalytics`: what failed and how to fix it.
public struct AnalyticsError: Error, Sendable, CustomStringConvertible, Equatable, Codable {
    public struct Code: Hashable, Sendable, CustomStringConvertible, Codable {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(rawValue)
        }

        public static let invalidQuery = Code("invalid-query")
        public static let invalidPolicy = Code("invalid-policy")
        public static let budgetExceeded = Code("budget-exceeded")
        public static let policyViolation = Code("policy-violation")
        public static let data = Code("data")
        public static let ledger = Code("ledger")
        public static let secureAggregation = Code("secure-aggregation")
        public static let io = Code("io")
        /// A statistics message that cannot be decoded (truncated, not JSON, another protocol version).
        public static let malformedMessage = Code("malformed-message")
        /// A well-formed statistics message that does not fit the exchange: wrong session, phase or site, a
        /// duplicate, a vector of the wrong length.
        public static let unexpectedMessage = Code("unexpected-message")
        /// Fewer sites than the query's `minimum_sites` are left: nothing is released.
        public static let tooFewSites = Code("too-few-sites")
    }

    public var code: Code
    public var message: String
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "[\(code)] \(message)" + (cause.map { " (cause: \($0))" } ?? "")
    }
}
