import FederationCore
import GRPCCore
import GRPCNIOTransportHTTP2

/// Serves a `FederationService` (the `Coordinator`) over gRPC, HTTP/2 and mutual TLS — there is no plaintext mode.
///
/// Every client must present a certificate that chains to the project CA (`MutualTLSFiles.trustRoots`) and is not on
/// its revocation list (`MutualTLSFiles.revocationList`, checked by `PeerCertificateVerifier`); the TLS handshake
/// refuses anything else. Each call is then authorized by the certificate: the subject's CN is the site
/// name and must equal the site a request names, and the OU must be `site` (an `admin` or `server` certificate is
/// refused as a site). HTTP/2 is tuned for large streams (`TransportLimits`) and messages above
/// `TransportLimits.maxMessageBytes` are refused.
///
/// Connections are kept in check by `TransportLimits.connection` (`ConnectionLimits`): a TLS handshake deadline,
/// caps on connections in their handshake, in all and per certificate, calls per connection, an idle timeout and
/// keepalive (`ConnectionGuard`).
///
/// ```swift
/// let server = GRPCFederationServer(service: coordinator, host: "0.0.0.0", port: 8443, tls: kit)
/// async let serving: Void = server.serve()
/// let port = try await server.listeningPort()
/// ```
public final class GRPCFederationServer: Sendable {
    private let transport: HTTP2ServerTransport.Posix
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let connectionGuard: ConnectionGuard
    private let drain = ServerDrain()

    /// - Parameters:
    ///   - service: what the calls are forwarded to.
    ///   - host: the address to listen on (`0.0.0.0`, `127.0.0.1`, or an IPv6 address).
    ///   - port: the TCP port; 0 picks a free one (see `listeningPort()`).
    ///   - tls: the server's certificate and key and the project CA.
    ///   - limits: message size limit, chunk size and HTTP/2 tuning.
    ///   - admin: the job management API (`tessera admin`), served to admin certificates; nil serves none.
    ///   - log: where connections refused by a cap are said (nil: nowhere; `connectionStatistics` counts them).
    public init(
        service: any FederationService, admin: (any AdminService)? = nil, host: String = "0.0.0.0", port: Int,
        tls: MutualTLSFiles, limits: TransportLimits = .defaults,
        log: (@Sendable (String) -> Void)? = nil
    ) {
        let security = HTTP2ServerTransport.Posix.TransportSecurity.mTLS(
            certificateChain: [.file(path: tls.certificateChain, format: .pem)],
            privateKey: .file(path: tls.privateKey, format: .pem)
        ) { config in
            // Require a client certificate and verify it against the project CA only; clients have no host names.
            config.clientCertificateVerification = .noHostnameVerification
            config.trustRoots = .certificates([.file(path: tls.trustRoots, format: .pem)])
            if let crl = tls.revocationList {
                let verifier = PeerCertificateVerifier(
                    trustRootsPath: tls.trustRoots, revocationListPath: crl, serverHostname: nil, log: log)
                config.customVerificationCallback = { verifier.callback($0, $1) }
            }
        }
        let connection = limits.connection
        let connectionGuard = ConnectionGuard(limits: connection, log: log)
        let config = HTTP2ServerTransport.Posix.Config.defaults { config in
            config.http2.targetWindowSize = limits.targetWindowSize
            config.http2.maxFrameSize = limits.maxFrameSize
            config.http2.maxConcurrentStreams = connection.maxConcurrentStreams
            config.rpc.maxRequestPayloadSize = limits.maxMessageBytes
            // No connection age limit: it would end a site's long-poll (the grace time then closes it hard).
            config.connection.maxIdleTime = connection.idleTimeout
            config.connection.keepalive = .init(
                time: connection.keepaliveInterval, timeout: connection.keepaliveTimeout,
                clientBehavior: .init(
                    minPingIntervalWithoutCalls: ConnectionLimits.minimumKeepaliveInterval,
                    allowWithoutCalls: true))
            // The transport's accept callback: the guard's handlers go in after the TLS handler.
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { connectionGuard.install(on: $0) }
        }
        self.connectionGuard = connectionGuard
        let address: GRPCNIOTransportCore.SocketAddress =
            host.contains(":")
            ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        transport = HTTP2ServerTransport.Posix(address: address, transportSecurity: security, config: config)
        var services: [any RegistrableRPCService] = [
            FederationRegistration(handler: FederationHandler(service: service, limits: limits, drain: drain))
        ]
        if let admin {
            services.append(AdminHandler(service: admin, pieceBytes: limits.chunkScalars * 4, drain: drain))
        }
        let contacts = SiteContactInterceptor(service: service)
        server = GRPCServer(
            transport: transport, services: services,
            interceptorPipeline: [.apply(contacts, to: .services([Tessera_Federation_V1_Federation.descriptor]))])
    }

    /// Accepts connections until `beginGracefulShutdown()`. Cancelling the calling task begins the graceful
    /// shutdown instead of cancelling the listener: a connection accepted at that moment would otherwise be dropped
    /// unserved, and NIO traps on its unfinished writer (swift-nio#2637). The listener therefore runs in a task of
    /// its own that cancellation does not reach, and `serve()` returns once it has drained.
    /// - Throws: `.invalidConfiguration` when the address is taken or the certificate files cannot be used.
    public func serve() async throws(FederationError) {
        let listening = Task { [server] in try await server.serve() }
        do {
            try await withTaskCancellationHandler {
                try await listening.value
            } onCancel: {
                beginGracefulShutdown()
            }
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "the federation server could not serve: check the address and "
                    + "the certificate, key and CA files", cause: String(describing: error))
        }
    }

    /// The TCP port the server listens on, once it does (useful with port 0).
    /// - Throws: `.invalidConfiguration` when the server failed to start listening.
    public func listeningPort() async throws(FederationError) -> Int {
        do {
            let address = try await transport.listeningAddress
            if let port = address.ipv4?.port ?? address.ipv6?.port { return port }
            throw FederationError(.invalidConfiguration, "the server listens on \(address), not a TCP port")
        } catch let error as FederationError {
            throw error
        } catch {
            throw FederationError(
                .invalidConfiguration, "the federation server did not start listening",
                cause: String(describing: error))
        }
    }

    /// Connections now, what became of those refused, and the bytes that went through them (`ConnectionGuard`).
    public var connectionStatistics: ConnectionStatistics { connectionGuard.statistics }

    /// Stops accepting connections; calls in flight finish — those waiting in the service (long-polls, job
    /// watches) at once, with `unavailable` — then `serve()` returns.
    public func beginGracefulShutdown() {
        drain.fire()
        server.beginGracefulShutdown()
    }
}
