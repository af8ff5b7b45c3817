/// The one error type of `FederationCore`: what failed, how to fix it, and the cause.
public struct FederationError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let shapeMismatch = Code("shape-mismatch")
        public static let nonFinite = Code("non-finite")
        public static let staleRound = Code("stale-round")
        public static let unknownSite = Code("unknown-site")
        public static let tooLarge = Code("too-large")
        public static let invalidConfiguration = Code("invalid-configuration")
        public static let noResults = Code("no-results")
        public static let filter = Code("filter")
        /// The site refuses the task: its own policy or privacy budget says no (the message says which and why).
        public static let declined = Code("declined")
        /// The site's egress log (FederationClient's `EgressLog`) cannot be opened, written or read.
        public static let egressLog = Code("egress-log")
    }

    public var code: Code
    public var message: String
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "[\(code)] \(message)" + (cause.map { " (cause: \($0))" } ?? "") }
}
