import FederationCore
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Synchronization

/// A site's connection to the federation server over gRPC, HTTP/2 and mutual TLS: the production
/// `FederationConnection`.
///
/// The site presents its certificate and verifies the server's against the project CA, host name included (the
/// server certificate must name `host`, or `serverName` when given). Results are streamed in chunks of at most
/// `TransportLimits.chunkScalars` values; downloads arrive as a stream of chunks. Every transport failure surfaces as
/// `FederationError(.transient, …)`, which `SiteAgent` retries with backoff.
///
/// No call waits without bound (`ConnectionLimits`): unary calls have a deadline (`callTimeout`), the long-poll waits
/// at most `longPollWait` per call and is then issued again, and streams are abandoned when no message moves for
/// `streamProgressTimeout`. Keepalive pings detect a dead server while the site waits.
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
    public init(
        host: String, port: Int, tls: MutualTLSFiles, serverName: String? = nil,
        limits: TransportLimits = .defaults
    ) throws(FederationError) {
        client = try ClientTransport.makeClient(
            host: host, port: port, tls: tls, serverName: serverName, limits: limits)
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

    /// Options of a unary call: its deadline.
    private var unary: CallOptions {
        var options = CallOptions.defaults
        options.timeout = limits.connection.callTimeout
        return options
    }

    public func register(site: String) async throws(FederationError) -> String? {
        var request = Tessera_Federation_V1_RegisterRequest()
        request.site = site
        let response = try await call("register") { try await stub.register(request, options: unary) }
        return response.jobID.isEmpty ? nil : response.jobID
    }

    /// The long-poll: the server answers when the site has a task. Each call waits at most
    /// `ConnectionLimits.longPollWait`; when that passes without an answer the call is issued again (a dead server
    /// or a half-open connection cannot hold the site forever, nor can a proxy's idle timeout cut it unseen).
    public func nextTask(site: String) async throws(FederationError) -> TaskAssignment? {
        var request = Tessera_Federation_V1_NextTaskRequest()
        request.site = site
        var options = CallOptions.defaults
        options.timeout = limits.connection.longPollWait
        while true {
            do {
                let response = try await stub.nextTask(request, options: options)
                return response.hasTask ? try TaskAssignment(wire: response.task) : nil
            } catch let error as RPCError where error.code == .deadlineExceeded && !Task.isCancelled {
                continue  // no task within the wait: ask again
            } catch {
                throw StatusMapping.federationError(error, during: "next task")
            }
        }
    }

    public func downloadModel(
        for task: TaskAssignment,
        maxScalars: Int
    ) async throws(FederationError) -> [ParameterChunk] {
        let chunks = Mutex<[ParameterChunk]>([])
        try await pullModel(for: task, maxScalars: maxScalars, held: nil) { _, _ throws(FederationError) in
        } handle: { received throws(FederationError) in
            let chunk = received.parameterChunk()
            chunks.withLock { $0.append(chunk) }
        }
        return chunks.withLock { $0 }
    }

    /// The model, decoded chunk by chunk straight into the tensors being built (no list of chunks in between).
    public func downloadParameters(
        for task: TaskAssignment,
        maxScalars: Int
    ) async throws(FederationError) -> ParameterSet {
        try await downloadParameters(for: task, maxScalars: maxScalars, reusing: nil)
    }

    /// The model decoded straight into `storage`'s arrays where the names match (no fresh pages).
    public func downloadParameters(
        for task: TaskAssignment, maxScalars: Int, reusing storage: consuming ParameterSet?
    ) async throws(FederationError) -> ParameterSet {
        // Taken out, not copied: the arrays stay uniquely referenced, so they are written in place.
        let assembler = Mutex(ParameterAssembler(reusing: storage.take()))
        try await pullModel(for: task, maxScalars: maxScalars, held: nil) { _, _ throws(FederationError) in
        } handle: { chunk throws(FederationError) in
            try assembler.withLock { (a) throws(FederationError) -> Void in try a.append(received: chunk) }
        }
        let built = assembler.withLock { a in
            var taken = ParameterAssembler()
            swap(&a, &taken)  // moved out, not copied: the tensors keep their storage
            return taken
        }
        return try built.finish()
    }

    /// The model built from the change to `held` when the server sends one, else whole in `held`'s arrays; its
    /// digest checked against the server's (`ModelReceiver`).
    public func downloadModel(
        for task: TaskAssignment, maxScalars: Int, holding held: inout HeldModel?
    ) async throws(FederationError) -> HeldModel {
        let receiver = Mutex(ModelReceiver(holding: held.take()))
        let offered = receiver.withLock { $0.offered }
        do {
            try await pullModel(for: task, maxScalars: maxScalars, held: offered) {
                base, digest throws(FederationError) in
                try receiver.withLock { (r) throws(FederationError) -> Void in try r.begin(base: base, digest: digest) }
            } handle: { chunk throws(FederationError) in
                try receiver.withLock { (r) throws(FederationError) -> Void in try r.append(chunk.chunk) }
            }
        } catch {
            held = receiver.withLock { $0.reclaim() }  // kept for the next attempt when nothing changed it
            throw error
        }
        let built = receiver.withLock { r in
            var taken = ModelReceiver(holding: nil)
            swap(&r, &taken)  // moved out, not copied: the tensors keep their storage
            return taken
        }
        return try built.finish()
    }

    /// Most chunks a model download may announce (2²⁰: with 4 Ki values or more a chunk, as servers cut them, 4 Gi
    /// values): a hostile server cannot keep a site pulling ranges for ever.
    static let maxDownloadChunks = 1 << 20

    /// Most values a model download may bring (2³⁰: 4 GiB of float32, far above the U-Nets and ResNets of medical
    /// imaging): what a hostile server can make a site allocate.
    static let maxModelScalars = 1 << 30

    /// Pulls the model range by range (`TransportLimits.downloadChunksPerCall` chunks per DownloadModel call, the
    /// server's cap), handing each response's header (from its initial metadata: the base the chunks change, nil
    /// for a whole model, and the digest of the model they build) to `begin`, then each chunk to `handle` as it
    /// arrives. The first response says how many chunks the model has (initial metadata); the calls follow one
    /// another, so the server never queues more than one range for this site. `held`: the digest offered as the
    /// base (request metadata).
    /// - Throws: `.transient` for transport failures, `.invalidConfiguration` when the server's answer does not add
    ///   up (no chunk count, or a range that makes no progress), `.tooLarge` past `maxModelScalars` values.
    private func pullModel(
        for task: TaskAssignment, maxScalars: Int, held: ModelDigest?,
        begin: @escaping @Sendable (ModelDigest?, ModelDigest?) throws(FederationError) -> Void,
        handle: @escaping @Sendable (ReceivedChunk) throws(FederationError) -> Void
    )
        async throws(FederationError)
    {
        var request = Tessera_Federation_V1_DownloadModelRequest()
        request.task = task.wire
        request.maxScalars = Int64(min(maxScalars, limits.chunkScalars))
        request.chunkCount = Int64(limits.downloadChunksPerCall)
        var next = 0
        var total: Int? = nil
        // The values that came, against the largest model a site takes: a server cannot make it allocate more.
        let values = Mutex(0)
        let bounded: @Sendable (ReceivedChunk) throws(FederationError) -> Void = { chunk throws(FederationError) in
            let sum = values.withLock { v in
                v += chunk.valueCount
                return v
            }
            guard sum <= Self.maxModelScalars else {
                throw FederationError(
                    .tooLarge,
                    "the server's model download goes past \(Self.maxModelScalars) values, the largest model a site "
                        + "takes")
            }
            try handle(chunk)
        }
        repeat {
            request.firstChunk = Int64(next)
            let (received, count) = try await call("model download") { [request] in
                try await downloadRange(request, held: held, begin: begin, handle: bounded)
            }
            guard let count, count >= 0, count <= Self.maxDownloadChunks, total == nil || total == count else {
                throw FederationError(
                    .invalidConfiguration,
                    "the server's model download did not say how many chunks "
                        + "the model has (at most \(Self.maxDownloadChunks)), or changed it part-way: check that the "
                        + "server and this site run the same tessera version")
            }
            total = count
            guard received > 0 || next >= count else {
                throw FederationError(
                    .invalidConfiguration,
                    "the server sent no chunk from \(next) of \(count); check "
                        + "that the server and this site run the same tessera version")
            }
            next += received
        } while next < (total ?? 0)
    }

    /// One DownloadModel call: hands each chunk to `handle`; returns how many came and the model's chunk count (nil
    /// when the server did not say). Abandoned when no chunk comes for `streamProgressTimeout`.
    private func downloadRange(
        _ request: Tessera_Federation_V1_DownloadModelRequest, held: ModelDigest?,
        begin: @escaping @Sendable (ModelDigest?, ModelDigest?) throws(FederationError) -> Void,
        handle: @escaping @Sendable (ReceivedChunk) throws(FederationError) -> Void
    )
        async throws -> (received: Int, count: Int?)
    {
        let client = self.client
        var offered: Metadata = [:]
        if let held { offered.addString("\(held)", forKey: FederationHandler.heldModelKey) }
        let metadata = offered
        // The server cuts a change's int8 chunks at whole blocks (up to 65 536 values), whatever this site asked.
        let deserializer = ReceivedChunkDeserializer(
            maxChunkScalars: max(limits.chunkScalars, UpdateEncoding.blockSizes.upperBound))
        return try await StreamProgress.watch("model download", limit: limits.connection.streamProgressTimeout) {
            progress in
            try await client.serverStreaming(
                request: ClientRequest(message: request, metadata: metadata),
                descriptor: Tessera_Federation_V1_Federation.Method.DownloadModel.descriptor,
                serializer: ProtobufSerializer<Tessera_Federation_V1_DownloadModelRequest>(),
                deserializer: deserializer, options: .defaults
            ) { response in
                func digest(_ key: String) throws(FederationError) -> ModelDigest? {
                    guard let text = response.metadata[stringValues: key].first(where: { _ in true }) else {
                        return nil
                    }
                    guard let digest = ModelDigest(hex: text) else {
                        throw FederationError(
                            .invalidConfiguration, "the server's model download gave \(key) '\(text.prefix(40))'")
                    }
                    return digest
                }
                // A call the server did not accept (gone, restarting) has no metadata: its error, not a header.
                if case .failure(let error) = response.accepted { throw error }
                let announced = response.metadata[stringValues: FederationHandler.chunkCountKey]
                    .first(where: { _ in true }).flatMap { Int($0) }
                try begin(try digest(FederationHandler.baseKey), try digest(FederationHandler.digestKey))
                var received = 0
                for try await chunk in response.messages {
                    progress.mark()
                    try handle(chunk)
                    received += 1
                }
                return (received, announced)
            }
        }
    }

    /// Streams the header, then each chunk (split to the wire chunk size), as separate messages.
    ///
    /// - Throws: `.tooLarge` (final: not worth retrying) when the server reset the stream while it stays reachable —
    ///   grpc-swift's answer to a message over its size limit (RST_STREAM, with no status) — so that the site does
    ///   not resend a result the server will never take; `.transient` for other transport failures.
    public func uploadResult(_ header: ResultHeader, chunks: [ParameterChunk]) async throws(FederationError) {
        let pieceSize = limits.chunkScalars
        let largestMessage = chunks.map { min($0.valueBytes, pieceSize * MemoryLayout<Float>.size) }.max() ?? 0
        do {
            try await streamResult(header, chunks: chunks, pieceSize: pieceSize)
        } catch {
            if StatusMapping.isStreamReset(error) {
                // Reset by the server, not a broken connection: is the server still there?
                if (try? await heartbeat(site: header.site)) != nil {
                    throw FederationError(
                        .tooLarge,
                        "the server refused this site's result for round \(header.round) "
                            + "of job \(header.jobID) by resetting the stream (RST_STREAM): most likely a "
                            + "message over its size limit (this site sent messages of up to "
                            + "\(largestMessage) bytes, \(pieceSize) values per chunk). Set the site's "
                            + "chunk size to the server's; the round goes on without this result",
                        cause: String(describing: error))
                }
            }
            throw StatusMapping.federationError(error, during: "result upload")
        }
    }

    /// One UploadResult call: the header, then the chunks cut to `pieceSize` values. Abandoned when no message goes
    /// out (or the answer does not come) for `streamProgressTimeout`.
    private func streamResult(_ header: ResultHeader, chunks: [ParameterChunk], pieceSize: Int) async throws {
        let client = self.client
        try await StreamProgress.watch("result upload", limit: limits.connection.streamProgressTimeout) { progress in
            let parts = StreamingClientRequest<OutgoingPart> { writer in
                try await writer.write(.header(header))
                progress.mark()
                for chunk in chunks {
                    if let encoded = chunk.encoded {
                        for piece in Self.pieces(of: encoded, chunk: chunk, pieceSize: pieceSize) {
                            try await writer.write(.chunk(piece))
                            progress.mark()
                        }
                        continue
                    }
                    var start = chunk.values.startIndex
                    repeat {
                        let end = min(start + pieceSize, chunk.values.endIndex)
                        // A view of the chunk: its values are copied once, into the message.
                        try await writer.write(
                            .chunk(
                                ParameterChunk(
                                    tensor: chunk.tensor, shape: chunk.shape,
                                    offset: chunk.offset + (start - chunk.values.startIndex),
                                    values: chunk.values[start..<end])))
                        progress.mark()
                        start = end
                    } while start < chunk.values.endIndex
                }
            }
            _ = try await client.clientStreaming(
                request: parts, descriptor: Tessera_Federation_V1_Federation.Method.UploadResult.descriptor,
                serializer: OutgoingPartSerializer(),
                deserializer: ProtobufDeserializer<Tessera_Federation_V1_UploadResultResponse>(), options: .defaults
            ) { response in try response.message }
        }
    }

    /// An encoded chunk cut to at most `pieceSize` values (int8: whole blocks, at least one), each a view of its bytes.
    static func pieces(of encoded: EncodedValues, chunk: ParameterChunk, pieceSize: Int) -> [ParameterChunk] {
        var length = pieceSize
        if case .int8Blocks(let b) = encoded.encoding { length = max(b, pieceSize / b * b) }
        guard encoded.count > length else { return [chunk] }
        return stride(from: 0, to: encoded.count, by: length).map { start in
            ParameterChunk(
                tensor: chunk.tensor, shape: chunk.shape, offset: chunk.offset + start,
                encoded: encoded.piece(start..<min(start + length, encoded.count)))
        }
    }

    public func heartbeat(site: String) async throws(FederationError) {
        var request = Tessera_Federation_V1_HeartbeatRequest()
        request.site = site
        _ = try await call("heartbeat") { try await stub.heartbeat(request, options: unary) }
    }
}
