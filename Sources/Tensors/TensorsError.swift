/// The one error type of the `Tensors` module: what failed, how to fix it, and the underlying cause.
public struct TensorsError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable {
        case shapeMismatch
        case invalidArgument
    }

    public var code: Code
    /// What failed and how to fix it.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "TensorsError.\(code.rawValue): \(message)" + (cause.map { " (cause: \($0))" } ?? "")
    }
}
