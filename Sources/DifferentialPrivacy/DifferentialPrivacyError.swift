/// The one error type of `DifferentialPrivacy`: what failed, how to fix it, and the cause.
public struct DifferentialPrivacyError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A parameter outside its documented range: a sampling rate outside [0, 1], a noise multiplier ≤ 0, a
        /// negative step count, δ outside (0, 1), a clipping norm ≤ 0.
        public static let invalidParameter = Code("invalid-parameter")
        /// A value that must be finite is not (a NaN or infinite gradient norm, a NaN RDP value).
        public static let nonFinite = Code("non-finite")
        /// A count beyond the documented maximum (steps, compositions).
        public static let tooLarge = Code("too-large")
        /// No noise multiplier up to the documented maximum reaches the requested (ε, δ).
        public static let unreachableTarget = Code("unreachable-target")
        /// A stored RDP curve whose orders are not `RDPCurve.orders` (written by another version of the grid).
        public static let orderMismatch = Code("order-mismatch")
        /// A release the site's budget (or a per-job or per-query limit) has no room for: refused, nothing recorded.
        public static let budgetExceeded = Code("budget-exceeded")
        /// The privacy ledger cannot be opened, read or written.
        public static let ledger = Code("ledger")
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
