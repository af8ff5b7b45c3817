import FederationCore
import GRPCCore
import GRPCNIOTransportHTTP2

/// A site's connection to the federation server over gRPC, HTTP/2 and mutual TLS: the production
/// `FederationConnection`.
///
/// The site presents its certificate and verifies the server's against the project CA, host name included (the
/// server certificate must name `host`, or `serverName` when given). Results are streamed in chunks of at most
/// `TransportLimits.chunkScalars` values; downloads arrive as a stream of chunks. Every transport failure surfaces as
/// `FederationError(.transient, …)`, which `SiteAgent` retries with backoff.
///
/// Connections run in a background task from `init` until `close()`.
public final class GRPCFederationConnection: FederationConnection {
    private typealias Transport = HTTP2ClientTransport.Posix
    private let client: GRPCClient<Transport>
    private let stub: Tessera_Federation_V1_Federation.Client<Transport>
    private let connections: Task<Void, Never>
    private let limits: TransportLimits

    /// - Parameters:
    ///   - host: the server's host name or IP address.
    ///   - port: the server's TCP port.
    ///   - tls: the site's certificate and key and the project CA.
    ///   - serverName: the name to verify in the server certificate (and send as SNI) when it differs from `host`.
    ///   - limits: chunk size and HTTP/2 tuning (the same as the server's).
    /// - Throws: `.invalidConfiguration` when the target or the certificate files are unusable.
    public init(host: String, port: Int, tls: MutualTLSFiles, serverName: String? = nil,
                limits: TransportLimits = .defaults) throws(FederationError) {
        client = try ClientTransport.makeClient(host: host, port: port, tls: tls, serverName: serverName, limits: limits)
        stub = Tessera_Federation_V1_Federation.Client(wrapping: client)
        self.limits = limits
        let client = self.client
        connections = Task { try? await client.runConnections() }
    }

    deinit { client.beginGracefulShutdown() }

    /// Closes the connection once calls in flight have finished.
    public func close() async {
        client.beginGracefulShutdown()
        await connections.value
    }

    private func call<T>(_ what: String, _ body: () async throws -> T) async throws(FederationError) -> T {
        do { return try await body() } catch { throw StatusMapping.federationError(error, during: what) }
    }

    public func register(site: String) async throws(FederationError) -> String? {
        var request = Tessera_Federation_V1_RegisterRequest()
        request.site = site
        let response = try await call("register") { try await stub.register(request) }
        return response.jobID.isEmpty ? nil : response.jobID
    }

    /// Long-poll without a deadline: the server answers when the site has a task.
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        var request = Tessera_Federation_V1_NextTaskRequest()
        request.site = site
        let response = try await call("next task") { try await stub.nextTask(request) }
        return response.hasTask ? try TaskAssignment(wire: response.task) : nil
    }

    public func downloadModel(for task: TaskAssignment,
                              maxScalars: Int) async throws(FederationError) -> [ParameterChunk] {
        var request = Tessera_Federation_V1_DownloadModelRequest()
        request.task = task.wire
        request.maxScalars = Int64(min(maxScalars, limits.chunkScalars))
        return try await call("model download") {
            try await stub.downloadModel(request) { response in
                var chunks: [ParameterChunk] = []
                for try await message in response.messages { chunks.append(try ParameterChunk(wire: message)) }
                return chunks
            }
        }
    }

    /// Streams the header, then each chunk (split to the wire chunk size), as separate messages.
    public func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        let pieceSize = limits.chunkScalars
        _ = try await call("result upload") {
            try await stub.uploadResult(requestProducer: { writer in
                var first = WireUploadPart()
                first.header = header.wire
                try await writer.write(first)
                for chunk in chunks {
                    var start = 0
                    repeat {
                        let end = min(start + pieceSize, chunk.values.count)
                        let piece = start == 0 && end == chunk.values.count ? chunk
                            : ParameterChunk(tensor: chunk.tensor, shape: chunk.shape, offset: chunk.offset + start,
                                             values: Array(chunk.values[start..<end]))
                        var part = WireUploadPart()
                        part.chunk = piece.wire
                        try await writer.write(part)
                        start = end
                    } while start < chunk.values.count
                }
            })
        }
    }

    public func heartbeat(site: String) async throws(FederationError) {
        var request = Tessera_Federation_V1_HeartbeatRequest()
        request.site = site
        _ = try await call("heartbeat") { try await stub.heartbeat(request) }
    }
}
