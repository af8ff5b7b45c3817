import FederationCore
import GRPCCore

/// How `FederationError` crosses the wire: a gRPC status code chosen for generic clients, plus the exact Tessera code
/// in the `tessera-error-code` trailer so a Tessera client rebuilds the same error.
enum StatusMapping {
    /// Trailing-metadata key carrying `FederationError.Code.rawValue`.
    static let codeKey = "tessera-error-code"

    /// Every code a peer may send; an unknown one falls back to the status code's meaning.
    static let knownCodes: [FederationError.Code] = [
        .shapeMismatch, .nonFinite, .staleRound, .unknownSite, .tooLarge, .invalidConfiguration, .noResults, .filter,
        .transient, .jobFailed, .unknownJob, .declined, .permissionDenied,
    ]

    /// The gRPC status for a federation error. Transient errors become UNAVAILABLE, which clients retry.
    static func statusCode(for code: FederationError.Code) -> RPCError.Code {
        switch code {
        case .transient: .unavailable
        case .unknownSite: .permissionDenied
        case .staleRound, .noResults: .failedPrecondition
        case .unknownJob: .notFound
        case .tooLarge: .resourceExhausted
        case .shapeMismatch, .nonFinite, .invalidConfiguration: .invalidArgument
        case .jobFailed: .aborted
        case .declined, .permissionDenied: .permissionDenied
        default: .internalError
        }
    }

    /// The error a server handler throws for `error`.
    static func rpcError(_ error: FederationError) -> RPCError {
        RPCError(
            code: statusCode(for: error.code), message: error.message,
            metadata: [codeKey: .string(error.code.rawValue)])
    }

    /// Whether a call failed because the peer reset its HTTP/2 stream (RST_STREAM) rather than with a gRPC status or a
    /// broken connection. grpc-swift reports a reset as UNAVAILABLE with this message and no other trace;
    /// REFUSED_STREAM (0x7: the stream was never processed) is left out, as HTTP/2 allows a retry of it.
    static func isStreamReset(_ error: any Error) -> Bool {
        guard let rpc = error as? RPCError, rpc.code == .unavailable else { return false }
        return rpc.message.contains("RST_STREAM") && !rpc.message.contains("(0x7:")
    }

    /// BoringSSL reasons that no retry can fix: this side refused the peer's certificate (it does not chain to the
    /// project CA, or has expired), or the peer refused ours (TLS alerts).
    static let certificateFailures = [
        "CERTIFICATE_VERIFY_FAILED", "ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_EXPIRED",
        "ALERT_CERTIFICATE_REVOKED", "ALERT_CERTIFICATE_UNKNOWN", "ALERT_UNSUPPORTED_CERTIFICATE",
        "ALERT_CERTIFICATE_REQUIRED", "ALERT_ACCESS_DENIED",
    ]

    /// The certificate failure (`certificateFailures`) in an error's cause, if any. grpc-swift reports a failed TLS
    /// handshake as UNAVAILABLE with the NIOSSL error as its cause; only its description names the reason.
    static func certificateFailure(in error: any Error) -> String? {
        let rpc = error as? RPCError
        let text =
            rpc.map { "\($0.message) \($0.cause.map { String(describing: $0) } ?? "")" }
            ?? String(describing: error)
        return certificateFailures.first { text.contains($0) }
    }

    /// The federation error for whatever a gRPC call threw. Transport failures (connection refused or reset, TLS
    /// handshake interrupted, deadline, server shutting down) become `.transient`, so `SiteAgent` retries them. A
    /// handshake that failed over a certificate becomes `.unknownSite`, which ends a site: the kit is of another
    /// project, or a certificate expired or was replaced, or the address reaches another server.
    static func federationError(_ error: any Error, during what: String) -> FederationError {
        if let error = error as? FederationError { return error }
        if let reason = certificateFailure(in: error) {
            let side =
                reason == "CERTIFICATE_VERIFY_FAILED"
                ? "this kit's CA does not accept the server's certificate (a kit of another project, an expired server "
                    + "certificate, or an address that reaches another server)"
                : "the server does not accept this kit's certificate (a kit of another project, or an expired, "
                    + "replaced or revoked certificate)"
            return FederationError(
                .unknownSite,
                "\(what) failed: the TLS handshake failed (\(reason)): \(side). Check "
                    + "the kit and the server address; retrying cannot fix this",
                cause: String(describing: error))
        }
        guard let rpc = error as? RPCError else {
            return FederationError(
                .transient, "\(what) failed: the connection to the server broke; retrying",
                cause: String(describing: error))
        }
        let sent = rpc.metadata[stringValues: codeKey].first(where: { _ in true })
        if let sent, let code = knownCodes.first(where: { $0.rawValue == sent }) {
            return FederationError(code, rpc.message)
        }
        let cause = rpc.cause.map { String(describing: $0) }
        switch rpc.code {
        case .permissionDenied, .unauthenticated:
            return FederationError(
                .unknownSite,
                "\(what) refused by the server: \(rpc.message). Check the site's "
                    + "certificate (its CN must be the site name, its OU 'site')", cause: cause)
        case .resourceExhausted:
            return FederationError(.tooLarge, "\(what): \(rpc.message)", cause: cause)
        case .invalidArgument:
            return FederationError(.invalidConfiguration, "\(what): \(rpc.message)", cause: cause)
        case .failedPrecondition:
            return FederationError(.staleRound, "\(what): \(rpc.message)", cause: cause)
        default:
            return FederationError(.transient, "\(what) failed (\(rpc.code)): \(rpc.message); retrying", cause: cause)
        }
    }
}
