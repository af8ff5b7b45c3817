/// The one error type of `SecureAggregation`: what failed, why, and the underlying error when there is one.
public struct SecureAggregationError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Parameters out of their documented range (threshold, participant count, clip range, vector length).
        public static let invalidParameters = Code("invalid-parameters")
        /// A peer's certificate does not chain to the project CA, names another participant, or has the wrong role;
        /// or a signature (key advertisement, participant-set confirmation) does not verify.
        public static let authentication = Code("authentication")
        /// The server announced a participant set that breaks the protocol: a site that never advertised, a set
        /// other than the one the sites signed, too few participants for the threshold or the site's policy.
        public static let participantSet = Code("participant-set")
        /// A message that cannot be decoded, or does not belong to this session or stage.
        public static let malformedMessage = Code("malformed-message")
        /// A message that arrives in the wrong stage, or a second time with other contents.
        public static let protocolState = Code("protocol-state")
        /// Too few shares to reconstruct a secret, or shares that do not agree.
        public static let reconstruction = Code("reconstruction")
        /// The unmasked sum is outside what honest inputs can produce: a participant sent out-of-range words.
        public static let outOfRange = Code("out-of-range")
    }

    public var code: Code
    public var message: String
    /// The underlying error (a CryptoKit, X509 or decoding error), when one caused this.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return "[\(code)] \(message)" }
        return "[\(code)] \(message) (\(cause))"
    }
}
