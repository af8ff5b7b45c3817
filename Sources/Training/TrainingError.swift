/// The one error type of `Training`: what failed, how to fix it, and the cause.
public struct TrainingError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        public static let configuration = Code("configuration")
        public static let data = Code("data")
        public static let nonFinite = Code("non-finite")
        public static let model = Code("model")
        public static let io = Code("io")
        /// An argument is out of range or inconsistent (metrics, samplers).
        public static let invalidArgument = Code("invalid-argument")
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
