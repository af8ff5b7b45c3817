import FederationCore
import GRPCCore
import GRPCNIOTransportHTTP2

/// The client side of mutual TLS, shared by the site's and the admin's connections.
enum ClientTransport {
    typealias Transport = HTTP2ClientTransport.Posix

    /// A gRPC client that presents the participant's certificate and verifies the server's against the project CA,
    /// host name included (`serverName` when it differs from `host`). Messages up to `limits.maxMessageBytes` both
    /// ways; keepalive from `limits.connection`.
    /// - Throws: `.invalidConfiguration` when the target or the certificate files are unusable.
    static func makeClient(
        host: String, port: Int, tls: MutualTLSFiles, serverName: String?,
        limits: TransportLimits
    ) throws(FederationError) -> GRPCClient<Transport> {
        let security = Transport.TransportSecurity.mTLS(
            certificateChain: [.file(path: tls.certificateChain, format: .pem)],
            privateKey: .file(path: tls.privateKey, format: .pem)
        ) { config in
            config.trustRoots = .certificates([.file(path: tls.trustRoots, format: .pem)])
            config.serverCertificateVerification = .fullVerification
            if let crl = tls.revocationList {
                // Replaces BoringSSL's check, host name included (`PeerCertificateVerifier`).
                let verifier = PeerCertificateVerifier(
                    trustRootsPath: tls.trustRoots, revocationListPath: crl, serverHostname: serverName ?? host,
                    log: nil)
                config.customVerificationCallback = { verifier.callback($0, $1) }
            }
        }
        let config = Transport.Config.defaults { config in
            config.http2.targetWindowSize = limits.targetWindowSize
            config.http2.maxFrameSize = limits.maxFrameSize
            if let serverName { config.http2.authority = serverName }
            // Pings while waiting (a long-poll, or between calls) find a dead server or a dropped NAT entry; the
            // server permits them down to `ConnectionLimits.minimumKeepaliveInterval`.
            config.connection.keepalive = .init(
                time: limits.connection.keepaliveInterval,
                timeout: limits.connection.keepaliveTimeout, allowWithoutCalls: true)
            // Close an idle connection before the server does: after the server's GOAWAY the client would reconnect
            // at once (and again at each idle timeout); after its own idle close it reconnects at its next call.
            if let idle = limits.connection.idleTimeout { config.connection.maxIdleTime = idle * 3 / 4 }
        }
        let target: any ResolvableTarget =
            host.contains(":")
            ? .ipv6(address: host, port: port)
            : host.allSatisfy({ $0.isNumber || $0 == "." })
                ? .ipv4(address: host, port: port)
                : .dns(host: host, port: port)
        do {
            // One message holds one chunk: raise gRPC's 4 MiB default to the limit, both ways.
            let sizes = MethodConfig(
                names: [
                    MethodConfig.Name(service: Tessera_Federation_V1_Federation.descriptor.fullyQualifiedService),
                    MethodConfig.Name(service: Tessera_Federation_V1_Admin.descriptor.fullyQualifiedService),
                ], maxRequestMessageBytes: limits.maxMessageBytes, maxResponseMessageBytes: limits.maxMessageBytes)
            let transport = try Transport(
                target: target, transportSecurity: security, config: config,
                serviceConfig: ServiceConfig(methodConfig: [sizes]))
            return GRPCClient(transport: transport, interceptors: [VersionInterceptor()])
        } catch {
            throw FederationError(
                .invalidConfiguration,
                "cannot connect to \(host):\(port): check the address and the "
                    + "certificate, key and CA files", cause: String(describing: error))
        }
    }
}
