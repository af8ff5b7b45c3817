/// The one error type of the `NeuralNetwork` module: what failed, how to fix it, and the underlying cause.
public struct NeuralNetworkError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable {
        /// A parameter collection lacks a tensor the model needs.
        case missingTensor
        /// A parameter collection holds a tensor the model does not have.
        case unexpectedTensor
        /// A tensor's shape differs from the model's.
        case shapeMismatch
        /// A safetensors file is malformed (header length, JSON, offsets).
        case invalidHeader
        /// A safetensors tensor is not float32.
        case unsupportedDType
        /// A file could not be read or written.
        case io
        /// A loss or gradient is NaN or infinite.
        case nonFinite
        /// An argument is out of range.
        case invalidArgument
    }

    public var code: Code
    /// What failed and how to fix it; names the tensor when one is involved.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "NeuralNetworkError.\(code.rawValue): \(message)" + (cause.map { " (cause: \($0))" } ?? "")
    }
}
