/// The one error type of `Provisioning`: what failed, where, and how to fix it.
///
/// `message` names the file or the project-file key at fault and says what to do; `cause` carries the underlying
/// error's text (a YAML parser message, an errno, a swift-certificates error) when there is one.
public struct ProvisioningError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable, machine-readable category for the failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The project file is missing, unreadable, not YAML, or a key has a bad value.
        public static let invalidProject = Code("invalid-project")
        /// A kit folder is incomplete, unreadable or inconsistent (missing file, bad PEM, mismatched key).
        public static let invalidKit = Code("invalid-kit")
        /// A certificate does not chain to the project CA, is outside its validity, or has the wrong role.
        public static let untrustedCertificate = Code("untrusted-certificate")
        /// The output folder holds something that contradicts the project file (another CA, a changed role).
        public static let conflict = Code("conflict")
        /// Creating keys or certificates failed.
        public static let crypto = Code("crypto")
        /// Reading or writing a file failed.
        public static let io = Code("io")
    }

    public var code: Code
    public var message: String
    public var cause: String?

    /// Creates an error.
    /// - Parameters:
    ///   - code: the category.
    ///   - message: what failed, naming the file or key, and what to do about it.
    ///   - cause: the underlying error's description, if any.
    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "[\(code)] \(message)" + (cause.map { " (cause: \($0))" } ?? "")
    }
}
